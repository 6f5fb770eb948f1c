"""BottleFit: a trained bottleneck at a cut of the network, for split computing.

The head (on the device) is the teacher's layers before the cut, initialised from the teacher, followed by
an encoder that narrows to `channels` and downsamples by `stride`; the tail (on the server) is a decoder
that restores the width and size the teacher's later layers expect, then those layers. Training is in two
stages, as in BottleFit: (1) head distillation: the student's decoder output and each later feature map
regress (MSE) onto the teacher's, the tail frozen; (2) fine-tuning of decoder and tail with the encoder
frozen, by KD (alpha * CE + (1 - alpha) * T^2 * KL, T = 4, alpha = 0.9) or CE, on the payload as the
link carries it (int8: quantised and dequantised with the scale calibrated on the training split).

    [[variants]]
    name = "bottleneck"
    family = "bottleneck"
    channels = 3               # at the cut: 3 x 7 x 7 = 147 bytes per MNIST image at int8 (784 raw)
    stride = 4                 # spatial downsampling in the encoder (1, 2, 4, 8 or 16)
    payload = "int8"           # int8 | fp16 | fp32
    distill_epochs = 4         # stage 1
    finetune_epochs = 3        # stage 2 (0: none)
    finetune_loss = "kd"       # kd | ce
    lr_scale = 1.0             # times the workload's learning rate, both stages
    calibration_samples = 512  # training samples that set the int8 payload's scale
"""

from __future__ import annotations

import copy
import inspect
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from harness.core.config import Table
from harness.core.jobs import Artifact
from workloads.split_codec import PAYLOAD_DTYPES

STRATEGY = "bottleneck"
STRIDES = (1, 2, 4, 8, 16)
FINETUNE_LOSSES = ("kd", "ce")
KD_TEMPERATURE = 4.0  # the common small-CNN distillation setting
KD_ALPHA = 0.9
POINT = "bottleneck"  # the cut's name in results: the encoder's output


def parse(table: Table) -> dict:
    params = {
        "channels": table.take("channels", int, 3, minimum=1, maximum=4096),
        "stride": table.take("stride", int, 4, choices=STRIDES),
        "payload": table.take("payload", str, "int8", choices=PAYLOAD_DTYPES),
        "distill_epochs": table.take("distill_epochs", int, 4, minimum=1, maximum=1000),
        "finetune_epochs": table.take("finetune_epochs", int, 3, minimum=0, maximum=1000),
        "finetune_loss": table.take("finetune_loss", str, "kd", choices=FINETUNE_LOSSES),
        "lr_scale": table.take("lr_scale", float, 1.0, minimum=1e-6, maximum=100.0),
        "calibration_samples": table.take("calibration_samples", int, 512, minimum=1),
    }
    table.finish()
    return params


def precision(params: dict) -> str:
    return "fp32"  # both stages compute in fp32; the payload's dtype is a column of its own


class Crop(nn.Module):
    """The decoder's upsampled map cut to the size the tail expects (odd sizes round up on the way down)."""

    def __init__(self, height: int, width: int):
        super().__init__()
        self.height, self.width = height, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, :self.height, :self.width]


def encoder(body: nn.Module, width: int, channels: int, stride: int) -> nn.Sequential:
    """The teacher's layers, then one strided 3x3 convolution per halving, then a 1x1 convolution to
    `channels` with batch norm and no activation (a centred payload uses int8's range evenly)."""
    from workloads.models import conv_bn_relu

    halvings = [conv_bn_relu(width, width, stride=2) for _ in range(int(math.log2(stride)))]
    return nn.Sequential(body, *halvings, nn.Conv2d(width, channels, 1, bias=False), nn.BatchNorm2d(channels))


def decoder(channels: int, width: int, stride: int, height: int, map_width: int) -> nn.Sequential:
    """Back to the cut's width (3x3), one 2x transposed convolution per halving, cropped to the cut's size,
    then a 3x3 convolution; ReLU last, as every reference arch's cut is (its targets are >= 0)."""
    from workloads.models import conv_bn_relu

    doublings = [nn.Sequential(nn.ConvTranspose2d(width, width, 2, stride=2, bias=False), nn.BatchNorm2d(width),
                               nn.ReLU(inplace=True)) for _ in range(int(math.log2(stride)))]
    return nn.Sequential(conv_bn_relu(channels, width), *doublings, Crop(height, map_width),
                         conv_bn_relu(width, width))


