"""A user's own model as the base of a workload: ONNX as given, a .tflite as given (LiteRT backends run
it), or a Keras / SavedModel model converted on the host with TensorFlow's tools (tf2onnx for the ONNX
backends here; workloads/variants/tflite.py for .tflite). Its evaluation and calibration sets are checked
against its inputs, and its metric against its outputs, before anything is built or measured."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from harness.core.errors import ConfigError
from harness.core.hashing import content_hash
from workloads.cache import cached_dir
from workloads.datasets import PreparedData, sample_indices
from workloads.scoring import for_artifact, n_classes, resolve_scoring
from workloads.signatures import ModelSignature, onnx_signature, tflite_signature
from workloads.spec import WorkloadSpec
from workloads.tf_models import is_tf_model
from workloads.user_data import CALIBRATION, UserData, check_labels, prepare_user_data

FORMATS = "an .onnx or .tflite file, a Keras .keras / .h5 file, or a SavedModel directory"


@dataclass
class UserModel:
    file: Path                          # the workload file (or the model, from the command line)
    signature: ModelSignature           # of the base model (the ONNX form of a TensorFlow model)
    scoring: dict                       # harness.core.model_io scoring
    data: UserData
    calibration: UserData | None = None
    tflite_path: Path | None = None     # a .tflite given as the model
    tf_source: Path | None = None       # a Keras file or SavedModel directory
    notes: list = field(default_factory=list)

    def io_for(self, files: dict, notes: list) -> dict:
        """inputs, scoring and notes of an artifact with these files, read from its own model file."""
        sig = self.signature
        if "onnx" in files:
            sig = onnx_signature(onnx.load(files["onnx"], load_external_data=False))
        elif "tflite" in files:
            sig = tflite_signature(Path(files["tflite"]))
        inputs = self.data.inputs
        if len(sig.inputs) > 1:  # fed by position: the artifact's own order, found by name
            by_name = {spec["name"]: spec for spec in self.data.inputs}
            missing = [t.name for t in sig.inputs if t.name not in by_name]
            if missing:
                raise ConfigError(f"{self.file}: a converted form of the model ({', '.join(files.values())}) names "
                                  f"its inputs {[t.name for t in sig.inputs]}, the model {list(by_name)}: edgebench "
                                  f"will not guess which is which")
            inputs = [by_name[t.name] for t in sig.inputs]
        return {"inputs": inputs, "scoring": for_artifact(self.scoring, sig, self.file),
                "notes": self.notes + notes}

    def _calibration(self, family: str) -> UserData:
        if self.calibration is None:
            raise ConfigError(f"{self.file}: family {family!r} (static int8) calibrates on data: give a "
                              f"calibration set, [dataset] calibration = \"calib.npz\" (or --calibration), laid "
                              f"out as the evaluation set")
        return self.calibration

    def calibration_arrays(self, n_samples: int, family: str) -> dict[str, np.ndarray]:
        """Model input name -> up to `n_samples` calibration samples (samples on axis 0); an input fed whole,
        whole."""
        calibration = self._calibration(family)
        arrays = calibration.arrays()
        picks = sample_indices(calibration.n_samples, n_samples)
        return {tensor.name: arrays[spec["name"]][picks] if spec["per_sample"] else arrays[spec["name"]]
                for tensor, spec in zip(self.signature.inputs, calibration.inputs)}

    def calibration_feeds(self, n_samples: int, family: str) -> list[dict[str, np.ndarray]]:
        """One feed (model input name -> a batch of one) per calibration sample, up to `n_samples`."""
        arrays = self.calibration_arrays(n_samples, family)
        whole = {t.name for t, spec in zip(self.signature.inputs, self.calibration.inputs) if not spec["per_sample"]}
        count = min(n_samples, self.calibration.n_samples)
        return [{name: a if name in whole else a[i:i + 1] for name, a in arrays.items()} for i in range(count)]


def load_user_onnx(path: Path, where: str = "") -> onnx.ModelProto:
    """A user's ONNX file, checked; a missing or corrupt one is one line naming it."""
    _require_exists(path, where)
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx raises several unrelated types for a corrupt file
        raise ConfigError(f"{path}: not a valid ONNX model ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'}); accepted: {FORMATS}") from None
    return model


def _require_exists(path: Path, where: str) -> None:
    if not path.exists():
        raise ConfigError(f"{where + ': ' if where else ''}model file {path} not found; accepted: {FORMATS}")


def fingerprint(path: Path) -> list:
    """What identifies a model file or SavedModel directory's content for the conversion cache."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return [(str(p.relative_to(path) if path.is_dir() else p.name), p.stat().st_size, p.stat().st_mtime_ns)
            for p in files]


def tf_onnx(path: Path, progress) -> Path:
    """The ONNX form of a TensorFlow model (tf2onnx), converted once and cached."""
    from workloads.tf_models import tf_to_onnx

    def build(tmp: Path) -> None:
        progress(f"converting {path.name} to ONNX (tf2onnx)")
        tf_to_onnx(path, tmp / "model.onnx")

    folder, _ = cached_dir("models", f"tf-{content_hash({'path': str(path.resolve()), 'files': fingerprint(path)})}",
                           build)
    return folder / "model.onnx"


def user_base(workload: WorkloadSpec, progress):
    """The BaseModel of a workload whose model is the user's own file."""
    from workloads.build import BaseModel

    path, where = Path(workload.model.path), str(workload.file)
    _require_exists(path, where)
    onnx_path = tflite_path = tf_source = None
    if path.suffix == ".onnx":
        onnx_path, sig = path, onnx_signature(load_user_onnx(path, where))
    elif path.suffix == ".tflite":
        if workload.dataset.calibration:
            raise ConfigError(f"{where}: calibration set {workload.dataset.calibration}: a .tflite is run as given, "
                              f"not quantized again; give the model's ONNX or TensorFlow source to build int8 "
                              f"variants, or leave the calibration set out")
        tflite_path, sig = path, tflite_signature(path, where)
    elif is_tf_model(path):
        tf_source = path
        onnx_path = tf_onnx(path, progress)
        sig = onnx_signature(onnx.load(str(onnx_path)))
    else:
        raise ConfigError(f"{where}: model {path}: unknown format; accepted: {FORMATS}")
    scoring, notes = resolve_scoring(sig, workload.model.scoring, where)
    data = prepare_user_data(Path(workload.dataset.path), sig, labels_required=scoring["metric"] != "none")
    classes = n_classes(sig, scoring)
    if data.max_label is not None and scoring["metric"] != "none":
        check_labels(Path(workload.dataset.path), data.max_label, scoring["metric"], classes)
    calibration = None
    if workload.dataset.calibration:
        calibration = prepare_user_data(Path(workload.dataset.calibration), sig, CALIBRATION, labels_required=False)
    if classes is None:
        classes = data.max_label + 1 if data.max_label is not None else 0
    prepared = PreparedData(None, data.path, data.sample_shape, classes, data.n_samples)
    user = UserModel(workload.file, sig, scoring, data, calibration, tflite_path, tf_source, notes)
    return BaseModel(workload, prepared, onnx_path, None, None, None, False, user)
