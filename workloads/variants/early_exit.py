"""Early exits (BranchyNet, T-RECX): an exit head after the first stage of the network, trained jointly
(loss = final CE + exit_weight x exit CE, from the trained model).

A sample leaves at the exit when the exit is sure enough: confidence (max softmax) > threshold, or
entropy < threshold. Each threshold of the sweep is one variant, named <name>-t<threshold>; all share one
trained network, exported as parts (body, head, rest). A runtime that branches inside a graph
(onnxruntime) runs each variant as ONE call of a graph with an ONNX `If` on the criterion
(workloads/variants/exit_graph.py); others run two calls (stage 1: body and head; stage 2: the rest, only
for samples that stay), from ONNX or, with `tflite = true`, from .tflite stages (LiteRT: litert-torch has
no lowering for torch.cond, so no one-call .tflite). Each row's `exit_path` says which ran.

    [[variants]]
    name = "exit"
    family = "early_exit"
    thresholds = [0.8, 0.9, 0.95]
    criterion = "confidence"     # confidence | entropy
    exit_weight = 0.5            # T-RECX
    predictor = false            # true: an exit predictor skips the head for samples it deems hard
                                 # (workloads/variants/exit_predictor.py; one-call runtimes only)
    one_call = true              # false: always two calls, to compare with the one-call graph
    tflite = false               # true: also the two stages as .tflite (fp32), for LiteRT / tflite-runtime
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from harness.core.config import Table
from harness.core.errors import ConfigError
from harness.core.exit_rule import CRITERIA
from harness.core.jobs import Artifact

# parameters that do not change the trained network: every threshold's variant shares one build
PER_VARIANT = ("threshold", "predictor", "one_call", "tflite")
# the exit head max-pools the features to at most this grid, then classifies linearly: on MNIST's ResNet-8
# as accurate as the whole network (97.8%) and cheaper than a strided convolution head, which cost as much
# as a tenth of the network and was less sure of itself (measured: exit accuracy 94.2%)
EXIT_GRID_PX = 7
JOINT_STATE = "joint.pt"


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
              "lr_scale": table.take("lr_scale", float, 0.5, minimum=0.0, maximum=100.0),
              "predictor": table.take("predictor", bool, False), "one_call": table.take("one_call", bool, True),
              "tflite": table.take("tflite", bool, False)}
    if params["predictor"] and not params["one_call"]:
        raise ConfigError(f"{table.where('predictor')} = true needs one_call = true: the exit predictor "
                          f"skips the head inside the one-call graph")
    if params["predictor"] and params["tflite"]:
        raise ConfigError(f"{table.where('tflite')} = true with predictor = true: LiteRT runs the two stages, "
                          f"and the exit predictor runs only inside onnxruntime's one-call graph; give the "
                          f"predictor and the .tflite stages separate [[variants]] tables")
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
    """Input -> (features for stage 2, the exit's logits). The exit max-pools the features (height, width:
    `feature_px`) to a grid of at most EXIT_GRID_PX a side and classifies them with one linear layer: two
    cheap operators, so that the samples that stay pay little for having tried."""

    def __init__(self, body: nn.Module, channels: int, n_classes: int, feature_px: tuple[int, int]):
        super().__init__()
        self.body = body
        kernel = -(-min(feature_px) // EXIT_GRID_PX)
        cells = math.prod(-(-px // kernel) for px in feature_px)  # ceil_mode: a partial window counts
        self.exit = nn.Sequential(nn.MaxPool2d(kernel, ceil_mode=True), nn.Flatten(),
                                  nn.Linear(channels * cells, n_classes))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return features, self.exit(features)


def joint_model(base, x_eval) -> Joint:
    """The workload's trained model split at the exit, with a fresh exit head."""
    model = base.require_torch("early_exit")
    body, rest, channels = split(model, base.torch_model["arch"])
    with torch.no_grad():
        feature_px = tuple(body(torch.from_numpy(x_eval[:1])).shape[-2:])
    return Joint(Stage1(body, channels, base.data.n_classes, feature_px), rest)


class Joint(nn.Module):
    """Both stages for training: returns the final logits, keeps the exit's for the joint loss."""

    def __init__(self, stage1: Stage1, stage2: nn.Module):
        super().__init__()
        self.stage1, self.stage2 = stage1, stage2
        self.exit_logits = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features, self.exit_logits = self.stage1(x)
        return self.stage2(features)


def export_parts(joint: Joint, x_eval, tmp: Path) -> list[int]:
    """body.onnx (input -> features), head.onnx (features -> the exit's logits), stage2.onnx (features ->
    logits) and, for runtimes that run early exits as two calls, stage1.onnx (body and head: input ->
    features, exit logits). Returns the features' shape (one sample)."""
    import onnx
    from onnx import compose

    from workloads.export import export_onnx

    export_onnx(joint.stage1.body, x_eval, tmp / "body.onnx", output_names=("features",))
    with torch.no_grad():
        features = joint.stage1.body(torch.from_numpy(x_eval[:16])).numpy()
    export_onnx(joint.stage1.exit, features, tmp / "head.onnx", output_names=("exit_logits",))
    export_onnx(joint.stage2, features, tmp / "stage2.onnx")
    body, head = onnx.load(str(tmp / "body.onnx")), onnx.load(str(tmp / "head.onnx"))
    stage1 = compose.merge_models(body, compose.add_prefix(head, "head/"),
                                  io_map=[("features", "head/" + head.graph.input[0].name)],
                                  outputs=["features", "head/exit_logits"])
    stage1.graph.output[1].name = "exit_logits"
    for node in stage1.graph.node:
        node.output[:] = ["exit_logits" if o == "head/exit_logits" else o for o in node.output]
    onnx.checker.check_model(stage1)
    onnx.save(stage1, str(tmp / "stage1.onnx"))
    return list(features.shape[1:])


