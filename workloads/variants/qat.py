"""Low-bit quantization-aware training with brevitas, exported to QONNX (what FINN-style FPGA flows take)
and to a QCDQ ONNX graph that onnxruntime runs on any CPU.

The workload's trained model is copied into brevitas layers (convolutions at `weight_bits`, ReLUs at
`activation_bits`, the input and the classifier at 8 bits, batch norm in float: FINN folds it into
thresholds) and fine-tuned with the quantizers in the loop.

    weight_bits = 1   binary weights (+-1 times a constant scale, BipolarQuant)
    weight_bits = 2   ternary weights (-1, 0, +1)
    weight_bits = 3..8  signed integers, one scale per output channel

    [[variants]]
    name = "w4a4"
    family = "qat"
    weight_bits = 4
    activation_bits = 4
    epochs = 3                 # QAT fine-tuning epochs (default: the workload's)
    lr_scale = 0.2             # times the workload's learning rate

The ONNX artifact folds the quantized weights into float constants and turns the remaining activation
quantizers into QuantizeLinear/Clip/DequantizeLinear: the same function as the QONNX graph, checked
sample by sample against qonnx's reference execution when built. onnxruntime runs it with its QDQ
fusions off (`qdq_fusion = false`): fused into u8s8 int8 kernels, a binary ResNet fell from 0.98 to 0.35
on a CPU without VNNI. Its latency on a CPU says nothing about an FPGA; the artifact is here for
accuracy and as the FPGA target's input.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from harness.core.config import Table
from harness.core.errors import ConfigError
from harness.core.jobs import Artifact
from workloads.quiet import native_output_captured

# QONNX reference vs. the onnxruntime artifact: share of samples whose predicted class must agree
# (the two round ties differently, so an exact match is not expected).
AGREEMENT_FLOOR = 0.99
REFERENCE_SAMPLES = 64


def parse(table: Table) -> dict:
    params = {
        "weight_bits": table.take("weight_bits", int, minimum=1),
        "activation_bits": table.take("activation_bits", int, 4, minimum=2),
        "epochs": table.take("epochs", int, -1, minimum=-1),
        "lr_scale": table.take("lr_scale", float, 0.2, minimum=0.0, maximum=100.0),
    }
    for key in ("weight_bits", "activation_bits"):
        if params[key] > 8:
            raise ConfigError(f"{table.where(key)} = {params[key]}: low-bit training takes 1 (binary), "
                              f"2 (ternary) or 3..8 bits; use family \"quantize\" for int8 PTQ")
    table.finish()
    return params


def precision(params: dict) -> str:
    return f"w{params['weight_bits']}a{params['activation_bits']}"


def _require_brevitas(workload_file: Path) -> None:
    from importlib.util import find_spec

    if find_spec("brevitas") is None or find_spec("qonnx") is None:
        raise ConfigError(f"{workload_file}: family \"qat\" needs brevitas and qonnx; install the extra: "
                          f"pip install -e '.[qat]'")


def weight_quantizer(bits: int):
    import brevitas.quant as quant

    if bits == 1:
        return quant.SignedBinaryWeightPerTensorConst
    if bits == 2:
        return quant.SignedTernaryWeightPerTensorConst
    return quant.Int8WeightPerChannelFloat  # the bit width is set per layer


def quantize_layers(model, weight_bits: int, activation_bits: int):
    """`model` with its convolutions, linear layers and ReLUs replaced by brevitas layers carrying the
    trained weights, behind an 8-bit input quantizer."""
    import brevitas.nn as qnn
    from torch import nn

    def swap(parent):
        for name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                layer = qnn.QuantConv2d(child.in_channels, child.out_channels, child.kernel_size,
                                        stride=child.stride, padding=child.padding, groups=child.groups,
                                        bias=child.bias is not None,
                                        weight_quant=weight_quantizer(weight_bits), weight_bit_width=weight_bits)
            elif isinstance(child, nn.Linear):
                layer = qnn.QuantLinear(child.in_features, child.out_features, bias=child.bias is not None,
                                        weight_bit_width=8)
            elif isinstance(child, nn.ReLU):
                setattr(parent, name, qnn.QuantReLU(bit_width=activation_bits))
                continue
            else:
                swap(child)
                continue
            layer.load_state_dict(child.state_dict(), strict=False)
            setattr(parent, name, layer)
        return parent

    return nn.Sequential(qnn.QuantIdentity(bit_width=8), swap(model))


def to_onnxruntime(qonnx_path: Path, out: Path) -> None:
    """QONNX -> a graph of standard operators: weight quantizers folded into constants, activation
    quantizers as QuantizeLinear/Clip/DequantizeLinear."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.transformation.qonnx_to_qcdq import QuantToQCDQ
    from qonnx.util.cleanup import cleanup_model

    model = cleanup_model(ModelWrapper(str(qonnx_path)))
    model = model.transform(FoldConstants(exclude_op_types=[])).transform(QuantToQCDQ())
    left = sorted({n.op_type for n in model.graph.node if n.domain.startswith("qonnx")})
    if left:
        raise RuntimeError(f"QONNX operators left after lowering to QCDQ: {', '.join(left)}")
    model.save(str(out))


