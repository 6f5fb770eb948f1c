"""Knowledge distillation: a smaller student trained from the workload's model (the teacher).

Loss = alpha * CE(student, y) + (1 - alpha) * T^2 * KL(softmax(teacher / T) || softmax(student / T));
alpha = 1 is the same student trained with cross-entropy alone, the baseline that shows what
distillation bought.

    [[variants]]
    name = "student-kd"
    family = "distill"
    student_arch = "small_cnn"
    student_params = { width = 8 }
    temperature = 4.0
    alpha = 0.5
    seed = 1                   # optional: the student's seed (default: the workload's)
    hint = { teacher_layer = "stacks.1", student_layer = "features.1", epochs = 4 }   # optional

With `hint` (FitNets), a first stage trains the student up to `student_layer` to regress, through a 1x1
convolution, the teacher's `teacher_layer` output (MSE; the larger feature map average-pooled to the
smaller); the KD stage then trains the whole student. Layers are module names (`model.named_modules()`).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from harness.core.config import Table
from harness.core.errors import ConfigError, unknown_name
from harness.core.jobs import Artifact
from workloads.models import ARCHS


def parse(table: Table) -> dict:
    params = {
        "student_arch": table.take("student_arch", choices=ARCHS),
        "student_params": table.table("student_params").rest(),
        "temperature": table.take("temperature", float, 4.0, minimum=0.1),
        "alpha": table.take("alpha", float, 0.9),
        "epochs": table.take("epochs", int, 0, minimum=0),  # 0: the workload's training epochs
    }
    if table.has("seed"):  # default: the workload's training seed
        params["seed"] = table.take("seed", int)
    hint = table.table("hint")
    if hint.data:
        params["hint"] = {"teacher_layer": hint.take("teacher_layer", str),
                          "student_layer": hint.take("student_layer", str),
                          "epochs": hint.take("epochs", int, 4, minimum=1)}
        hint.finish()
    if not 0.0 <= params["alpha"] <= 1.0:
        raise ConfigError(f"{table.where('alpha')} = {params['alpha']}: must be in [0, 1] "
                          f"(1 = cross-entropy only)")
    table.finish()
    return params


def precision(params: dict) -> str:
    return "fp32"


def kd_loss(teacher_logits: torch.Tensor, temperature: float, alpha: float):
    def loss(student_logits, labels, idx):
        hard = F.cross_entropy(student_logits, labels)
        if alpha >= 1.0:
            return hard
        soft = F.kl_div(F.log_softmax(student_logits / temperature, dim=1),
                        F.softmax(teacher_logits[idx] / temperature, dim=1), reduction="batchmean")
        return alpha * hard + (1 - alpha) * temperature ** 2 * soft
    return loss


def layer(model: nn.Module, name: str, where: str) -> nn.Module:
    modules = dict(model.named_modules())
    if name not in modules or not name:
        raise unknown_name("layer", name, [n for n in modules if n], where)
    return modules[name]


class HintRegression(nn.Module):
    """The student up to its hint layer, then a 1x1 convolution to the teacher's hint width."""

    def __init__(self, student: nn.Module, student_layer: nn.Module, student_channels: int,
                 teacher_channels: int):
        super().__init__()
        self.student, self.regressor = student, nn.Conv2d(student_channels, teacher_channels, 1)
        self._features = {}
        self.hook = student_layer.register_forward_hook(
            lambda m, i, out: self._features.__setitem__("out", out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.student(x)  # the layers after the hint get no gradient, so the optimiser leaves them be
        return self.regressor(self._features["out"])


def hint_stage(teacher: nn.Module, student: nn.Module, hint: dict, x_train, y_train, training,
               where: str) -> None:
    """FitNets stage 1: the student's hint layer regresses the teacher's (MSE through a regressor)."""
    from dataclasses import replace

    from workloads.training import train

    captured = {}
    teacher_hook = layer(teacher, hint["teacher_layer"], f"{where}.teacher_layer").register_forward_hook(
        lambda m, i, out: captured.__setitem__("t", out))
    student_layer = layer(student, hint["student_layer"], f"{where}.student_layer")
    probe = torch.from_numpy(x_train[:2])
    with torch.no_grad():
        teacher(probe)
        student_out = {}
        handle = student_layer.register_forward_hook(lambda m, i, out: student_out.__setitem__("s", out))
        student(probe)
        handle.remove()
    t_shape, s_shape = captured["t"].shape, student_out["s"].shape
    if len(t_shape) != 4 or len(s_shape) != 4:
        raise ConfigError(f"{where}: hint layers must output feature maps (N, C, H, W); got "
                          f"{tuple(t_shape)} (teacher) and {tuple(s_shape)} (student)")
    size = (min(t_shape[2], s_shape[2]), min(t_shape[3], s_shape[3]))
    model = HintRegression(student, student_layer, s_shape[1], t_shape[1])
    xt = torch.from_numpy(x_train)

    def loss(regressed, labels, idx):
        with torch.no_grad():
            teacher(xt[idx])
        target = F.adaptive_avg_pool2d(captured["t"], size)
        return F.mse_loss(F.adaptive_avg_pool2d(regressed, size), target)

    train(model, x_train, y_train, replace(training, epochs=hint["epochs"]), loss_fn=loss)
    model.hook.remove()  # the student exports without hooks
    teacher_hook.remove()


def build(base, variant) -> Artifact:
    from dataclasses import replace

    from workloads.export import export_onnx
    from workloads.models import build_model
    from workloads.training import accuracy, seed_everything, train

    params = variant.params

    def make(tmp: Path) -> dict:
        teacher = base.require_torch("distill")
        x_train, y_train = base.data.load_train()
        x_eval, y_eval = base.data.load_eval()
        with torch.no_grad():
            teacher_logits = torch.cat([teacher(torch.from_numpy(x_train[i:i + 512]))
                                        for i in range(0, len(x_train), 512)])
        training = base.workload.training
        if "seed" in params:  # another student initialisation and data order (seed sweeps)
            training = replace(training, seed=params["seed"])
        seed_everything(training.seed)
        spec = base.torch_model
        student = build_model(params["student_arch"], spec["in_channels"], spec["n_classes"],
                              params["student_params"], str(base.workload.file))
        if "hint" in params:
            hint_stage(teacher, student, params["hint"], x_train, y_train, training,
                       f"{base.workload.file}: variant '{variant.name}' hint")
        if params["epochs"]:
            training = replace(training, epochs=params["epochs"])
        train(student, x_train, y_train, training,
              loss_fn=kd_loss(teacher_logits, params["temperature"], params["alpha"]))
        export_onnx(student, x_eval, tmp / "model.onnx")
        torch.save(student.state_dict(), tmp / "model.pt")
        return {"host_accuracy": accuracy(student, x_eval, y_eval),
                "torch_model": {"arch": params["student_arch"], "in_channels": spec["in_channels"],
                                "n_classes": spec["n_classes"], "params": params["student_params"]}}

    folder = base.build_variant(variant, make)
    return base.artifact(variant.name, "distill", variant.precision, folder, params)
