"""Quantized variants with onnxruntime's tools: int8 dynamic, int8 static QDQ, and fp16.

Static int8 defaults follow what stays accurate on CPUs without VNNI (see the README): QDQ, per-channel
int8 weights, uint8 activations, reduce_range, calibrated on the training split. onnxruntime's own
defaults (U8S8 without reduce_range) saturate there and collapse accuracy, so every quantized
artifact's accuracy is measured again on the device.

    [[variants]]
    name = "int8"
    family = "quantize"
    scheme = "ort-static"        # ort-static | ort-dynamic | fp16
    calibration_samples = 200    # ort-static: from the training split (a user's model: its calibration set)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from harness.core.config import Table
from harness.core.jobs import Artifact
from workloads.signatures import onnx_precision

SCHEMES = ("ort-static", "ort-dynamic", "fp16")
QUANT_TYPES = ("uint8", "int8")


def parse(table: Table) -> dict:
    scheme = table.take("scheme", choices=SCHEMES)
    params = {"scheme": scheme}
    if scheme == "ort-static":
        params.update(
            calibration_samples=table.take("calibration_samples", int, 200, minimum=1),
            per_channel=table.take("per_channel", bool, True),
            reduce_range=table.take("reduce_range", bool, True),
            activation_type=table.take("activation_type", str, "uint8", choices=QUANT_TYPES),
            weight_type=table.take("weight_type", str, "int8", choices=QUANT_TYPES),
        )
    elif scheme == "ort-dynamic":
        params.update(per_channel=table.take("per_channel", bool, False),
                      weight_type=table.take("weight_type", str, "int8", choices=QUANT_TYPES))
    table.finish()
    return params


def precision(params: dict) -> str:
    return "fp16" if params["scheme"] == "fp16" else "int8"


def _quant_type(name: str):
    from onnxruntime.quantization import QuantType

    return {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}[name]


def _static(base, params: dict, out: Path, tmp: Path) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    feeds = base.calibration_feeds(params["calibration_samples"], "quantize")

    class Samples(CalibrationDataReader):
        def __init__(self):
            self.items = iter(feeds)

        def get_next(self):
            return next(self.items, None)

    prepared = tmp / "preprocessed.onnx"
    try:
        quant_pre_process(str(base.onnx_path), str(prepared))
    except Exception:  # noqa: BLE001 - symbolic shape inference gives up on some graphs (scikit-learn's)
        quant_pre_process(str(base.onnx_path), str(prepared), skip_symbolic_shape=True)
    finally:
        # onnxruntime leaves its half-done inference in the working directory when it gives up
        Path("sym_shape_infer_temp.onnx").unlink(missing_ok=True)
    quantize_static(str(prepared), str(out), Samples(), quant_format=QuantFormat.QDQ,
                    per_channel=params["per_channel"], reduce_range=params["reduce_range"],
                    activation_type=_quant_type(params["activation_type"]),
                    weight_type=_quant_type(params["weight_type"]))
    prepared.unlink()


def _dynamic(base, params: dict, out: Path) -> None:
    import logging

    from onnxruntime.quantization import quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # it advises pre-processing through the root logger, every time
    try:
        quantize_dynamic(str(base.onnx_path), str(out), per_channel=params["per_channel"],
                         weight_type=_quant_type(params["weight_type"]))
    finally:
        root.setLevel(level)


def _fp16(base, out: Path) -> None:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnx.save(convert_float_to_float16(onnx.load(str(base.onnx_path)), keep_io_types=True), str(out))


def host_accuracy(path: Path, x: np.ndarray, y: np.ndarray, qdq_fusion: bool = True) -> float:
    """Accuracy of an ONNX artifact on the host (sample by sample when its batch axis is fixed)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if not qdq_fusion:
        options.add_session_config_entry("session.disable_quant_qdq", "1")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    first = session.get_inputs()[0]
    step = first.shape[0] if isinstance(first.shape[0], int) else len(x)
    hits = sum(int((session.run(None, {first.name: x[i:i + step]})[0].argmax(axis=1) == y[i:i + step]).sum())
               for i in range(0, len(x) - len(x) % step, step))
    return hits / (len(x) - len(x) % step)


def build(base, variant) -> Artifact:
    params = variant.params

    def make(tmp: Path) -> dict:
        out = tmp / "model.onnx"
        if params["scheme"] == "ort-static":
            _static(base, params, out, tmp)
        elif params["scheme"] == "ort-dynamic":
            _dynamic(base, params, out)
        else:
            _fp16(base, out)
        if base.user is not None:  # its metric and inputs are the device's to score
            return {"host_accuracy": None}
        x, y = base.data.load_eval()
        return {"host_accuracy": host_accuracy(out, x, y)}

    folder = base.build_variant(variant, make)
    notes, precision = [], variant.precision
    if params["scheme"] != "fp16" and onnx_precision(onnx.load(str(folder / "model.onnx"))) != "int8":
        ops = sorted({n.op_type for n in onnx.load(str(base.onnx_path)).graph.node})
        notes.append(f"precision: the quantizer left every operator in float ({', '.join(ops[:6])}): this variant "
                     f"runs as fp32")
        precision = "fp32"
    # the same multiply-accumulates at a lower precision (onnx-tool cannot profile every quantized graph)
    return base.artifact(variant.name, "quantize", precision, folder, params, same_macs_as_base=True, notes=notes)
