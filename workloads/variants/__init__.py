"""Variant families: each module turns a workload's base model into one artifact.

A family has `parse(table) -> params` (validates the variant's keys in the workload file, naming file and
key), `precision(params)` (known before building, for planning) and `build(base, variant) -> Artifact`
(cached by the base model, the family, its parameters and its code).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from workloads.variants import baseline, distill, early_exit, fpga, prune, qat, quantize, tflite


def single(name: str, params: dict) -> list[tuple[str, dict]]:
    return [(name, params)]


class Family(NamedTuple):
    parse: Callable
    precision: Callable[[dict], str]
    build: Callable
    expand: Callable[[str, dict], list[tuple[str, dict]]] = single  # one entry -> several variants


FAMILIES: dict[str, Family] = {
    module.__name__.rsplit(".", 1)[1]: Family(module.parse, module.precision, module.build,
                                              getattr(module, "expand", single))
    for module in (baseline, quantize, tflite, qat, fpga, prune, distill, early_exit)
}
