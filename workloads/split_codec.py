"""The payload codec of a split network: how the tensor at the cut is encoded for the link.

The codec lives inside the two stage graphs, so the device only frames the head's output bytes:
fp32 sends the tensor as it is, fp16 casts it (Cast), int8 quantises it per tensor to asymmetric uint8
(QuantizeLinear at the head's end, DequantizeLinear at the tail's start) with a scale and zero point from
the min / max of calibration samples (the training split), as onnxruntime's MinMax calibration does.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from harness.core.errors import ConfigError

PAYLOAD_DTYPES = ("fp32", "fp16", "int8")
BYTES_PER_ELEMENT = {"fp32": 4, "fp16": 2, "int8": 1}
ENCODED_TYPE = {"fp32": TensorProto.FLOAT, "fp16": TensorProto.FLOAT16, "int8": TensorProto.UINT8}
# Cast's `to` is an integer from opset 6; QuantizeLinear / DequantizeLinear exist from opset 10.
MIN_OPSET = {"fp32": 1, "fp16": 6, "int8": 10}
PAYLOAD_NAME = "payload"  # the head's encoded output and the tail's encoded input
ACCURACY_BATCH = 256      # samples per onnxruntime call (bounds the memory of wide activations)


def payload_bytes(shape_per_sample, payload_dtype: str) -> int:
    """Bytes of one sample's payload (no batch axis in `shape_per_sample`)."""
    _check_dtype(payload_dtype)
    return int(np.prod(shape_per_sample, dtype=np.int64)) * BYTES_PER_ELEMENT[payload_dtype]


