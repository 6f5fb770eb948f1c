"""The early-exit criterion: whether a sample leaves at the exit, from the exit's logits. One definition for
the host (fitting an exit predictor) and the agent (running two stages). Board-side: numpy only, Python 3.8.
"""

from __future__ import annotations

import numpy as np

CRITERIA = ("confidence", "entropy")


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def exits(exit_logits: np.ndarray, criterion: str, threshold: float) -> np.ndarray:
    """True where a sample leaves at the exit: confidence (max softmax) > threshold, or entropy < threshold."""
    p = softmax(exit_logits)
    if criterion == "confidence":
        return p.max(axis=1) > threshold
    entropy = -(p * np.log(np.clip(p, 1e-12, None))).sum(axis=1)
    return entropy < threshold
