"""What runs on a board stays within Python 3.8 syntax (JetPack 5 ships 3.8) and needs no more than the
standard library, numpy and the runtime it drives."""

from __future__ import annotations

import ast
import sys

import pytest
from helpers import PROJECT_ROOT

from power.registry import board_side_refs
from targets.bundle import agent_files

ROOT = PROJECT_ROOT
# the agent as shipped with any of the board-side power sources (a board session adds the run's one)
SHIPPED = agent_files(extra_refs=tuple(board_side_refs()))
BOARD_SIDE = [name for name in SHIPPED if name.endswith(".py")]
# the standard library as Python 3.8 has it (3.9+ added these), numpy, and the project's own packages
ALLOWED_TOP_LEVEL = (set(sys.stdlib_module_names) - {"tomllib", "zoneinfo", "graphlib"}) | {
    "numpy", "harness", "targets", "power", "workloads"}


@pytest.mark.parametrize("relative", BOARD_SIDE)
def test_board_side_module_parses_as_python_3_8(relative):
    source = (ROOT / relative).read_text()
    ast.parse(source, filename=relative, feature_version=(3, 8))


@pytest.mark.parametrize("relative", BOARD_SIDE)
def test_board_side_module_imports_only_the_standard_library_and_numpy(relative):
    tree = ast.parse((ROOT / relative).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    # imported lazily, only by the backend or meter that needs it
    runtimes = {"onnxruntime", "serial", "torch", "tensorrt", "pynq"}
    assert imported <= ALLOWED_TOP_LEVEL | runtimes, imported - ALLOWED_TOP_LEVEL - runtimes


def test_the_bundle_is_the_agents_import_closure_and_nothing_host_side():
    files = SHIPPED
    # what the agent's loop reaches, and what the host names to it by reference (backends, board sources)
    for needed in ("targets/agent/loop.py", "targets/agent/measure.py", "targets/agent/wire.py",
                   "targets/agent/machine_load.py", "harness/core/measurement.py", "targets/backends/ort_backend.py",
                   "power/tegrastats.py", "power/spec.py", "power/monitor.py"):
        assert needed in files
    host_only = [f for f in files if f.startswith(("harness/app/", "workloads/", "reports/", "power/emulators/"))
                 or f in ("targets/board.py", "targets/cpu.py", "targets/ssh.py", "targets/agent_driver.py",
                          "power/registry.py", "power/emulated.py")]
    assert not host_only


def test_the_bundle_ships_the_power_source_it_is_given():
    """A board session passes its run's board-side source; without one, no meter module ships."""
    bare = agent_files()
    assert "power/tegrastats.py" not in bare and "power/hwmon.py" not in bare
    with_hwmon = agent_files(extra_refs=("power.hwmon:HwmonSource",))
    assert "power/hwmon.py" in with_hwmon and "power/tegrastats.py" not in with_hwmon