def calibrate(samples: np.ndarray) -> dict:
    """uint8 scale and zero point that cover the samples' range; the range always holds 0 so that zero
    (ReLU's output, padding) is exact, as ONNX's QuantizeLinear conventions and onnxruntime expect."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.size == 0 or not np.isfinite(samples).all():
        raise ConfigError(f"payload calibration: {samples.size} samples, "
                          f"{'none' if samples.size == 0 else 'some not finite'}; accepted: finite values")
    low, high = min(float(samples.min()), 0.0), max(float(samples.max()), 0.0)
    scale = np.float32((high - low) / 255.0) if high > low else np.float32(1.0)
    zero_point = int(np.clip(np.round(-low / scale), 0, 255))
    return {"scale": float(scale), "zero_point": zero_point}


def _checked_copy(stage: onnx.ModelProto, payload_dtype: str, qparams: dict | None) -> onnx.ModelProto:
    """A copy of a stage the codec can edit (the caller's model stays as it was)."""
    _check(stage, payload_dtype, qparams)
    model = onnx.ModelProto()
    model.CopyFrom(stage)
    return model


def encode_head(head: onnx.ModelProto, payload_dtype: str, qparams: dict | None = None) -> onnx.ModelProto:
    """The head with its single output replaced by the encoded payload (a copy; fp32: unchanged)."""
    model = _checked_copy(head, payload_dtype, qparams)
    if payload_dtype == "fp32":
        return model
    graph = model.graph
    if len(graph.output) != 1:
        raise ConfigError(f"a split head has one output, this one has {len(graph.output)}")
    raw = graph.output[0]
    name = _fresh(model, PAYLOAD_NAME)
    if payload_dtype == "fp16":
        graph.node.append(helper.make_node("Cast", [raw.name], [name], to=TensorProto.FLOAT16,
                                           name=f"{name}_encode"))
    else:
        scale, zero_point = _qparam_initializers(model, qparams)
        graph.initializer.extend([scale, zero_point])
        graph.node.append(helper.make_node("QuantizeLinear", [raw.name, scale.name, zero_point.name], [name],
                                           name=f"{name}_encode"))
    encoded = _value_info(name, ENCODED_TYPE[payload_dtype], raw)
    del graph.output[:]
    graph.output.append(encoded)
    return model


def decode_tail(tail: onnx.ModelProto, payload_dtype: str, qparams: dict | None = None) -> onnx.ModelProto:
    """The tail with its single input replaced by the encoded payload, decoded to fp32 first (a copy)."""
    model = _checked_copy(tail, payload_dtype, qparams)
    if payload_dtype == "fp32":
        return model
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ConfigError(f"a split tail has one input, this one has {len(inputs)}")
    raw = inputs[0]
    name = _fresh(model, PAYLOAD_NAME)
    if payload_dtype == "fp16":
        decode = helper.make_node("Cast", [name], [raw.name], to=TensorProto.FLOAT, name=f"{name}_decode")
    else:
        scale, zero_point = _qparam_initializers(model, qparams)
        graph.initializer.extend([scale, zero_point])
        decode = helper.make_node("DequantizeLinear", [name, scale.name, zero_point.name], [raw.name],
                                  name=f"{name}_decode")
    graph.node.insert(0, decode)  # nodes stay in topological order
    encoded = _value_info(name, ENCODED_TYPE[payload_dtype], raw)
    position = list(graph.input).index(raw)
    graph.input.remove(raw)
    graph.input.insert(position, encoded)
    return model


def head_tail_accuracy(head_path, tail_path, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of head -> tail (or the tail alone when `head_path` is None) with onnxruntime on
    the whole set, in batches (one sample at a time where a stage's batch axis is fixed)."""
    import onnxruntime as ort

    def session(path):
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    stages = [session(p) for p in (head_path, tail_path) if p is not None]
    step, usable = batches([s.get_inputs()[0].shape[0] for s in stages], len(x))
    if usable == 0:
        raise ConfigError(f"accuracy of a split model: {len(x)} samples, fewer than its fixed batch of {step}")
    hits = 0
    for start in range(0, usable, step):
        value = x[start:start + step]
        for stage in stages:
            value = stage.run(None, {stage.get_inputs()[0].name: value})[0]
        hits += int((value.argmax(axis=1) == y[start:start + step]).sum())
    return hits / usable


def batches(batch_dims: list, n: int) -> tuple[int, int]:
    """(samples per call, samples used) for stages whose batch axes are `batch_dims` (an int: fixed, which
    leaves out the last partial batch; else symbolic: every sample, ACCURACY_BATCH at a time)."""
    fixed = [d for d in batch_dims if isinstance(d, int) and d > 0]
    if fixed:
        step = min(fixed)
        return step, n - n % step
    return ACCURACY_BATCH, n


def _check_dtype(payload_dtype: str) -> None:
    if payload_dtype not in PAYLOAD_DTYPES:
        raise ConfigError(f"payload dtype {payload_dtype!r}; accepted: {', '.join(PAYLOAD_DTYPES)}")


def _check(model: onnx.ModelProto, payload_dtype: str, qparams: dict | None) -> None:
    _check_dtype(payload_dtype)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is not None and opset < MIN_OPSET[payload_dtype]:
        raise ConfigError(f"a payload of {payload_dtype} needs ONNX opset >= {MIN_OPSET[payload_dtype]}, the model "
                          f"has opset {opset}; accepted: a payload of fp32 or a model exported at a newer opset")
    if payload_dtype == "int8":
        if not qparams or "scale" not in qparams or "zero_point" not in qparams:
            raise ConfigError(f"an int8 payload needs calibrated {{'scale', 'zero_point'}}, got {qparams!r}")
        if not (np.isfinite(qparams["scale"]) and qparams["scale"] > 0 and 0 <= qparams["zero_point"] <= 255):
            raise ConfigError(f"int8 payload parameters {qparams!r}; accepted: scale > 0, zero_point in 0..255")


def _qparam_initializers(model: onnx.ModelProto, qparams: dict) -> tuple[onnx.TensorProto, onnx.TensorProto]:
    scale = numpy_helper.from_array(np.array(qparams["scale"], dtype=np.float32), _fresh(model, "payload_scale"))
    zero_point = numpy_helper.from_array(np.array(qparams["zero_point"], dtype=np.uint8),
                                         _fresh(model, "payload_zero_point"))
    return scale, zero_point


def _value_info(name: str, elem_type: int, like: onnx.ValueInfoProto) -> onnx.ValueInfoProto:
    """`like`'s shape (symbolic batch axis included) under a new name and element type."""
    info = onnx.ValueInfoProto()
    info.CopyFrom(like)
    info.name = name
    info.type.tensor_type.elem_type = elem_type
    return info


def _fresh(model: onnx.ModelProto, stem: str) -> str:
    """`stem`, or `stem_<n>` when the graph already has a value of that name."""
    graph = model.graph
    taken = ({t.name for t in graph.initializer} | {i.name for i in graph.input} | {o.name for o in graph.output}
             | {v.name for v in graph.value_info} | {n for node in graph.node for n in (*node.input, *node.output)})
    name, n = stem, 0
    while name in taken:
        n += 1
        name = f"{stem}_{n}"
    return name
