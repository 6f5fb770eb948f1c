"""Target descriptions: TOML files under targets/ (or a user's file), picked by `TARGET=name`.

    [target]    name, adapter (a registered target), description, backends, job_timeout_s
    [backends.<name>]  options passed to that backend (e.g. onnxruntime graph_optimization_level)
    [power]     source (see power/registry.py) and its keys: port, baud, rate_hz, idle_s, ...
                kept as written: the top floor resolves it (power.registry.power_spec, host-side)
    [farm]      the boards come from a labgrid coordinator's places (targets/farm/spec.py); the adapter is
                a board's (rpi, jetson, ...), its host, port and user are each place's NetworkService
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from harness.core.config import Table, load_toml, named_file, stems
from harness.core.errors import ConfigError, suggest
from harness.core.jobs import check_name
from harness.core.plugins import find
from targets.backends import check_backend_list
from targets.farm.spec import FarmSpec, check_board_keys, parse_farm

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
    farm: FarmSpec | None = None  # [farm]: the boards are a labgrid coordinator's places


def parse_target(data: dict, file: Path) -> TargetSpec:
    root = Table(data, file)
    head = root.table("target", required=True)
    name = head.take("name", default=file.stem)
    adapter = head.take("adapter", default=name)
    description = head.take("description", default="")
    check_name(name, head.where("name"))  # it becomes part of the run id, a directory name
    if not adapter.strip():
        raise ConfigError(f"{head.where('adapter')} = {adapter!r}: expected a non-empty string")
    backends = check_backend_list(head.take("backends", list, default=["onnxruntime"]), head.where("backends"))
    timeout = head.take("job_timeout_s", float, 900.0, minimum=1.0)
    settings = head.rest()
    options = {}
    opts = root.table("backends")
    for backend_name in list(opts.data):
        if backend_name not in backends:
            raise ConfigError(f"{opts.where(backend_name)}: options for backend '{backend_name}', "
                              f"which [target] backends does not list ({', '.join(backends)})")
        options[backend_name] = opts.table(backend_name).rest()
        check_backend_options(backend_name, options[backend_name], f"{file}: [backends.{backend_name}]")
    power_table = root.table("power").rest()
    farm = parse_farm(root.table("farm"))
    root.finish()
    spec = TargetSpec(name, file, adapter, description, tuple(backends), options, timeout, power_table,
                      settings, farm)
    check_settings(spec)
    return spec


def check_settings(spec: TargetSpec) -> None:
    """The adapter's own [target] keys, checked now (before anything is opened, built or measured): an
    adapter with `check_settings(spec)` (cpu, the boards) rejects unknown keys and bad values."""
    from targets.registry import load_adapter

    adapter = load_adapter(spec.adapter, f"{spec.file}: key 'target.adapter'")
    check = getattr(adapter, "check_settings", None)
    if spec.farm is not None:
        if getattr(adapter, "session_class", None) is None:
            raise ConfigError(f"{spec.file}: key 'target.adapter' = {spec.adapter!r}: a [farm] runs a board "
                              f"adapter reached over SSH (rpi, jetson, pynq, or a plug-in BoardTarget)")
        check_board_keys(spec.settings, str(spec.file))
        spec = board_spec(spec, "farm-place")  # the board keys checked as each place's board will have them
    if check is not None:
        check(spec)


def board_spec(spec: TargetSpec, host: str, port: int | None = None, user: str | None = None) -> TargetSpec:
    """The target of one farm board: the farm target's keys, with the place's host, port and user."""
    place = {"host": host, **({"port": port} if port else {}), **({"user": user} if user else {})}
    return replace(spec, settings={**spec.settings, **place})


def backend_class(name: str, where: str = ""):
    """The backend's class, imported on the host (backends import their runtime only in load())."""
    from targets.backends import GROUP
    from targets.backends.base import Backend

    return find(GROUP, name, where).load(where, base=Backend)


def check_backend_options(name: str, options: dict, where: str) -> None:
    """Options for backend `name` against its class's OPTIONS declaration: one line naming `where`, the
    key, the value and what is accepted."""
    from targets.backends.base import Backend, option_problem

    cls = backend_class(name, where)
    declared = next((vars(c)["OPTIONS"] for c in cls.__mro__ if c is not Backend and "OPTIONS" in vars(c)),
                    None)
    if not isinstance(declared, dict):
        return  # a plug-in backend without a declaration checks its options itself, in the agent
    for key in options:
        problem = option_problem(declared, key, options[key])
        if problem:
            if key not in declared:
                problem = f"'{key}' is not a known option{suggest(key, declared)}; known: " \
                          f"{', '.join(sorted(declared)) or '(none)'}"
            raise ConfigError(f"{where}: {problem}")


def target_files(directory: Path = TARGETS_DIR) -> dict[str, Path]:
    return stems(directory)


def find_target(name_or_path: str, where: str = "--target") -> TargetSpec:
    """A target by name (targets/<name>.toml) or by the path of a TOML file."""
    path = named_file(name_or_path, target_files(), "target", where)
    return parse_target(load_toml(path), path)