class PayloadRoundTrip(nn.Module):
    """What the link does to the payload (int8: quantise and dequantise; fp16: cast and back), so that
    fine-tuning sees the tail's real input. No gradient flows through it: the encoder is frozen then."""

    def __init__(self, payload: str, qparams: dict | None):
        super().__init__()
        self.payload, self.qparams = payload, qparams

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.payload == "fp16":
            return x.half().float()
        if self.payload == "int8":
            scale, zero_point = self.qparams["scale"], self.qparams["zero_point"]
            q = torch.clamp(torch.round(x / scale) + zero_point, 0, 255)  # round half to even, as ONNX
            return (q - zero_point) * scale
        return x


class Tail(nn.Module):
    """Decoder, then the teacher's later layers; keeps each stage's output for head distillation."""

    def __init__(self, decoder: nn.Module, rest: nn.Sequential):
        super().__init__()
        self.decoder, self.rest = decoder, rest
        self.features: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.decoder(x)
        self.features = [x]
        for layer in self.rest:
            x = layer(x)
            self.features.append(x)
        return x


class Student(nn.Module):
    """Encoder -> (payload round trip) -> tail; modules in `frozen` keep eval mode and get no gradient."""

    def __init__(self, head: nn.Module, tail: Tail):
        super().__init__()
        self.head, self.tail = head, tail
        self.round_trip: nn.Module = nn.Identity()
        self.frozen: list[nn.Module] = []

    def freeze(self, *modules: nn.Module) -> None:
        for module in self.modules():
            module.requires_grad_(True)
        for module in modules:
            module.requires_grad_(False)
        self.frozen = list(modules)

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self.frozen:  # frozen batch norms keep their statistics
            module.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.round_trip(self.head(x)))


