"""Turning a workload into artifacts on the host: prepare data, train (or load) the base model once,
export it, and build each variant. Everything is cached by a hash of what determines it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.core.errors import ConfigError, EdgebenchError
from harness.core.hashing import content_hash
from harness.core.jobs import Artifact
from workloads.cache import NotCached, cached_dir
from workloads.costs import ModelCost, model_cost
from workloads.datasets import PreparedData, prepare, sample_indices
from workloads.spec import USER_MODEL_FAMILIES, WorkloadSpec
from workloads.variants import FAMILIES

if TYPE_CHECKING:
    from workloads.user_models import UserModel

# Bump when training or export changes in a way the hashed inputs do not show.
BUILD_VERSION = 1

Progress = Callable[[str], None]

# What a built variant's folder may hold: (format, file name). The first present is the main model.
ARTIFACT_FILES = (("onnx", "model.onnx"), ("tflite", "model.tflite"), ("qonnx", "model.qonnx.onnx"),
                  ("torch_state", "model.pt"))


@dataclass
class BaseModel:
    """A workload's trained (or given) model, its evaluation data and its nominal cost."""

    workload: WorkloadSpec
    data: PreparedData
    onnx_path: Path | None         # None: a user's .tflite (tflite_path)
    torch_state_path: Path | None
    torch_model: dict | None
    host_accuracy: float | None
    was_trained: bool
    user: UserModel | None = None  # a user's model: its inputs, scoring and sources

    def artifact(self, variant: str, family: str, precision: str, folder: Path | None = None,
                 variant_params: dict | None = None, same_macs_as_base: bool = False,
                 backend_options: dict | None = None, notes: list | None = None) -> Artifact:
        """The artifact in `folder` (a built variant: its model files and meta.json), or the base model
        itself when `folder` is None."""
        if folder is None:
            files = {"onnx": str(self.onnx_path)} if self.onnx_path is not None else {}
            if self.user is not None and self.user.tflite_path is not None:
                files["tflite"] = str(self.user.tflite_path)
            if self.torch_state_path is not None:
                files["torch_state"] = str(self.torch_state_path)
            torch_model, accuracy = self.torch_model, self.host_accuracy
        else:
            meta = json.loads((folder / "meta.json").read_text())
            files = {fmt: str(folder / name) for fmt, name in ARTIFACT_FILES if (folder / name).exists()}
            torch_model, accuracy = meta.get("torch_model"), meta.get("host_accuracy")
        if torch_model is None:
            files.pop("torch_state", None)
        else:
            from workloads.models import device_spec  # torch is imported only where a model has one

            torch_model, source = device_spec(torch_model)
            files["torch_code"] = str(torch_code_file(source))
        if "onnx" in files:
            cost = model_cost(Path(files["onnx"]), self.data.input_shape)
        else:  # another format of the base network (.tflite): the base's counts, the file's own size
            main = Path(next(iter(files.values())))
            cost = replace(self.cost, model_bytes=main.stat().st_size)
        macs = self.cost.macs if same_macs_as_base else cost.macs
        reason = self.cost.macs_reason if same_macs_as_base else cost.macs_reason
        return Artifact(
            workload=self.workload.name, variant=variant, family=family, precision=precision,
            files=files, eval_data=str(self.data.eval_path), n_eval=self.data.n_eval,
            n_classes=self.data.n_classes, model_bytes=cost.model_bytes, params=cost.params, macs=macs,
            torch_model=torch_model if "torch_state" in files else None,
            variant_params=dict(variant_params or {}), host_accuracy=accuracy,
            weight_sparsity=cost.weight_sparsity, backend_options=dict(backend_options or {}),
            **self.model_io(files, [*(notes or []), *([reason] if macs is None and reason else [])]))

    def model_io(self, files: dict, notes: list = ()) -> dict:
        """A user's model: the Artifact fields that say how its data is fed and its output scored, for the
        artifact's own file (a converter may reorder inputs or rename outputs); nothing for a reference
        workload (one input `x`, top-1)."""
        if self.user is None:
            return {"notes": list(notes)} if notes else {}
        return self.user.io_for(files, list(notes))

    @cached_property
    def cost(self) -> ModelCost:
        if self.onnx_path is None:  # a .tflite only: counted from LiteRT's op list, by the same convention
            from workloads.tflite_costs import tflite_cost

            return tflite_cost(self.user.tflite_path)
        return model_cost(self.onnx_path, self.data.input_shape)

    def calibration_feeds(self, n_samples: int, family: str) -> list[dict[str, np.ndarray]]:
        """Up to `n_samples` samples to calibrate static int8 on, one feed (model input name -> a batch of
        one) each: the training split of a reference workload, or a user's calibration set."""
        if self.user is not None:
            return self.user.calibration_feeds(n_samples, family)
        import onnx

        from workloads.signatures import onnx_signature

        input_name = onnx_signature(onnx.load(str(self.onnx_path))).inputs[0].name
        x_train, _ = self.data.load_train()
        return [{input_name: x_train[i:i + 1]} for i in sample_indices(len(x_train), n_samples)]

    def require_torch(self, family: str):
        """The trained reference model as a torch module (families that retrain need one)."""
        import torch

        from workloads.models import build_model

        if self.torch_model is None:
            raise ConfigError(f"{self.workload.file}: the {family} family needs a PyTorch reference model "
                              f"([model] arch = ...); a user's model takes {', '.join(USER_MODEL_FAMILIES)}")
        spec = self.torch_model
        model = build_model(spec["arch"], spec["in_channels"], spec["n_classes"], spec["params"])
        model.load_state_dict(torch.load(self.torch_state_path, map_location="cpu", weights_only=True))
        return model.eval()

    def require_onnx(self, family: str) -> Path:
        """The base model as ONNX, which every family but the baseline builds from."""
        if self.onnx_path is None:
            raise ConfigError(f"{self.workload.file}: family {family!r} builds from an ONNX model; a .tflite given "
                              f"as the model takes only the baseline (give its ONNX or TensorFlow source)")
        return self.onnx_path

    def build_variant(self, variant, build: Callable[[Path], dict]) -> Path:
        """A variant's folder, built once by `build(tmp) -> meta` and cached by a hash of the base model,
        the family, its parameters and the family's code (changing how a family builds rebuilds it)."""
        from workloads.variants.fingerprint import family_code

        model = self.require_onnx(variant.family)
        key = content_hash({"base": str(model), "base_bytes": model.stat().st_size,
                            "family": variant.family, "params": variant.params, "code": family_code(variant.family),
                            "build_version": BUILD_VERSION,
                            # a user's calibration set (its cached copy is named by its content)
                            **({"calibration": str(self.user.calibration.path)}
                               if self.user is not None and self.user.calibration is not None else {})})

        def build_and_describe(tmp: Path) -> None:
            meta = build(tmp)
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2))

        folder, _ = cached_dir("variants", f"{self.workload.name}-{variant.family}-{key}", build_and_describe)
        return folder


