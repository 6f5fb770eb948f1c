"""Pruned variants, fine-tuned after pruning.

    method = "magnitude"   unstructured: the smallest weights (L1, across all conv and linear layers) set
                           to zero; same shapes, so dense kernels do as much work as before
    method = "channel"     structured: whole output channels removed (torch-pruning, L1 importance,
                           the classifier kept whole); smaller layers, fewer MACs

    [[variants]]
    name = "pruned-50"
    family = "prune"
    method = "channel"
    ratio = 0.5               # share of weights (magnitude) or channels (channel) removed, in [0, 1)
    fine_tune_epochs = 8      # default: the workload's training epochs; 0 = no fine-tuning
    fine_tune_lr_scale = 0.5  # times the workload's learning rate
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from harness.core.config import Table
from harness.core.errors import ConfigError
from harness.core.jobs import Artifact

METHODS = ("magnitude", "channel")


def parse(table: Table) -> dict:
    method = table.take("method", choices=METHODS)
    ratio = table.take("ratio", float)
    if not 0.0 <= ratio < 1.0:
        raise ConfigError(f"{table.where('ratio')} = {ratio}: must be in [0, 1) (a share of weights or "
                          f"channels to remove)")
    params = {"method": method, "ratio": ratio,
              # default: the workload's own training schedule again, at half its learning rate
              "fine_tune_epochs": table.take("fine_tune_epochs", int, -1, minimum=-1),
              "fine_tune_lr_scale": table.take("fine_tune_lr_scale", float, 0.5, minimum=0.0,
                                                              maximum=100.0)}
    table.finish()
    return params


def precision(params: dict) -> str:
    return "fp32"


def prunable(model: nn.Module) -> list[tuple[nn.Module, str]]:
    return [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def magnitude_prune(model: nn.Module, ratio: float) -> None:
    """Global L1 unstructured pruning; masks stay in place during fine-tuning (torch's reparametrisation)."""
    from torch.nn.utils import prune

    prune.global_unstructured(prunable(model), pruning_method=prune.L1Unstructured, amount=ratio)


def make_permanent(model: nn.Module) -> None:
    from torch.nn.utils import prune

    for module, name in prunable(model):
        if prune.is_pruned(module):
            prune.remove(module, name)


def channel_prune(model: nn.Module, ratio: float, example: torch.Tensor) -> None:
    import torch_pruning as tp

    classifier = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    pruner = tp.pruner.MagnitudePruner(model, example, importance=tp.importance.MagnitudeImportance(p=1),
                                       pruning_ratio=ratio, ignored_layers=[classifier])
    pruner.step()


def build(base, variant) -> Artifact:
    from workloads.export import export_onnx
    from workloads.training import accuracy, seed_everything, train

    params = variant.params

    def make(tmp: Path) -> dict:
        model = base.require_torch("prune")
        x_train, y_train = base.data.load_train()
        x_eval, y_eval = base.data.load_eval()
        seed_everything(base.workload.training.seed)
        if params["method"] == "magnitude":
            magnitude_prune(model, params["ratio"])
        else:
            channel_prune(model, params["ratio"], torch.from_numpy(x_train[:1]))
        training = base.workload.training
        epochs = training.epochs if params["fine_tune_epochs"] < 0 else params["fine_tune_epochs"]
        if epochs:
            train(model, x_train, y_train, replace(
                training, epochs=epochs, learning_rate=training.learning_rate * params["fine_tune_lr_scale"]))
        make_permanent(model)
        model.eval()
        export_onnx(model, x_eval, tmp / "model.onnx")
        meta = {"host_accuracy": accuracy(model, x_eval, y_eval)}
        if params["method"] == "magnitude":  # same shapes: the reference architecture still loads it
            torch.save(model.state_dict(), tmp / "model.pt")
            meta["torch_model"] = base.torch_model
        return meta

    folder = base.build_variant(variant, make)
    return base.artifact(variant.name, "prune", variant.precision, folder, params)
