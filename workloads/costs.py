"""Nominal cost of an ONNX artifact: bytes on disk, parameters and multiply-accumulates at batch 1.

MACs come from onnx-tool's per-node profile, summed over the compute nodes (convolutions and matrix
products, float or quantized; their bias additions included, elementwise activations excluded), which is
the convention of MLPerf Tiny and the pruning literature.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from workloads.signatures import onnx_signature

COMPUTE_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "QLinearConv", "QLinearMatMul",
               "ConvInteger", "MatMulInteger"}

# Weights are float or 8-bit tensors; int64 initializers are shapes and indices, scalars are
# quantization scales and zero points: neither is a parameter.
WEIGHT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16,
                onnx.TensorProto.DOUBLE, onnx.TensorProto.INT8, onnx.TensorProto.UINT8}

ONNX_TO_NUMPY = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.FLOAT16: np.float16,
                 onnx.TensorProto.DOUBLE: np.float64, onnx.TensorProto.UINT8: np.uint8,
                 onnx.TensorProto.INT8: np.int8, onnx.TensorProto.INT32: np.int32,
                 onnx.TensorProto.INT64: np.int64}


@dataclass(frozen=True)
class ModelCost:
    model_bytes: int
    params: int
    macs: int | None  # None when the graph cannot be profiled (an operator onnx-tool lacks)
    weight_sparsity: float = 0.0  # share of exact zeros among weights of two or more dimensions
    macs_reason: str | None = None  # why `macs` is None


def model_cost(path: Path, sample_shape: tuple[int, ...]) -> ModelCost:
    """Cost at batch 1 for an input of `sample_shape` (one sample, no batch axis)."""
    model = onnx.load(str(path))
    weights = [t for t in model.graph.initializer if t.dims and t.data_type in WEIGHT_TYPES]
    params = sum(int(np.prod(t.dims)) for t in weights)
    matrices = [numpy_helper.to_array(t) for t in weights if len(t.dims) >= 2]
    total = sum(m.size for m in matrices)
    zeros = sum(int((m == 0).sum()) for m in matrices)
    macs, reason = None, None
    try:
        graph = _profiled(model, sample_shape)
        macs = int(sum(node.macs[0] for node in graph.nodemap.values() if node.op_type in COMPUTE_OPS))
    except Exception as exc:  # onnx-tool raises bare exceptions for operators it does not model
        detail = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        reason = f"macs: onnx-tool cannot profile this graph ({detail})"
    return ModelCost(model_bytes=Path(path).stat().st_size, params=params, macs=macs,
                     weight_sparsity=zeros / total if total else 0.0, macs_reason=reason)


@dataclass(frozen=True)
class NodeProfile:
    """Per node of a graph at batch 1, keyed by the node's first output (tensor names are unique; node
    names may be empty): multiply-accumulates (compute ops only, as model_cost counts them), and every
    tensor's shape with its batch axis."""

    macs: dict[str, int]
    shapes: dict[str, tuple[int, ...]]


def node_profile(model: onnx.ModelProto, sample_shape: tuple[int, ...]) -> NodeProfile:
    """onnx-tool's per-node profile (raises what onnx-tool raises for an operator it does not model)."""
    graph = _profiled(model, sample_shape)
    macs = {node.output[0]: int(node.macs[0]) if node.op_type in COMPUTE_OPS else 0
            for node in graph.nodemap.values() if node.output}
    shapes = {name: tuple(int(d) for d in tensor.shape) for name, tensor in graph.tensormap.items()
              if tensor.shape is not None}
    return NodeProfile(macs, shapes)


def _profiled(model: onnx.ModelProto, sample_shape: tuple[int, ...]):
    import onnx_tool

    first = onnx_signature(model).inputs[0]
    feeds = {first.name: np.zeros((1, *sample_shape), first.dtype or np.float32)}
    initializers = {t.name for t in model.graph.initializer}
    for value in model.graph.input[1:]:  # further inputs at batch 1, where their other dims are known
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim][1:]
        if value.name not in initializers and value.name not in feeds and None not in dims:
            feeds[value.name] = np.zeros((1, *dims), ONNX_TO_NUMPY.get(tensor.elem_type, np.float32))
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # onnx-tool warns for every operator it does not profile
        graph = onnx_tool.Model(model).graph
        graph.shape_infer(feeds)
        graph.profile()
    return graph


def parameter_size(model: onnx.ModelProto) -> tuple[int, int]:
    """(parameters, bytes they take) over the weight initializers, counted as model_cost counts them
    (sc2bench's "encoder size" for a split network's head)."""
    weights = [t for t in model.graph.initializer if t.dims and t.data_type in WEIGHT_TYPES]
    return (sum(int(np.prod(t.dims)) for t in weights),
            sum(numpy_helper.to_array(t).nbytes for t in weights))
