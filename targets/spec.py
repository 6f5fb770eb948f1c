"""Target descriptions: TOML files under targets/ (or a user's file), picked by `TARGET=name`.

    [target]    name, adapter (a registered target), description, backends, job_timeout_s
    [backends.<name>]  options passed to that backend (e.g. onnxruntime graph_optimization_level)
    [power]     source (see power/registry.py) and its keys: port, baud, rate_hz, idle_s, ...
                kept as written: the top floor resolves it (power.registry.power_spec, host-side)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.core.config import Table, load_toml, named_file, stems
from harness.core.errors import ConfigError, unknown_name
from targets.backends import BACKENDS

TARGETS_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class TargetSpec:
    name: str
    file: Path
    adapter: str
    description: str
    backends: tuple[str, ...]
    backend_options: dict = field(default_factory=dict)
    job_timeout_s: float = 900.0
    power_table: dict = field(default_factory=dict)  # [power] as written, resolved by harness.app.runner
    settings: dict = field(default_factory=dict)  # adapter-specific keys of [target]


def parse_target(data: dict, file: Path) -> TargetSpec:
    root = Table(data, file)
    head = root.table("target", required=True)
    name = head.take("name", default=file.stem)
    adapter = head.take("adapter", default=name)
    description = head.take("description", default="")
    backends = head.take("backends", list, default=["onnxruntime"])
    for b in backends:
        if b not in BACKENDS:
            raise unknown_name("backend", b, BACKENDS, head.where("backends"))
    timeout = head.take("job_timeout_s", float, 900.0, minimum=1.0)
    settings = head.rest()
    options = {}
    opts = root.table("backends")
    for backend_name in list(opts.data):
        if backend_name not in backends:
            raise ConfigError(f"{opts.where(backend_name)}: options for backend '{backend_name}', "
                              f"which [target] backends does not list ({', '.join(backends)})")
        options[backend_name] = opts.table(backend_name).rest()
    power_table = root.table("power").rest()
    root.finish()
    return TargetSpec(name, file, adapter, description, tuple(backends), options, timeout, power_table, settings)


def target_files(directory: Path = TARGETS_DIR) -> dict[str, Path]:
    return stems(directory)


def find_target(name_or_path: str) -> TargetSpec:
    """A target by name (targets/<name>.toml) or by the path of a TOML file."""
    path = named_file(name_or_path, target_files(), "target", "--target")
    return parse_target(load_toml(path), path)
