"""Training of reference models on the host: fixed seeds, deterministic order, the cores this process is
given (all usable ones, or its share when the build runs in several worker processes)."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from harness.core.errors import ConfigError


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask; a container's cpuset)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# Intra-op threads for training; a build worker sets its share (threads x workers <= cores: more threads than
# cores make PyTorch's thread pool wait on preempted threads, many times slower).
_threads = usable_cores()


def set_training_threads(n: int) -> None:
    global _threads
    _threads = max(1, n)


@dataclass(frozen=True)
class TrainingSpec:
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0

    def describe(self) -> dict:
        return asdict(self)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, spec: TrainingSpec,
          on_epoch=None, loss_fn=None) -> nn.Module:
    """Adam with a one-cycle schedule; cross-entropy unless `loss_fn(logits, labels, batch_indices)` is
    given (distillation). `on_epoch(done, total, loss)` reports progress."""
    torch.set_num_threads(_threads)
    seed_everything(spec.seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.learning_rate, weight_decay=spec.weight_decay)
    steps = spec.epochs * max(1, -(-len(xt) // spec.batch_size))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, spec.learning_rate, total_steps=steps)
    if loss_fn is None:
        cross_entropy = nn.CrossEntropyLoss()
        loss_fn = lambda logits, labels, idx: cross_entropy(logits, labels)  # noqa: E731
    order = torch.Generator().manual_seed(spec.seed)
    model.train()
    for epoch in range(spec.epochs):
        total = 0.0
        for idx in torch.randperm(len(xt), generator=order).split(spec.batch_size):
            optimizer.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx], idx)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(idx)
        if not math.isfinite(total):
            raise ConfigError(f"training diverged: the loss is {total / len(xt)} in epoch {epoch + 1} (learning rate "
                              f"{spec.learning_rate:g}); lower learning_rate in [training]")
        if on_epoch is not None:
            on_epoch(epoch + 1, spec.epochs, total / len(xt))
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 512) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(x), batch_size):
        logits = model(torch.from_numpy(x[start:start + batch_size]))
        correct += int((logits.argmax(1).numpy() == y[start:start + batch_size]).sum())
    return correct / len(x)
