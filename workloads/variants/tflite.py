"""TFLite artifacts for LiteRT: fp32, full-integer int8 (int8 weights, activations, input and output), and
for a TensorFlow model dynamic-range (int8 weights, float activations).

Routes: a reference workload's PyTorch model goes straight to .tflite with litert-torch (no TensorFlow, no
ONNX in between); int8 through PyTorch's PT2E flow (torchao prepare/convert) with litert-torch's quantizer,
symmetric per-channel weights, calibrated on the training split. A user's Keras / SavedModel model goes
through TensorFlow's own TFLite converter (workloads/tf_models.py), int8 calibrated on the user's
calibration set. onnx2tf was the route from ONNX and was rejected: it pins old tensorflow/numpy/onnx
versions and fetches calibration data from the internet.

    [[variants]]
    name = "tflite-int8"
    family = "tflite"
    quantization = "int8"       # none (fp32) | int8 | dynamic (TensorFlow models)
    calibration_samples = 200   # int8: from the training split (a user's model: its calibration set)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.core.config import Table
from harness.core.errors import ConfigError
from harness.core.jobs import Artifact
from harness.core.quantization import dequantize, quantize
from workloads.quiet import import_converter, native_output_captured

QUANTIZATIONS = ("none", "int8", "dynamic")


def parse(table: Table) -> dict:
    quantization = table.take("quantization", str, "none", choices=QUANTIZATIONS)
    params = {"quantization": quantization}
    if quantization == "int8":
        params["calibration_samples"] = table.take("calibration_samples", int, 200, minimum=1)
    table.finish()
    return params


def precision(params: dict) -> str:
    return "fp32" if params["quantization"] == "none" else "int8"


def converter(workload_file: Path, needs: str = "family \"tflite\" needs litert-torch to convert models"):
    """litert-torch, imported only to convert (seconds to import)."""
    return import_converter("litert_torch", workload_file, needs, "tflite")


def _int8(litert_torch, model, sample, calibration: np.ndarray):
    import torch
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(torch.export.export(model, (sample,)).module(), quantizer)
    with torch.no_grad():
        for i in range(len(calibration)):
            prepared(torch.from_numpy(calibration[i:i + 1]))
    quantized = convert_pt2e(prepared, fold_quantize=False)
    return litert_torch.convert(quantized, (sample,), quant_config=QuantConfig(pt2e_quantizer=quantizer))


def host_accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of the .tflite on the host, in LiteRT with the input and output quantization the
    device's backend applies."""
    from ai_edge_litert.interpreter import Interpreter

    with native_output_captured(f"loading {path.name} in LiteRT"):  # its INFO line about XNNPACK
        interpreter = Interpreter(model_path=str(path), num_threads=1)
        interpreter.allocate_tensors()
    source, sink = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    hits = 0
    for i in range(len(x)):
        interpreter.set_tensor(source["index"], quantize(x[i:i + 1], source["dtype"], *source["quantization"]))
        interpreter.invoke()
        logits = dequantize(interpreter.get_tensor(sink["index"]), *sink["quantization"])
        hits += int(logits.argmax() == y[i])
    return hits / len(x)


def _from_tensorflow(base, variant) -> Artifact:
    from workloads.tf_models import tf_to_tflite

    params = variant.params
    source = base.user.tf_source

    def make(tmp: Path) -> dict:
        calibration = None
        if params["quantization"] == "int8":
            calibration = base.user.calibration_arrays(params["calibration_samples"], "tflite")
        tf_to_tflite(source, tmp / "model.tflite", params["quantization"], calibration)
        return {"host_accuracy": None}  # scored on the device, with the workload's metric

    folder = base.build_variant(variant, make)
    return base.artifact(variant.name, "tflite", variant.precision, folder, params, same_macs_as_base=True)


def build(base, variant) -> Artifact:
    import torch

    params = variant.params
    if base.user is not None:
        if base.user.tf_source is None:
            raise ConfigError(f"{base.workload.file}: variant {variant.name!r}: family \"tflite\" converts a "
                              f"TensorFlow / Keras model or a reference workload's PyTorch model; give the model's "
                              f".keras / .h5 / SavedModel directory as [model] path")
        return _from_tensorflow(base, variant)
    if params["quantization"] == "dynamic":
        raise ConfigError(f"{base.workload.file}: variant {variant.name!r}: quantization = \"dynamic\" is "
                          f"TensorFlow's converter's; a PyTorch reference model takes none or int8")

    def make(tmp: Path) -> dict:
        litert_torch = converter(base.workload.file)
        model = base.require_torch("tflite")
        x_eval, y_eval = base.data.load_eval()
        sample = torch.from_numpy(x_eval[:1])
        with native_output_captured(f"converting {variant.name} to TFLite"):
            if params["quantization"] == "int8":
                x_train, _ = base.data.load_train()
                picks = np.random.default_rng(0).choice(
                    len(x_train), size=min(params["calibration_samples"], len(x_train)), replace=False)
                converted = _int8(litert_torch, model, sample, x_train[np.sort(picks)])
            else:
                converted = litert_torch.convert(model, (sample,))
            converted.export(str(tmp / "model.tflite"))
        return {"host_accuracy": host_accuracy(tmp / "model.tflite", x_eval, y_eval)}

    folder = base.build_variant(variant, make)
    return base.artifact(variant.name, "tflite", variant.precision, folder, params, same_macs_as_base=True)
