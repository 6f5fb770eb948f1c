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
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from harness.errors import ConfigError
from harness.plan import Artifact
from harness.tomlconf import Table
from workloads.models import ARCHS
from workloads.variants.source import family_source


def parse(table: Table) -> dict:
    params = {
        "student_arch": table.take("student_arch", choices=ARCHS),
        "student_params": table.table("student_params").rest(),
        "temperature": table.take("temperature", float, 4.0, minimum=0.1),
        "alpha": table.take("alpha", float, 0.9),
        "epochs": table.take("epochs", int, 0, minimum=0),  # 0: the workload's training epochs
    }
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
        seed_everything(base.workload.training.seed)
        spec = base.torch_model
        student = build_model(params["student_arch"], spec["in_channels"], spec["n_classes"],
                              params["student_params"], str(base.workload.file))
        training = base.workload.training
        if params["epochs"]:
            training = replace(training, epochs=params["epochs"])
        train(student, x_train, y_train, training,
              loss_fn=kd_loss(teacher_logits, params["temperature"], params["alpha"]))
        export_onnx(student, x_eval, tmp / "model.onnx")
        torch.save(student.state_dict(), tmp / "model.pt")
        return {"host_accuracy": accuracy(student, x_eval, y_eval),
                "torch_model": {"arch": params["student_arch"], "in_channels": spec["in_channels"],
                                "n_classes": spec["n_classes"], "params": params["student_params"]}}

    folder = base.build_variant(variant, make, family_source("distill"))
    return base.artifact(variant.name, "distill", variant.precision, folder, params)
