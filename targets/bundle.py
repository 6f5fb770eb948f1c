"""The agent as one file a board can run: a zipapp of the board-side modules, named by its content hash.

What it ships is computed, not listed: the import closure (imports inside functions included) of the
agent's loop and of every module the host may name to it by import reference (the backends, and the
extra references the board session passes: the run's board-side power source), restricted to this
project's files. The host-side power registry is never among them (an import-linter contract).
Deterministic (sorted entries, fixed timestamps): the same code gives the same bytes and the same name,
so a board that already has it is not sent it again.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from functools import lru_cache
from modulefinder import ModuleFinder
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "targets", "workloads", "power", "reports")
AGENT_MAIN = "targets.agent.loop"
# Files the agent reads as data (pkgutil.get_data), not as modules.
DATA_FILES = ("targets/smoke/add.onnx", "targets/smoke/add.tflite")
MAIN = "import sys\nfrom targets.agent.loop import main\nsys.exit(main())\n"
FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def referenced_modules(extra_refs: tuple = ()) -> list[str]:
    """Modules the host names to the agent by import reference ("module:attribute"): the backends and
    `extra_refs` (e.g. the run's board-side power source)."""
    from targets.backends import BACKENDS

    modules = {ref.partition(":")[0] for ref in (*BACKENDS.values(), *extra_refs)}
    return sorted(m for m in modules if m.split(".")[0] in PACKAGES)


@lru_cache(maxsize=8)
def agent_files(extra_refs: tuple = ()) -> tuple[str, ...]:
    """The project's files in the agent's import closure, as paths relative to the project root."""
    finder = ModuleFinder(path=[str(ROOT)])  # only this project's files: the rest is the board's own
    for module in (AGENT_MAIN, *referenced_modules(tuple(extra_refs))):
        finder.import_hook(module, fromlist=["*"])
    files = set(DATA_FILES)
    for module in finder.modules.values():
        if module.__file__ and module.__name__.split(".")[0] in PACKAGES:
            files.add(Path(module.__file__).resolve().relative_to(ROOT).as_posix())
    return tuple(sorted(files))


def build_bundle(extra_refs: tuple = ()) -> bytes:
    """The zipapp; `extra_refs`: import references the host will name to the agent beside the backends."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        entries = [(name, (ROOT / name).read_bytes()) for name in agent_files(tuple(sorted(set(extra_refs))))]
        entries.append(("__main__.py", MAIN.encode()))
        for name, data in sorted(entries):
            info = zipfile.ZipInfo(name, FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def bundle_name(data: bytes) -> str:
    return f"edgebench-agent-{hashlib.sha256(data).hexdigest()[:16]}.pyz"
