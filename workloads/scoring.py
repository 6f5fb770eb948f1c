"""Which output of a user's model is scored, and how, checked against the output's declared shape before
any job runs (harness.core.model_io scores it, on the host and on the device).

metric = "top1"   class scores [N, C >= 2], argmax (the default, only when the output has that shape)
         "label"  an integer label per sample ([N] or [N, 1]: scikit-learn's first output)
         "binary" one score per sample ([N] or [N, 1]), positive at >= threshold (default 0.5)
         "none"   latency and energy only: the accuracy column stays empty, with the reason
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.core.errors import ConfigError
from harness.core.model_io import METRICS
from workloads.signatures import ModelSignature, TensorSpec

DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class ScoringSpec:
    """What the workload file or the command line asked for (None: not given)."""

    metric: str | None = None
    output: str | None = None
    threshold: float | None = None


def _per_sample_width(tensor: TensorSpec) -> int | str | None:
    """The width of one sample's output ([N] -> 1, [N, C] -> C), or None for another rank."""
    if tensor.shape is None or len(tensor.shape) not in (1, 2):
        return None
    return 1 if len(tensor.shape) == 1 else tensor.shape[1]


def _fit_problem(tensor: TensorSpec, metric: str) -> str | None:
    width = _per_sample_width(tensor)
    if tensor.dtype is None:
        return "it is not a tensor"
    if metric == "top1":
        if width is None or (isinstance(width, int) and width < 2):
            return "top1 needs class scores [N, C] with C >= 2"
    elif metric == "label":
        if width != 1 or not np.issubdtype(tensor.dtype, np.integer) or tensor.quantized:
            return "label needs one integer label per sample ([N] or [N, 1])"
    elif metric == "binary":
        # a quantized output is dequantized to a float score before it is scored
        if width != 1 or not (np.issubdtype(tensor.dtype, np.floating) or tensor.quantized):
            return "binary needs one float score per sample ([N] or [N, 1])"
    return None


def resolve_scoring(sig: ModelSignature, spec: ScoringSpec, where: str) -> tuple[dict, list[str]]:
    """The artifact's scoring (harness.core.model_io) and notes for the rows (why there is no metric).
    `where` names the file or flags the spec came from."""
    if spec.metric is not None and spec.metric not in METRICS:
        raise ConfigError(f"{where}: metric {spec.metric!r}; accepted: {', '.join(METRICS)}")
    if spec.output is None:
        index = 0
    else:
        names = [o.name for o in sig.outputs]
        if spec.output not in names:
            raise ConfigError(f"{where}: output {spec.output!r} is not an output of the model; accepted: "
                              f"{', '.join(repr(n) for n in names)}")
        index = names.index(spec.output)
    tensor = sig.outputs[index]
    if spec.threshold is not None and spec.metric != "binary":
        given = f"metric \"{spec.metric}\"" if spec.metric else "no metric"
        raise ConfigError(f"{where}: threshold = {spec.threshold} applies to metric \"binary\" only, and {given} is "
                          f"set; add metric = \"binary\" (--metric binary) or leave the threshold out")
    metric, notes = spec.metric, []
    if metric is None:
        problem = _fit_problem(tensor, "top1")
        if problem is None:
            metric = "top1"
        else:
            metric = "none"
            fitting = next((m for m in ("label", "binary") if _fit_problem(tensor, m) is None), None)
            others = ", ".join(repr(o.name) for o in sig.outputs if o is not tensor
                               and any(_fit_problem(o, m) is None for m in METRICS[:3]))
            hint = (f"set metric = \"{fitting}\" to score it" if fitting else
                    f"score another output ({others}) with output = ... and metric = ..." if others else
                    "no output of the model fits a metric: latency and energy only (metric = \"none\")")
            notes.append(f"accuracy: no metric: output {tensor.describe()} is not class scores; {hint}")
    elif metric != "none":
        problem = _fit_problem(tensor, metric)
        if problem:
            raise ConfigError(f"{where}: metric \"{metric}\" does not fit output {tensor.describe()}: {problem}; "
                              f"choose another output ({', '.join(repr(o.name) for o in sig.outputs)}) or "
                              f"metric (top1, label, binary, none)")
    else:
        notes.append("accuracy: metric = \"none\" (latency and energy only)")
    threshold = None
    if metric == "binary":
        threshold = DEFAULT_THRESHOLD if spec.threshold is None else float(spec.threshold)
    return {"metric": metric, "output_index": index, "output": tensor.name, "threshold": threshold}, notes


def n_classes(sig: ModelSignature, scoring: dict) -> int | None:
    """Classes of a top1 output (None when not known from the shape or not a class output)."""
    width = _per_sample_width(sig.outputs[scoring["output_index"]])
    return width if scoring["metric"] == "top1" and isinstance(width, int) else None


def for_artifact(scoring: dict, sig: ModelSignature, where) -> dict:
    """The base's scoring for an artifact of another format: the output of the same name (a model with one
    output: that one, however a converter named it)."""
    names = [o.name for o in sig.outputs]
    if scoring["output"] in names:
        return dict(scoring, output_index=names.index(scoring["output"]))
    if len(names) == 1:
        return dict(scoring, output_index=0)
    raise ConfigError(f"{where}: a converted form of the model has outputs {names}, none named "
                      f"{scoring['output']!r} (the scored output): edgebench will not guess which is which")