def torch_code_file(source: str) -> Path:
    """A model definition as a file of its own (content-addressed), staged with the artifact."""
    folder, _ = cached_dir("torch-code", content_hash(source), lambda tmp: (tmp / "model_def.py").write_text(source),
                           cheap=True)
    return folder / "model_def.py"


def _train_reference(workload: WorkloadSpec, data: PreparedData, progress: Progress) -> tuple[Path, bool]:
    import torch

    from workloads.export import export_onnx
    from workloads.models import build_model, definition_source
    from workloads.training import accuracy, seed_everything, train

    spec = workload.model
    in_channels, n_classes = data.input_shape[0], data.n_classes
    key = content_hash({
        "arch": spec.arch, "params": spec.params, "source": definition_source(spec.arch),
        "dataset": workload.dataset.describe(), "training": workload.training.describe(),
        "torch": torch.__version__, "build_version": BUILD_VERSION,
    })

    def build(tmp: Path) -> None:
        seed_everything(workload.training.seed)
        model = build_model(spec.arch, in_channels, n_classes, spec.params, str(workload.file))
        x_train, y_train = data.load_train()
        try:
            train(model, x_train, y_train, workload.training,
                  on_epoch=lambda e, n, loss: progress(f"training {workload.name}: epoch {e}/{n}, "
                                                       f"loss {loss:.3f}"))
        except ConfigError as exc:  # diverged: the workload file's [training] is what to change
            raise ConfigError(f"{workload.file}: {exc}") from None
        x_eval, y_eval = data.load_eval()
        torch.save(model.state_dict(), tmp / "model.pt")
        progress(f"exporting {workload.name} to ONNX")
        export_onnx(model, x_eval, tmp / "model.onnx")
        meta = {"arch": spec.arch, "in_channels": in_channels, "n_classes": n_classes,
                "params": spec.params, "host_accuracy": accuracy(model, x_eval, y_eval)}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))

    return cached_dir("models", f"{spec.arch}-{key}", build)


def build_base(workload: WorkloadSpec, progress: Progress = lambda msg: None) -> BaseModel:
    if workload.model.path is not None:
        from workloads.user_models import user_base

        return user_base(workload, progress)
    data = prepare(workload.dataset)
    folder, trained = _train_reference(workload, data, progress)
    meta = json.loads((folder / "meta.json").read_text())
    torch_model = {k: meta[k] for k in ("arch", "in_channels", "n_classes", "params")}
    return BaseModel(workload, data, folder / "model.onnx", folder / "model.pt", torch_model,
                     meta["host_accuracy"], trained)


def build_variants(base: BaseModel, names: set[str] | None = None,
                   progress: Progress = lambda msg: None) -> dict[str, Artifact]:
    """The workload's variants (those named, or all), built or taken from the cache."""
    artifacts = {}
    for variant in base.workload.variants:
        if names is not None and variant.name not in names:
            continue
        progress(f"building {base.workload.name}/{variant.name}")
        try:
            artifacts[variant.name] = FAMILIES[variant.family].build(base, variant)
        except (EdgebenchError, NotCached):  # NotCached: asked for the cache only (workloads/build_pool.py)
            raise
        except Exception as exc:  # a converter or quantizer refusing this model: one line, before any job
            detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
            raise ConfigError(f"{base.workload.file}: variant {variant.name!r} (family {variant.family}) could not "
                              f"be built from {base.onnx_path or base.workload.model.path}: {type(exc).__name__}: "
                              f"{detail}; leave the variant out or change its keys") from exc
    return artifacts
