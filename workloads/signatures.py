"""What a user's model takes and gives, read from the file itself (ONNX or .tflite): every input and
output with its name, dtype and shape, and the numeric precision its weights run at. The checks before any
job (evaluation data, metric, calibration) and the planned `precision` column stand on this."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from harness.core.errors import ConfigError

# ONNX operators that only a quantized graph has: QDQ pairs, or integer kernels
INT8_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
            "MatMulInteger", "DynamicQuantizeLinear"}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: np.dtype | None      # None: not a tensor (a scikit-learn ZipMap's sequence of maps)
    shape: tuple | None         # ints, or str for a symbolic dimension; None: unknown rank
    quantized: bool = False     # an integer tensor with a scale (a full-integer .tflite's input)

    def describe(self) -> str:
        dims = "?" if self.shape is None else "[" + ", ".join(str(d) for d in self.shape) + "]"
        return f"'{self.name}' {dims} {self.dtype.name if self.dtype is not None else 'non-tensor'}"

    @property
    def batch_axis(self) -> bool:
        """Axis 0 takes samples: a symbolic first dimension, or 1 (a model exported at batch 1)."""
        return bool(self.shape) and (isinstance(self.shape[0], str) or self.shape[0] in (1, -1))


@dataclass(frozen=True)
class ModelSignature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def output(self, name: str) -> TensorSpec | None:
        return next((o for o in self.outputs if o.name == name), None)


def _onnx_tensor(value: onnx.ValueInfoProto) -> TensorSpec:
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        return TensorSpec(value.name, None, None)
    tensor = value.type.tensor_type
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type)) if tensor.elem_type else None
    shape = (tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim)
             if tensor.HasField("shape") else None)
    return TensorSpec(value.name, dtype, shape)


def onnx_signature(model: onnx.ModelProto) -> ModelSignature:
    initializers = {t.name for t in model.graph.initializer}
    return ModelSignature(tuple(_onnx_tensor(i) for i in model.graph.input if i.name not in initializers),
                          tuple(_onnx_tensor(o) for o in model.graph.output))


def tflite_interpreter(path: Path, where: str = ""):
    """LiteRT's interpreter on the host (the `tflite` extra), or one line saying what to install."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        raise ConfigError(f"{where or path}: reading a .tflite model on the host needs LiteRT: "
                          f"pip install 'edgebench[tflite]'") from None
    try:
        # only its tensors are read: no XNNPACK delegate (which announces itself on stderr)
        interpreter = Interpreter(model_path=str(path), num_threads=1,
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(f"{path}: not a valid .tflite model ({str(exc).splitlines()[0]})") from None
    return interpreter


def tflite_signature(path: Path, where: str = "") -> ModelSignature:
    from harness.core.tflite_io import tensors

    interpreter = tflite_interpreter(path, where)

    def spec(detail: dict) -> TensorSpec:
        dims = detail.get("shape_signature", detail["shape"])
        dtype = np.dtype(detail["dtype"])
        return TensorSpec(detail["name"], dtype,
                          tuple("batch" if (i == 0 and d == -1) else int(d) for i, d in enumerate(dims)),
                          quantized=bool(np.issubdtype(dtype, np.integer) and detail["quantization"][0]))

    return ModelSignature(tuple(spec(d) for d in tensors(interpreter, "inputs")),
                          tuple(spec(d) for d in tensors(interpreter, "outputs")))


def onnx_precision(model: onnx.ModelProto) -> str:
    """int8 for a quantized graph (QDQ or integer kernels), fp16 for half-precision weights, else fp32."""
    if any(node.op_type in INT8_OPS for node in model.graph.node):
        return "int8"
    weights = [t.data_type for t in model.graph.initializer if len(t.dims) >= 2]
    if weights and onnx.TensorProto.FLOAT16 in weights and onnx.TensorProto.FLOAT not in weights:
        return "fp16"
    return "fp32"


def tflite_precision(path: Path) -> str:
    """int8 when the model holds quantized 8-bit tensors (full-integer or dynamic-range), fp16 when its
    weights are half precision, else fp32."""
    details = tflite_interpreter(path).get_tensor_details()
    kinds = {np.dtype(d["dtype"]) for d in details}
    if any(np.dtype(d["dtype"]) in (np.dtype(np.int8), np.dtype(np.uint8)) and d["quantization"][0]
           for d in details):
        return "int8"
    if np.dtype(np.float16) in kinds:
        return "fp16"
    return "fp32"
