"""Running an early-exit artifact on the device: stage 1 always, stage 2 only when the exit is unsure.

Runs inside the agent (boards included): numpy only, Python 3.8 syntax.
"""

from __future__ import annotations

import numpy as np

from targets.backends.base import ModelCalls


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def exits(exit_logits: np.ndarray, criterion: str, threshold: float) -> np.ndarray:
    """True where a sample leaves at the exit."""
    p = softmax(exit_logits)
    if criterion == "confidence":
        return p.max(axis=1) > threshold
    entropy = -(p * np.log(np.clip(p, 1e-12, None))).sum(axis=1)
    return entropy < threshold


class EarlyExitModel(ModelCalls):
    """Two loaded stage backends (each exposing `outputs(x) -> list of arrays`) and the exit rule."""

    measurement_note = None
    copy_times = None

    def __init__(self, stage1, stage2, criterion: str, threshold: float):
        self.stage1, self.stage2 = stage1, stage2
        self.criterion, self.threshold = criterion, threshold
        self.samples_in = 0
        self.samples_exited = 0

    def predict(self, x: np.ndarray) -> np.ndarray:
        features, exit_logits = self.stage1.outputs(x)[:2]
        leave = exits(exit_logits, self.criterion, self.threshold)
        logits = np.array(exit_logits, dtype=np.float32, copy=True)
        if not leave.all():
            logits[~leave] = self.stage2.outputs(np.ascontiguousarray(features[~leave]))[0]
        self.samples_in += len(x)
        self.samples_exited += int(leave.sum())
        return logits

    @property
    def exit_rate(self) -> float:
        return self.samples_exited / self.samples_in if self.samples_in else 0.0

    def infer_one(self, x: np.ndarray) -> np.ndarray:
        """One sample, the shortest path: what a deployed early-exit runtime does per request."""
        features, exit_logits = self.stage1.outputs(x)[:2]
        if exits(exit_logits, self.criterion, self.threshold)[0]:
            return exit_logits
        return self.stage2.outputs(features)[0]

    def runner(self, samples: np.ndarray):
        """One inference per call, cycling through `samples` (batch 1): the latency depends on the input,
        so the timed loop must see the evaluation set's mix of easy and hard samples."""
        batches = [np.ascontiguousarray(samples[i:i + 1]) for i in range(len(samples))]
        state = [0]
        infer_one = self.infer_one
        count = len(batches)

        def one():
            i = state[0]
            state[0] = i + 1 if i + 1 < count else 0
            infer_one(batches[i])

        return one, ()
