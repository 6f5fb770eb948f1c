"""What runs on a board stays within Python 3.8 syntax (JetPack 5 ships 3.8) and needs no more than the
standard library, numpy and the runtime it drives."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from targets.bundle import AGENT_FILES

ROOT = Path(__file__).resolve().parent.parent
# workloads/models.py needs torch (only the torch backend imports it); the rest are Python sources
BOARD_SIDE = [name for name in AGENT_FILES if name.endswith(".py") and name != "workloads/models.py"]
ALLOWED_TOP_LEVEL = {"__future__", "ast", "difflib", "glob", "importlib", "json", "os", "platform", "re",
                     "resource", "shutil", "argparse", "base64", "glob", "tempfile", "hashlib", "zipfile", "io", "pkgutil", "queue", "subprocess", "sys", "threading", "time", "traceback", "typing",
                     "array", "abc", "dataclasses", "collections", "functools", "pathlib", "numpy",
                     "harness", "targets", "power", "workloads"}


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
    # imported lazily, only by the backend or meter that needs it (tomllib: the host-only --power parser)
    runtimes = {"onnxruntime", "serial", "torch", "tensorrt", "pynq", "tomllib"}
    assert imported <= ALLOWED_TOP_LEVEL | runtimes, imported - ALLOWED_TOP_LEVEL - runtimes
