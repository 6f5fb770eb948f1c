"""Early exits (BranchyNet, T-RECX): an exit head after the first stage of the network, trained jointly
(loss = final CE + exit_weight x exit CE, from the trained model), exported as two stage models.

At run time the device runs stage 1 (features and the exit's logits), and runs stage 2 only for samples
whose exit is not sure enough: confidence (max softmax) > threshold, or entropy < threshold. Each
threshold of the sweep is one variant, named <name>-t<threshold>; all share one built artifact.

    [[variants]]
    name = "exit"
    family = "early_exit"
    thresholds = [0.8, 0.9, 0.95]
    criterion = "confidence"     # confidence | entropy
    exit_weight = 0.5            # T-RECX
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from harness.core.config import Table
from harness.core.errors import ConfigError
from harness.core.jobs import Artifact

CRITERIA = ("confidence", "entropy")


def parse(table: Table) -> dict:
    thresholds = table.take("thresholds", list)
    criterion = table.take("criterion", str, "confidence", choices=CRITERIA)
    if not thresholds or not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in thresholds):
        raise ConfigError(f"{table.where('thresholds')} = {thresholds!r}: a non-empty list of numbers")
    if criterion == "confidence" and not all(0.0 <= t <= 1.0 for t in thresholds):
        raise ConfigError(f"{table.where('thresholds')} = {thresholds!r}: confidence thresholds lie in [0, 1]")
    params = {"thresholds": [float(t) for t in thresholds], "criterion": criterion,
              "exit_weight": table.take("exit_weight", float, 0.5, minimum=0.0),
              "epochs": table.take("epochs", int, -1, minimum=-1),
              "lr_scale": table.take("lr_scale", float, 0.5, minimum=0.0, maximum=100.0)}
    table.finish()
    return params


def expand(name: str, params: dict) -> list[tuple[str, dict]]:
    """One variant per threshold."""
    shared = {k: v for k, v in params.items() if k != "thresholds"}
    return [(f"{name}-t{t:g}", {**shared, "threshold": t}) for t in params["thresholds"]]


def precision(params: dict) -> str:
    return "fp32"


def split(model: nn.Module, arch: str) -> tuple[nn.Module, nn.Module, int]:
    """(stage 1, stage 2, channels at the exit) for each reference architecture."""
    if arch == "resnet8":  # T-RECX: after the first residual stack
        return (nn.Sequential(model.stem, model.stacks[0]),
                nn.Sequential(*model.stacks[1:], model.pool, model.classifier), model.stem[0].out_channels)
    if arch == "ds_cnn":   # after the stem and the first depthwise-separable block
        layers = list(model.features)
        return nn.Sequential(*layers[:3]), nn.Sequential(*layers[3:], model.classifier), layers[2][0].out_channels
    if arch == "small_cnn":  # after the first two convolutions
        layers = list(model.features)
        return nn.Sequential(*layers[:2]), nn.Sequential(*layers[2:], model.classifier), layers[1][0].out_channels
    raise ConfigError(f"early exits are not defined for arch '{arch}'")


class Stage1(nn.Module):
    """Input -> (features for stage 2, the exit's logits). The exit is T-RECX-like: a strided 3x3
    convolution that doubles the channels, global pooling and a classifier (pooling the early features
    alone leaves too little to classify)."""

    def __init__(self, body: nn.Module, channels: int, n_classes: int):
        from workloads.models import conv_bn_relu

        super().__init__()
        self.body = body
        self.exit = nn.Sequential(conv_bn_relu(channels, 2 * channels, stride=2), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(2 * channels, n_classes))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return features, self.exit(features)


class Joint(nn.Module):
    """Both stages for training: returns the final logits, keeps the exit's for the joint loss."""

    def __init__(self, stage1: Stage1, stage2: nn.Module):
        super().__init__()
        self.stage1, self.stage2 = stage1, stage2
        self.exit_logits = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features, self.exit_logits = self.stage1(x)
        return self.stage2(features)


def build(base, variant) -> Artifact:
    import torch.nn.functional as F

    from workloads.costs import model_cost
    from workloads.export import export_onnx
    from workloads.training import seed_everything, train

    params = variant.params
    shared = {k: v for k, v in params.items() if k != "threshold"}

    def make(tmp: Path) -> dict:
        model = base.require_torch("early_exit")
        body, rest, channels = split(model, base.torch_model["arch"])
        joint = Joint(Stage1(body, channels, base.data.n_classes), rest)
        x_train, y_train = base.data.load_train()
        x_eval, _ = base.data.load_eval()
        training = base.workload.training
        epochs = training.epochs if params["epochs"] < 0 else params["epochs"]
        seed_everything(training.seed)

        def loss(logits, labels, idx):
            return F.cross_entropy(logits, labels) + params["exit_weight"] * F.cross_entropy(
                joint.exit_logits, labels)

        train(joint, x_train, y_train, replace(training, epochs=epochs,
                                               learning_rate=training.learning_rate * params["lr_scale"]),
              loss_fn=loss)
        joint.eval()
        export_onnx(joint.stage1, x_eval, tmp / "stage1.onnx", output_names=("features", "exit_logits"))
        with torch.no_grad():
            features = joint.stage1(torch.from_numpy(x_eval[:16]))[0].numpy()
        export_onnx(joint.stage2, features, tmp / "stage2.onnx")
        return {"feature_shape": list(features.shape[1:])}

    folder = base.build_variant(replace(variant, params=shared), make)
    meta = json.loads((folder / "meta.json").read_text())
    stage_paths = [folder / "stage1.onnx", folder / "stage2.onnx"]
    costs = [model_cost(stage_paths[0], base.data.input_shape),
             model_cost(stage_paths[1], tuple(meta["feature_shape"]))]
    stages = [{"onnx": str(stage_paths[0]), "macs": costs[0].macs},
              {"onnx": str(stage_paths[1]), "macs": costs[1].macs}]
    return Artifact(
        workload=base.workload.name, variant=variant.name, family="early_exit", precision=variant.precision,
        files={"stage1": str(stage_paths[0]), "stage2": str(stage_paths[1])},
        eval_data=str(base.data.eval_path), n_eval=base.data.n_eval, n_classes=base.data.n_classes,
        model_bytes=sum(c.model_bytes for c in costs), params=sum(c.params for c in costs),
        macs=sum(c.macs for c in costs), variant_params=dict(params), stages=stages,
        exit={"threshold": params["threshold"], "criterion": params["criterion"]})
