"""Workload definitions: a TOML file under workloads/ naming a dataset, a model and the variants to build.

    [workload]  name, description
    names of workloads and variants: harness.core.jobs.NAME_RULE (they become job ids, file and cache
    directory names)
    [dataset]   name = "digits" | "mnist5k" | "npz"; eval_fraction, seed; path (npz)
    [model]     arch = "small_cnn" | "resnet8" | "ds_cnn" with [model.params]; or onnx = "file.onnx"
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


@dataclass(frozen=True)
class ModelSpec:
    arch: str | None = None       # a reference model, trained locally
    params: dict = field(default_factory=dict)
    onnx: Path | None = None      # or the user's own ONNX file


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
    dataset = DatasetSpec(
        name=ds_name,
        eval_fraction=ds.take("eval_fraction", float, 0.2, minimum=0.01, maximum=0.9),
        seed=ds.take("seed", int, 0, minimum=0, maximum=SEED_MAX),
        path=str(_resolve(ds_path, file.parent)) if ds_path else None,
    )
    ds.finish()

    md = root.table("model", required=True)
    if md.has("onnx"):
        model = ModelSpec(onnx=_resolve(md.take("onnx"), file.parent))
        if ds_name != "npz":
            raise ConfigError(f"{md.where('onnx')}: a user's ONNX model needs its own evaluation set "
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
        suites = vt.take("suites", list, None)
        family = load_family(family_name, vt.where("family"))
        params = family.parse(Table(vt.rest(), file, f"{vt.prefix} '{v_name}'"))
        for expanded_name, expanded in family.expand(v_name, params):
            check_name(expanded_name, f"{vt.where('name')} (as expanded by family {family_name!r})")
            variants.append(VariantSpec(expanded_name, family_name, family.precision(expanded), expanded,
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


def user_model_workload(model: Path, data: Path) -> WorkloadSpec:
    """The workload behind `edgebench bench --model m.onnx --data eval.npz`."""
    name = safe_name(model.stem)
    return WorkloadSpec(name=name, file=model, description=f"user model {model}",
                        dataset=DatasetSpec(name="npz", path=str(data)),
                        model=ModelSpec(onnx=model), training=TrainingSpec(),
                        variants=(VariantSpec("as-given", "baseline", "as-given", {}),))