def teacher_stages(body: nn.Module, rest: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """The teacher's output at the cut and after each later layer."""
    x = body(x)
    out = [x]
    for layer in rest:
        x = layer(x)
        out.append(x)
    return out


def head_distillation_loss(student: Student, body: nn.Module, rest: nn.Sequential, x_train: np.ndarray):
    """Sum of the MSEs between the student's and the teacher's feature maps: at the decoder's output and
    after each later layer that outputs one (logits and pooled vectors are left to stage 2)."""
    xt = torch.from_numpy(x_train)

    def loss(logits, labels, idx):
        with torch.no_grad():
            targets = teacher_stages(body, rest, xt[idx])
        pairs = [(s, t) for s, t in zip(student.tail.features, targets, strict=True) if t.dim() == 4]
        return sum(nn.functional.mse_loss(s, t) for s, t in pairs)
    return loss


def batched(module: nn.Module, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([module(torch.from_numpy(x[i:i + batch_size]))
                          for i in range(0, len(x), batch_size)]).numpy()


def weight_bytes(path: Path) -> int:
    """Bytes of a model's parameters at their stored precision (sc2bench's encoder size, in bytes)."""
    import onnx

    from workloads.costs import WEIGHT_TYPES

    model = onnx.load(str(path))
    return sum(int(np.prod(t.dims)) * onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
               for t in model.graph.initializer if t.dims and t.data_type in WEIGHT_TYPES)


def build(base, variant) -> Artifact:
    import onnx

    from harness.core.hashing import content_hash
    from workloads import split_codec
    from workloads.costs import model_cost
    from workloads.export import export_onnx
    from workloads.training import seed_everything, train
    from workloads.variants.distill import kd_loss
    from workloads.variants.early_exit import split

    params = variant.params
    teacher = base.require_torch(STRATEGY)  # a user's ONNX model: one ConfigError line, before the cache

    def make(tmp: Path) -> dict:
        body, rest, width = split(teacher, base.torch_model["arch"])
        for module in (body, rest):
            module.requires_grad_(False)
        x_train, y_train = base.data.load_train()
        x_eval, y_eval = base.data.load_eval()
        with torch.no_grad():
            cut = body(torch.from_numpy(x_train[:2]))
        height, map_width = cut.shape[2], cut.shape[3]
        training = base.workload.training
        training = replace(training, learning_rate=training.learning_rate * params["lr_scale"])
        seed_everything(training.seed)
        stride, channels = params["stride"], params["channels"]
        student = Student(encoder(copy.deepcopy(body), width, channels, stride),
                          Tail(decoder(channels, width, stride, height, map_width), copy.deepcopy(rest)))

        started = time.perf_counter()
        student.freeze(student.tail.rest)
        train(student, x_train, y_train, replace(training, epochs=params["distill_epochs"]),
              loss_fn=head_distillation_loss(student, body, rest, x_train))
        distill_s = time.perf_counter() - started

        student.freeze(student.head)
        order = np.random.default_rng(training.seed).permutation(len(x_train))
        calibration = batched(student.head, x_train[order[:params["calibration_samples"]]])
        qparams = split_codec.calibrate(calibration) if params["payload"] == "int8" else None
        student.round_trip = PayloadRoundTrip(params["payload"], qparams)
        started = time.perf_counter()
        if params["finetune_epochs"]:
            teacher_logits = torch.from_numpy(batched(teacher, x_train))
            alpha = KD_ALPHA if params["finetune_loss"] == "kd" else 1.0
            train(student, x_train, y_train, replace(training, epochs=params["finetune_epochs"]),
                  loss_fn=kd_loss(teacher_logits, KD_TEMPERATURE, alpha))
        finetune_s = time.perf_counter() - started
        student.eval()

        export_onnx(student.head, x_eval, tmp / "head-fp32.onnx", output_names=("features",))
        payload_sample = batched(student.head, x_eval[:16])
        export_onnx(student.tail, payload_sample, tmp / "tail-fp32.onnx")
        for stage, code in (("head", split_codec.encode_head), ("tail", split_codec.decode_tail)):
            onnx.save(code(onnx.load(str(tmp / f"{stage}-fp32.onnx")), params["payload"], qparams),
                      str(tmp / f"{stage}.onnx"))
            (tmp / f"{stage}-fp32.onnx").unlink()
        return {"host_accuracy": split_codec.head_tail_accuracy(tmp / "head.onnx", tmp / "tail.onnx",
                                                                x_eval, y_eval),
                "payload_shape": list(payload_sample.shape[1:]), "cut_shape": list(cut.shape[1:]),
                "qparams": qparams, "distill_s": round(distill_s, 1), "finetune_s": round(finetune_s, 1)}

    # the codec's code is part of how this family builds (the family's own code is in the key already)
    codec = content_hash(inspect.getsource(split_codec))
    folder = base.build_variant(replace(variant, params={**params, "codec": codec}), make)
    meta = json.loads((folder / "meta.json").read_text())
    head, tail = folder / "head.onnx", folder / "tail.onnx"
    head_cost = model_cost(head, base.data.input_shape)
    tail_cost = model_cost(tail, tuple(meta["payload_shape"]))
    input_bytes = split_codec.payload_bytes(base.data.input_shape, "fp32")
    split_info = {
        "strategy": STRATEGY, "point": POINT, "point_index": None, "payload_dtype": params["payload"],
        "payload_shape": meta["payload_shape"],
        "payload_bytes": split_codec.payload_bytes(meta["payload_shape"], params["payload"]),
        "input_bytes": input_bytes, "head_macs": head_cost.macs, "tail_macs": tail_cost.macs,
        "head_params": head_cost.params, "head_bytes": weight_bytes(head)}
    macs = None if None in (head_cost.macs, tail_cost.macs) else head_cost.macs + tail_cost.macs
    return Artifact(
        workload=base.workload.name, variant=variant.name, family=STRATEGY, precision=variant.precision,
        files={"head": str(head), "tail": str(tail)}, eval_data=str(base.data.eval_path),
        n_eval=base.data.n_eval, n_classes=base.data.n_classes,
        model_bytes=head_cost.model_bytes + tail_cost.model_bytes, params=head_cost.params + tail_cost.params,
        macs=macs, variant_params=dict(params), host_accuracy=meta["host_accuracy"], split=split_info)
