"""The fp32 baseline: the base model exactly as trained (or as the user gave it)."""

from __future__ import annotations

from harness.core.config import Table
from harness.core.jobs import Artifact


def parse(table: Table) -> dict:
    table.finish()  # the baseline takes no parameters
    return {}


def precision(params: dict) -> str:
    return "fp32"


def build(base, variant) -> Artifact:
    return base.artifact(variant.name, "baseline", variant.precision)
