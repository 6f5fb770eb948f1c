"""A model's inputs as an evaluation file holds them, and how one of its outputs is scored. Shared by the
host (checks before any job, host accuracy of a variant) and the agent (the accuracy pass and the timed
call), so both read a file and score a batch the same way. Python 3.8, numpy only.

An artifact says (as plain dicts, they cross the wire):
- `inputs`: [{"name", "per_sample", "batch_axis"?}] in the model's input order. A per-sample array has
  the samples on axis 0 and is cut into batches; the others (an RNN's state, a sample rate) are fed whole
  to every call; `batch_axis`: the axis of such an input that must equal the batch size.
  Absent: one per-sample input stored as `x` (the reference workloads).
- `scoring`: {"metric", "output_index", "output", "threshold"}. Absent: top-1 of the first output.
"""

from __future__ import annotations

import numpy as np

SINGLE_INPUT_KEY = "x"
LABELS_KEY = "y"

# top1: class scores [N, C >= 2], argmax; label: an integer label per sample (scikit-learn's first
# output); binary: one score per sample, positive at >= threshold; none: latency and energy only
METRICS = ("top1", "label", "binary", "none")
DEFAULT_SCORING = {"metric": "top1", "output_index": 0, "output": None, "threshold": None}
DEFAULT_INPUTS = [{"name": SINGLE_INPUT_KEY, "per_sample": True}]


def input_specs(artifact: dict) -> list:
    return artifact.get("inputs") or DEFAULT_INPUTS


def scoring_of(artifact: dict) -> dict:
    return artifact.get("scoring") or DEFAULT_SCORING


def load_inputs(data, specs: list) -> list:
    """The evaluation file's arrays (an open .npz) in the model's input order."""
    return [data[spec["name"]] for spec in specs]


def batch(arrays: list, specs: list, start: int, stop: int) -> list:
    """Samples start..stop of every per-sample input; the other inputs whole."""
    return [np.ascontiguousarray(a[start:stop]) if s["per_sample"] else a for a, s in zip(arrays, specs)]


def resized(arrays: list, specs: list, batch_size: int) -> list:
    """One timed call's inputs: each per-sample input repeated or cut to `batch_size` samples."""
    return [np.ascontiguousarray(np.resize(a, (batch_size,) + a.shape[1:])) if s["per_sample"] else a
            for a, s in zip(arrays, specs)]


def batch_problem(arrays: list, specs: list, batch_size: int):
    """Why an input fed whole cannot run at `batch_size` (it was given for another batch), or None."""
    for array, spec in zip(arrays, specs):
        axis = spec.get("batch_axis")
        if axis is not None and array.shape[axis] != batch_size:
            return ("input '{}' was given for batch {} (its axis {} is the batch axis); batch_size {} needs one of "
                    "that batch".format(spec["name"], array.shape[axis], axis, batch_size))
    return None


def has_constants(specs: list) -> bool:
    return not all(s["per_sample"] for s in specs)


def predictions(output: np.ndarray, n: int, scoring: dict) -> np.ndarray:
    """One predicted label per sample from the scored output of `n` samples."""
    metric = scoring["metric"]
    if metric == "top1":
        return np.asarray(output).reshape(n, -1).argmax(axis=1)
    if metric == "label":
        return np.asarray(output).reshape(n)
    if metric == "binary":
        return (np.asarray(output, dtype=np.float64).reshape(n) >= scoring["threshold"]).astype(np.int64)
    raise ValueError("metric {!r} scores nothing; accepted: {}".format(metric, ", ".join(METRICS[:3])))


def count_correct(output: np.ndarray, labels: np.ndarray, scoring: dict) -> int:
    return int((predictions(output, len(labels), scoring) == labels).sum())


def describe_scoring(scoring: dict) -> str:
    """The row's `metric` column: the metric, and for binary its threshold."""
    if scoring["metric"] == "binary":
        return "binary@{:g}".format(scoring["threshold"])
    return scoring["metric"]
