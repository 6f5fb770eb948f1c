"""Workload definitions: a TOML file under workloads/ naming a dataset, a model and the variants to build.

    [workload]  name, description
    names of workloads and variants: harness.core.jobs.NAME_RULE (they become job ids, file and cache
    directory names)
    [dataset]   name = "digits" | "mnist5k" | "npz"; eval_fraction, seed; path (npz); calibration (npz, a
                user's model: static int8)
    [model]     arch = "small_cnn" | "resnet8" | "ds_cnn" with [model.params]; or path = a user's model
                (.onnx, .tflite, .keras, .h5, a SavedModel directory; `onnx =` is the older name) with
                output, metric (top1 | label | binary | none) and threshold (workloads/scoring.py)
    [training]  epochs, batch_size, learning_rate, weight_decay, seed
    [[variants]] name, family, suites (optional: only in these suites), and the family's parameters
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.core.config import Table, load_toml, named_file
from harness.core.errors import ConfigError
from harness.core.jobs import LOCAL, NAME_MAX, check_name
from workloads.datasets import SOURCES, DatasetSpec
from workloads.models import ARCHS
from workloads.scoring import ScoringSpec
from workloads.training import TrainingSpec
from workloads.variants import FAMILIES, load_family

WORKLOADS_DIR = Path(__file__).resolve().parent
DATASET_NAMES = (*SOURCES, "npz")

# seeds go to numpy (np.random.seed: 0 to 2**32 - 1) and torch
SEED_MAX = 2**32 - 1


def safe_name(text: str, fallback: str = "model") -> str:
    """A safe name made from free text (a model file's stem): every run of other characters becomes '-'."""
    name = re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-.")[:NAME_MAX].strip("-.")
    return name or fallback


# families that retrain or rebuild the network from its training graph (a reference model's PyTorch code)
TRAINING_FAMILIES = ("prune", "distill", "qat", "early_exit", "bottleneck", "fpga")
# what a user's model takes: its own file, quantized, converted (from TensorFlow), or split
USER_MODEL_FAMILIES = ("baseline", "quantize", "tflite", "offload", "split")


@dataclass(frozen=True)
class ModelSpec:
    arch: str | None = None       # a reference model, trained locally
    params: dict = field(default_factory=dict)
    path: Path | None = None      # or the user's own model file (ONNX, .tflite, Keras, SavedModel)
    scoring: ScoringSpec = ScoringSpec()


@dataclass(frozen=True)
class VariantSpec:
    name: str
    family: str
    precision: str
    params: dict
    suites: tuple[str, ...] | None = None  # run only in these suites (None: in every suite)
    strategy: str = LOCAL                  # split computing: where it runs (harness.core.jobs.expand)


@dataclass(frozen=True)
class WorkloadSpec:
    name: str
    file: Path
    description: str
    dataset: DatasetSpec
    model: ModelSpec
    training: TrainingSpec
    variants: tuple[VariantSpec, ...]


def _resolve(path: str, base: Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else (base / p)


def parse_workload(data: dict, file: Path) -> WorkloadSpec:
    root = Table(data, file)
    head = root.table("workload", required=True)
    name = check_name(head.take("name"), head.where("name"))
    description = head.take("description", default="")
    head.finish()

    ds = root.table("dataset", required=True)
    ds_name = ds.take("name", choices=DATASET_NAMES)
    ds_path = ds.take("path", default=None) if ds_name == "npz" else None
    if ds_name == "npz" and ds_path is None:
        raise ConfigError(f"{ds.where('path')} is required when dataset name = \"npz\"")
    calibration = ds.take("calibration", default=None) if ds_name == "npz" else None
    dataset = DatasetSpec(
        name=ds_name,
        eval_fraction=ds.take("eval_fraction", float, 0.2, minimum=0.01, maximum=0.9),
        seed=ds.take("seed", int, 0, minimum=0, maximum=SEED_MAX),
        path=str(_resolve(ds_path, file.parent)) if ds_path else None,
        calibration=str(_resolve(calibration, file.parent)) if calibration else None,
    )
    ds.finish()

    md = root.table("model", required=True)
    path_key = "onnx" if md.has("onnx") else "path"
    if md.has(path_key):
        model = ModelSpec(path=_resolve(md.take(path_key), file.parent), scoring=ScoringSpec(
            metric=md.take("metric", str, None), output=md.take("output", str, None),
            threshold=md.take("threshold", float, None)))
        if ds_name != "npz":
            raise ConfigError(f"{md.where(path_key)}: a user's model needs its own evaluation set "
                              f"(dataset name = \"npz\", path = ...)")
    else:
        arch = md.take("arch", choices=ARCHS)
        model = ModelSpec(arch=arch, params=md.table("params").rest())
        if ds_name == "npz":
            raise ConfigError(f"{md.where('arch')}: reference models train on a packaged dataset "
                              f"({', '.join(SOURCES)}), not on an evaluation-only npz")
    md.finish()

    tr = root.table("training")
    training = TrainingSpec(
        epochs=tr.take("epochs", int, TrainingSpec.epochs, minimum=1),
        batch_size=tr.take("batch_size", int, TrainingSpec.batch_size, minimum=1),
        learning_rate=tr.take("learning_rate", float, TrainingSpec.learning_rate, minimum=1e-8, maximum=10.0),
        weight_decay=tr.take("weight_decay", float, TrainingSpec.weight_decay, minimum=0.0, maximum=1.0),
        seed=tr.take("seed", int, TrainingSpec.seed, minimum=0, maximum=SEED_MAX),
    )
    tr.finish()

    variants = []
    for vt in root.tables("variants") or [Table({"name": "fp32", "family": "baseline"}, file, "variants[0]")]:
        v_name = check_name(vt.take("name"), vt.where("name"))
        family_name = vt.take("family", choices=FAMILIES)
        if model.path is not None and family_name in TRAINING_FAMILIES:
            raise ConfigError(f"{vt.where('family')} = {family_name!r}: this family needs the network's training "
                              f"graph ([model] arch = ...); a user's model takes {', '.join(USER_MODEL_FAMILIES)}")
        suites = vt.take("suites", list, None)
        family = load_family(family_name, vt.where("family"))
        params = family.parse(Table(vt.rest(), file, f"{vt.prefix} '{v_name}'"))
        for expanded_name, expanded in family.expand(v_name, params):
            check_name(expanded_name, f"{vt.where('name')} (as expanded by family {family_name!r})")
            precision = (model_precision(model.path) if model.path is not None and family_name == "baseline"
                         else family.precision(expanded))
            variants.append(VariantSpec(expanded_name, family_name, precision, expanded,
                                        tuple(suites) if suites is not None else None, family.strategy))
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ConfigError(f"{file}: variant name(s) {', '.join(map(repr, twice))} used twice; accepted: "
                          f"unique names, got {names}")
    if "baseline" not in {v.family for v in variants}:
        raise ConfigError(f"{file}: [[variants]] needs one variant of family \"baseline\" "
                          f"(the reference for accuracy_delta)")
    root.finish()
    return WorkloadSpec(name, file, description, dataset, model, training, tuple(variants))


def load_workload(path: Path) -> WorkloadSpec:
    return parse_workload(load_toml(path), path)


def workload_files(directory: Path = WORKLOADS_DIR) -> dict[str, Path]:
    """Workload name -> file, for every *.toml directly under workloads/."""
    found = {}
    for path in sorted(directory.glob("*.toml")):
        head = Table(load_toml(path), path).table("workload", required=True)
        name = head.take("name", default=path.stem)
        if name in found:
            raise ConfigError(f"{head.where('name')} = {name!r}: {found[name]} has this name already; "
                              f"accepted: a name no other workload file under {directory} has")
        found[name] = path
    return found


def find_workload(name_or_path: str, where: str = "") -> WorkloadSpec:
    """A workload by its name (from workloads/*.toml) or by the path of its file."""
    return load_workload(named_file(name_or_path, workload_files(), "workload", where))


def user_model_workload(model: Path, data: Path, scoring: ScoringSpec = ScoringSpec(),
                        calibration: Path | None = None) -> WorkloadSpec:
    """The workload behind `edgebench bench --model M --data eval.npz`: the model as given, and with
    `--calibration`, its static int8 form; a TensorFlow model also as fp32 and int8 .tflite (full-integer
    with calibration, else dynamic-range)."""
    from workloads.tf_models import is_tf_model

    name = safe_name(model.stem)
    variants = [VariantSpec("as-given", "baseline", model_precision(model), {})]
    quantize, tflite = load_family("quantize"), load_family("tflite")
    if calibration and model.suffix != ".tflite":
        params = quantize.parse(Table({"scheme": "ort-static"}, model, "--calibration"))
        variants.append(VariantSpec("int8", "quantize", quantize.precision(params), params))
    if is_tf_model(model):
        for variant, quantization in (("tflite-fp32", "none"), ("tflite-int8", "int8" if calibration else "dynamic")):
            params = tflite.parse(Table({"quantization": quantization}, model, "--model"))
            variants.append(VariantSpec(variant, "tflite", tflite.precision(params), params))
    return WorkloadSpec(name=name, file=model, description=f"user model {model}",
                        dataset=DatasetSpec(name="npz", path=str(data),
                                            calibration=str(calibration) if calibration else None),
                        model=ModelSpec(path=model, scoring=scoring), training=TrainingSpec(),
                        variants=tuple(variants))


def model_precision(path: Path) -> str:
    """The precision a user's model file runs at, read from the file (a missing or unreadable file is
    reported where the model is loaded, with its reason): a QDQ graph is int8."""
    from workloads.signatures import onnx_precision, tflite_precision

    try:
        if path.suffix == ".onnx":
            import onnx

            return onnx_precision(onnx.load(str(path), load_external_data=False))
        if path.suffix == ".tflite":
            return tflite_precision(path)
    except Exception:  # noqa: BLE001 - the build step reports an unreadable file with its reason
        return "fp32"
    return "fp32"  # a TensorFlow model: float until converted
