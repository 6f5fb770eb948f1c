"""Pareto fronts of trade-offs: lower cost and higher accuracy are both better."""

from __future__ import annotations

import numpy as np
import pandas as pd


def pareto_mask(cost: np.ndarray, accuracy: np.ndarray) -> np.ndarray:
    """True for points no other point beats on both axes (lower or equal cost, higher or equal accuracy,
    strictly better on one). O(n log n): by cost, a point is on the front when it is the most accurate of
    its cost and more accurate than every cheaper point."""
    cost = np.asarray(cost, dtype=float)
    accuracy = np.asarray(accuracy, dtype=float)
    mask = np.zeros(len(cost), dtype=bool)
    valid = np.flatnonzero(~(np.isnan(cost) | np.isnan(accuracy)))
    order = valid[np.lexsort((-accuracy[valid], cost[valid]))]
    best_cheaper = -np.inf
    start = 0
    while start < len(order):
        stop = start
        while stop < len(order) and cost[order[stop]] == cost[order[start]]:
            stop += 1
        same_cost = order[start:stop]
        top = accuracy[same_cost[0]]  # the most accurate at this cost (sorted so)
        if top > best_cheaper:
            mask[same_cost[accuracy[same_cost] == top]] = True
            best_cheaper = top
        start = stop
    return mask


def pareto_members(rows: pd.DataFrame, cost: str, by: str | None = None) -> np.ndarray:
    """For each row, whether it is on the accuracy / `cost` front of its `by` group (of all rows when None);
    rows without either value are on no front."""
    mask = np.zeros(len(rows), dtype=bool)
    groups = rows.groupby(by, sort=False).indices.values() if by else [np.arange(len(rows))]
    for positions in groups:
        mask[positions] = pareto_mask(rows[cost].to_numpy()[positions], rows["accuracy"].to_numpy()[positions])
    return mask
