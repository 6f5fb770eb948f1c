"""Early-exit prediction: a linear classifier on cheap features (the body's features pooled over space,
one number per channel) that sends samples it deems hard straight past the exit head.

A wrong guess costs compute, never the exit's answer: a sample sent to the head still leaves only when the
exit criterion holds; a sample sent past the head gets the whole network's answer. So the classifier is
a logistic regression on "would this sample leave at the exit?" over the training split, and its decision
cut is the one that minimises the expected MACs there: a sample sent on pays the head (and the rest when it
does not leave), a sample sent past pays the rest.
"""

from __future__ import annotations

import numpy as np

FIT_STEPS = 200


def pooled(features: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (N, C): what the graph's GlobalAveragePool computes."""
    return features.mean(axis=(2, 3))


def fit(pooled_features: np.ndarray, would_leave: np.ndarray, head_macs: float, rest_macs: float,
        seed: int) -> tuple[np.ndarray, float]:
    """(weights, bias): a sample goes on to the head when weights . pooled + bias > 0."""
    import torch

    x = torch.from_numpy(np.asarray(pooled_features, dtype=np.float32))
    y = torch.from_numpy(np.asarray(would_leave, dtype=np.float32))
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    torch.manual_seed(seed)
    linear = torch.nn.Linear(x.shape[1], 1)
    optimizer = torch.optim.LBFGS(linear.parameters(), max_iter=FIT_STEPS)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def closure():
        optimizer.zero_grad()
        loss = loss_fn(linear((x - mean) / std).squeeze(1), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():  # folded back onto the raw pooled features
        weights = (linear.weight[0] / std).numpy().astype(np.float64)
        bias = float(linear.bias[0] - (linear.weight[0] * mean / std).sum())
    scores = np.asarray(pooled_features, dtype=np.float64) @ weights + bias
    return weights, bias - cheapest_cut(scores, np.asarray(would_leave, dtype=bool), head_macs, rest_macs)


def cheapest_cut(scores: np.ndarray, would_leave: np.ndarray, head_macs: float, rest_macs: float) -> float:
    """The cut on the scores (send on when score > cut) with the fewest expected MACs after the body."""
    order = np.argsort(-scores)
    sorted_scores, leave = scores[order], would_leave[order]
    # sending the k best-scored samples on: each pays the head, those that stay pay the rest too; the
    # other n - k pay the rest
    n = len(scores)
    k = np.arange(n + 1)
    stayers_sent_on = np.concatenate([[0], np.cumsum(~leave)])
    cost = k * head_macs + stayers_sent_on * rest_macs + (n - k) * rest_macs
    best = int(np.argmin(cost))
    if best == 0:
        return float(sorted_scores[0]) + 1.0       # nobody is sent on
    if best == n:
        return float(sorted_scores[-1]) - 1.0      # everybody is
    return float((sorted_scores[best - 1] + sorted_scores[best]) / 2)


def macs(feature_shape: tuple[int, ...]) -> int:
    """The predictor's MACs per sample: the pooling's additions and the dot product."""
    channels = feature_shape[0]
    return int(np.prod(feature_shape)) + channels
