"""The fp32 baseline: the base model exactly as trained (or as the user gave it)."""

from __future__ import annotations

from harness.errors import ConfigError
from harness.plan import Artifact


def precision(params: dict) -> str:
    return "fp32"


def check_params(params: dict, where: str) -> None:
    if params:
        raise ConfigError(f"{where}: the baseline family takes no parameters, got {', '.join(params)}")


def build(base, variant) -> Artifact:
    return base.artifact(variant.name, "baseline", "fp32")
