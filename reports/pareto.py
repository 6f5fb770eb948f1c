"""Pareto fronts of trade-offs: lower cost and higher accuracy are both better."""

from __future__ import annotations

import numpy as np


def pareto_mask(cost: np.ndarray, accuracy: np.ndarray) -> np.ndarray:
    """True for points no other point beats on both axes (lower or equal cost, higher or equal accuracy,
    strictly better on one)."""
    cost = np.asarray(cost, dtype=float)
    accuracy = np.asarray(accuracy, dtype=float)
    mask = np.zeros(len(cost), dtype=bool)
    for i in range(len(cost)):
        if np.isnan(cost[i]) or np.isnan(accuracy[i]):
            continue
        dominated = ((cost <= cost[i]) & (accuracy >= accuracy[i])
                     & ((cost < cost[i]) | (accuracy > accuracy[i])))
        mask[i] = not dominated.any()
    return mask