def reference_agreement(qonnx_path: Path, onnx_path: Path, x: np.ndarray) -> float:
    """Share of samples on which qonnx's reference execution and onnxruntime pick the same class."""
    import onnxruntime as ort
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.util.cleanup import cleanup_model

    reference = cleanup_model(ModelWrapper(str(qonnx_path)))
    name_in, name_out = reference.graph.input[0].name, reference.graph.output[0].name
    options = ort.SessionOptions()
    # unoptimized: the graph's own function. onnxruntime's int8 fusions (extended/all) may round
    # differently on CPUs without VNNI; the device's accuracy pass measures that effect.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    ort_in = session.get_inputs()[0].name
    same = 0
    for i in range(len(x)):
        want = execute_onnx(reference, {name_in: x[i:i + 1]})[name_out]
        got = session.run(None, {ort_in: x[i:i + 1]})[0]
        same += int(want.argmax() == got.argmax())
    return same / len(x)


def _export_qonnx(model, sample: np.ndarray, path: Path) -> None:
    import warnings

    import onnx
    import torch
    from brevitas.export import export_qonnx

    with warnings.catch_warnings(), native_output_captured("exporting QONNX with brevitas"):
        warnings.simplefilter("ignore")
        export_qonnx(model, input_t=torch.from_numpy(sample), export_path=str(path))
    data = Path(str(path) + ".data")
    onnx.save(onnx.load(str(path)), str(path))  # weights inline: one file to ship
    data.unlink(missing_ok=True)


def build(base, variant) -> Artifact:
    from workloads.training import accuracy, seed_everything, train

    params = variant.params
    _require_brevitas(base.workload.file)

    def make(tmp: Path) -> dict:
        from workloads.variants.quantize import host_accuracy

        x_train, y_train = base.data.load_train()
        x_eval, y_eval = base.data.load_eval()
        seed_everything(base.workload.training.seed)
        model = quantize_layers(base.require_torch("qat"), params["weight_bits"], params["activation_bits"])
        training = base.workload.training
        epochs = training.epochs if params["epochs"] < 0 else params["epochs"]
        if epochs:
            train(model, x_train, y_train, replace(
                training, epochs=epochs, learning_rate=training.learning_rate * params["lr_scale"]))
        model.eval()
        _export_qonnx(model, x_eval[:1], tmp / "model.qonnx.onnx")
        to_onnxruntime(tmp / "model.qonnx.onnx", tmp / "model.onnx")
        agreement = reference_agreement(tmp / "model.qonnx.onnx", tmp / "model.onnx",
                                        x_eval[:REFERENCE_SAMPLES])
        if agreement < AGREEMENT_FLOOR:
            raise RuntimeError(f"{variant.name}: the onnxruntime artifact agrees with the QONNX reference "
                               f"on {agreement:.1%} of {REFERENCE_SAMPLES} samples (< {AGREEMENT_FLOOR:.0%})")
        return {"host_accuracy": host_accuracy(tmp / "model.onnx", x_eval, y_eval, qdq_fusion=False),
                "qat_accuracy": accuracy(model, x_eval, y_eval),  # brevitas in PyTorch
                "qonnx_agreement": agreement}

    folder = base.build_variant(variant, make)
    return base.artifact(variant.name, "qat", variant.precision, folder, params, same_macs_as_base=True,
                         backend_options={"onnxruntime": {"qdq_fusion": False}})
