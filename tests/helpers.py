"""Helpers the tests share: a tiny workload that trains in seconds, a protocol with millisecond windows,
and a file writer. Fixtures are in conftest.py; plain functions are here, imported by name."""

from __future__ import annotations

import textwrap
from pathlib import Path

TINY_PROTOCOL = """
[protocol]
warmup_min_iterations = 3
warmup_min_s = 0.01
n_windows = 2
window_min_s = 0.05
window_min_iterations = 20
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def tiny_workload_toml(name: str = "tiny-digits", epochs: int = 4, width: int = 8) -> str:
    return f"""
    [workload]
    name = "{name}"
    [dataset]
    name = "digits"
    seed = 0
    [model]
    arch = "small_cnn"
    [model.params]
    width = {width}
    [training]
    epochs = {epochs}
    batch_size = 64
    learning_rate = 0.01
    [[variants]]
    name = "fp32"
    family = "baseline"
    """


TESTS_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = TESTS_DIR.parent
FIXTURES = TESTS_DIR / "fixtures"
