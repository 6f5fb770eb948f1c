"""Variant families: each module turns a workload's base model into one artifact.

A family is a `Family` with `precision(params)` (known before building, for planning) and
`build(base, variant) -> Artifact`. New families join `FAMILIES`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from workloads.variants import baseline


class Family(NamedTuple):
    precision: Callable[[dict], str]
    build: Callable
    check_params: Callable[[dict, str], None]


FAMILIES: dict[str, Family] = {
    "baseline": Family(baseline.precision, baseline.build, baseline.check_params),
}