def one_call_file(base, folder: Path, params: dict, feature_shape: tuple, exit_macs: dict) -> Path:
    """The one-call graph for this threshold (and its exit predictor, fitted here), derived from the
    shared parts in `folder` and cached beside them."""
    import importlib
    import inspect

    from harness.core.hashing import content_hash
    from workloads.cache import cached_dir
    from workloads.variants import exit_graph, exit_predictor

    code = "".join(inspect.getsource(importlib.import_module(m.__name__)) for m in (exit_graph, exit_predictor))
    key = content_hash({"parts": folder.name, "threshold": params["threshold"], "criterion": params["criterion"],
                        "predictor": params["predictor"], "code": code})

    def build(tmp: Path) -> None:
        predictor = None
        if params["predictor"]:
            predictor = fit_predictor(base, folder, params, exit_macs)
        exit_graph.one_call_graph(folder / "body.onnx", folder / "head.onnx", folder / "stage2.onnx",
                                  params["criterion"], params["threshold"], tmp / "model.onnx", predictor)

    entry, _ = cached_dir("variants", f"{base.workload.name}-early_exit-one-call-{key}", build)
    return entry / "model.onnx"


def fit_predictor(base, folder: Path, params: dict, exit_macs: dict):
    """The exit predictor for this threshold, fitted on the training split's pooled features."""
    import onnxruntime as ort

    from harness.core.exit_rule import exits
    from workloads.variants import exit_predictor

    def run(name: str, x):
        session = ort.InferenceSession(str(folder / name), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: x})[0]

    x_train, _ = base.data.load_train()
    features = run("body.onnx", x_train)
    would_leave = exits(run("head.onnx", features), params["criterion"], params["threshold"])
    return exit_predictor.fit(exit_predictor.pooled(features), would_leave, exit_macs["head"],
                              exit_macs["rest"], base.workload.training.seed)


def tflite_stages(base, folder: Path) -> list[Path]:
    """stage1.tflite and stage2.tflite (fp32, batch 1), converted with litert-torch from the trained network
    saved in `folder` and cached beside it (this module's code is in the folder's key)."""
    from workloads.cache import cached_dir
    from workloads.quiet import native_output_captured
    from workloads.variants.tflite import converter

    def convert(tmp: Path) -> None:
        litert_torch = converter(base.workload.file, "tflite = true on an early exit needs litert-torch")
        x_eval, _ = base.data.load_eval()
        joint = joint_model(base, x_eval)
        joint.load_state_dict(torch.load(folder / JOINT_STATE, map_location="cpu", weights_only=True))
        joint.eval()
        sample = torch.from_numpy(x_eval[:1])
        with torch.no_grad():
            features = joint.stage1.body(sample)
        with native_output_captured(f"converting {folder.name}'s early-exit stages to TFLite"):
            litert_torch.convert(joint.stage1, (sample,)).export(str(tmp / "stage1.tflite"))
            litert_torch.convert(joint.stage2, (features,)).export(str(tmp / "stage2.tflite"))

    entry, _ = cached_dir("variants", f"{folder.name}-tflite", convert)
    return [entry / "stage1.tflite", entry / "stage2.tflite"]


def build(base, variant) -> Artifact:
    import torch.nn.functional as F

    from workloads.costs import model_cost
    from workloads.training import seed_everything, train
    from workloads.variants import exit_predictor

    params = variant.params
    shared = {k: v for k, v in params.items() if k not in PER_VARIANT}

    def make(tmp: Path) -> dict:
        x_train, y_train = base.data.load_train()
        x_eval, _ = base.data.load_eval()
        joint = joint_model(base, x_eval)
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
        torch.save(joint.state_dict(), tmp / JOINT_STATE)  # the trained network, for .tflite stages
        return {"feature_shape": export_parts(joint, x_eval, tmp)}

    folder = base.build_variant(replace(variant, params=shared), make)
    feature_shape = tuple(json.loads((folder / "meta.json").read_text())["feature_shape"])
    costs = {"body": model_cost(folder / "body.onnx", base.data.input_shape),
             "head": model_cost(folder / "head.onnx", feature_shape),
             "rest": model_cost(folder / "stage2.onnx", feature_shape)}
    exit_macs = {part: cost.macs for part, cost in costs.items()}
    exit_macs["predictor"] = exit_predictor.macs(feature_shape) if params["predictor"] else 0
    files = {"stage1": str(folder / "stage1.onnx"), "stage2": str(folder / "stage2.onnx")}
    if params["one_call"]:
        files["onnx"] = str(one_call_file(base, folder, params, feature_shape, exit_macs))
    stages = [{"onnx": files["stage1"]}, {"onnx": files["stage2"]}]
    if params["tflite"]:
        for stage, path in zip(stages, tflite_stages(base, folder)):
            stage["tflite"] = str(path)
    known = None not in exit_macs.values()
    return Artifact(
        workload=base.workload.name, variant=variant.name, family="early_exit", precision=variant.precision,
        files=files, eval_data=str(base.data.eval_path), n_eval=base.data.n_eval, n_classes=base.data.n_classes,
        model_bytes=sum(c.model_bytes for c in costs.values()),
        params=sum(c.params for c in costs.values()) + (feature_shape[0] + 1 if params["predictor"] else 0),
        macs=sum(exit_macs.values()) if known else None, variant_params=dict(params),
        stages=[{**stages[0], "macs": exit_macs["body"] + exit_macs["head"] if known else None},
                {**stages[1], "macs": exit_macs["rest"]}],
        exit={"threshold": params["threshold"], "criterion": params["criterion"],
              "predictor": params["predictor"], "macs": exit_macs})
