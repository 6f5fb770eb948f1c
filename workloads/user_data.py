"""A user's evaluation (or calibration) set, matched to the model's inputs before any job runs.

The .npz holds one array per model input, named after the input (`x` when the model has a single input),
and `y`, one integer label per sample. An input whose axis 0 takes samples (a symbolic or size-1 batch
axis) gets one entry per sample; any other input (an RNN's state of fixed shape, a scalar sample rate) is
given whole and fed whole to every call. Each problem is one line naming the file, the array and what
would be accepted. The checked arrays are cached in the model's dtypes, as the agents receive them.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.core.errors import ConfigError
from harness.core.hashing import content_hash
from harness.core.model_io import LABELS_KEY, SINGLE_INPUT_KEY
from workloads.cache import cached_dir
from workloads.signatures import ModelSignature, TensorSpec

EVALUATION, CALIBRATION = "evaluation set", "calibration set"


@dataclass(frozen=True)
class UserData:
    path: Path                  # the cached .npz: arrays named after the model's inputs (`x` for a single
    inputs: list                # one), and `y`; harness.core.model_io input specs, in the model's order
    n_samples: int
    sample_shape: tuple         # the first per-sample input's sample, without the batch axis
    max_label: int | None       # the largest label in `y` (None: no labels)

    def arrays(self) -> dict[str, np.ndarray]:
        with np.load(self.path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}


def accepted(sig: ModelSignature) -> str:
    names = [SINGLE_INPUT_KEY] if len(sig.inputs) == 1 else [i.name for i in sig.inputs]
    return (f"an .npz (numpy.savez, no pickled objects) with one array per model input ("
            f"{', '.join(repr(n) for n in names)}), samples on axis 0, and 'y' (1-D integer labels)")


def read_npz(path: Path, sig: ModelSignature, role: str) -> dict[str, np.ndarray]:
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ConfigError(f"{path}: {role} not found; accepted: {accepted(sig)}") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ConfigError(f"{path}: not readable ({exc}); accepted: {accepted(sig)}") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ConfigError(f"{path}: a single array (.npy), not an .npz archive; accepted: {accepted(sig)}")
    try:
        with data:
            return {name: data[name] for name in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ConfigError(f"{path}: not readable ({exc}); accepted: {accepted(sig)}") from None


def _array_for(path: Path, arrays: dict, tensor: TensorSpec, sig: ModelSignature) -> tuple[str, np.ndarray]:
    if tensor.name in arrays:
        return tensor.name, arrays[tensor.name]
    if len(sig.inputs) == 1 and SINGLE_INPUT_KEY in arrays:
        return SINGLE_INPUT_KEY, arrays[SINGLE_INPUT_KEY]
    raise ConfigError(f"{path}: no array for model input {tensor.describe()}; found: "
                      f"{', '.join(repr(k) for k in arrays) or 'none'}; accepted: {accepted(sig)}")


def _fits(dims: tuple, shape: tuple) -> bool:
    return len(dims) == len(shape) and all(not isinstance(d, int) or d in (-1, s) for d, s in zip(dims, shape))


def _check_input(path: Path, key: str, array: np.ndarray, tensor: TensorSpec) -> bool:
    """True when the array holds one entry per sample, False when it is fed whole; else one line."""
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise ConfigError(f"{path}: '{key}' has dtype {array.dtype}; accepted: numbers for input "
                          f"{tensor.describe()}")
    if tensor.quantized:
        # floats are quantized by the backend with the input's scale; integers must already be the input's
        # own values (a uint8 image cast to int8 would wrap around)
        if not (np.issubdtype(array.dtype, np.floating) or array.dtype == tensor.dtype):
            raise ConfigError(f"{path}: '{key}' has dtype {array.dtype}; the model's input {tensor.describe()} is "
                              f"quantized: accepted: floats in the model's scale (quantized with the input's scale "
                              f"and zero point) or {tensor.dtype} values already quantized")
    elif tensor.dtype is not None and np.issubdtype(tensor.dtype, np.floating) != np.issubdtype(array.dtype,
                                                                                               np.floating):
        raise ConfigError(f"{path}: '{key}' has dtype {array.dtype}; the model's input is {tensor.describe()}")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise ConfigError(f"{path}: '{key}' holds {bad} NaN or infinite values; accepted: finite numbers (an "
                          f"accuracy over them would mean nothing)")
    if tensor.shape is None:
        return True
    if tensor.batch_axis and array.ndim == len(tensor.shape) and _fits(tensor.shape[1:], array.shape[1:]):
        return True
    if not tensor.batch_axis and _fits(tensor.shape, array.shape):
        return False
    sample = ["batch", *tensor.shape[1:]] if tensor.batch_axis else list(tensor.shape)
    raise ConfigError(f"{path}: '{key}' has shape {list(array.shape)}; the model's input {tensor.describe()} "
                      f"takes {sample} (samples on axis 0, already in the model's layout)")


def _labels(path: Path, arrays: dict, n_samples: int, required: bool) -> np.ndarray | None:
    if LABELS_KEY not in arrays:
        if required:
            raise ConfigError(f"{path}: missing array(s) y; the metric needs 'y' (integer labels, one per "
                              f"sample), found: {', '.join(arrays) or 'none'} (or set metric = \"none\")")
        return None
    y = arrays[LABELS_KEY]
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
        raise ConfigError(f"{path}: 'y' must be a 1-D array of integer labels, got shape {y.shape} dtype {y.dtype}")
    if len(y) != n_samples:
        raise ConfigError(f"{path}: the inputs have {n_samples} samples and 'y' has {len(y)}; they must match")
    if len(y) and y.min() < 0:
        raise ConfigError(f"{path}: label {int(y.min())} in 'y' is negative; labels are class indices")
    return y.astype(np.int64)


def prepare_user_data(path: Path, sig: ModelSignature, role: str = EVALUATION,
                      labels_required: bool = True) -> UserData:
    """The set checked against every model input and cached in the model's dtypes."""
    arrays = read_npz(path, sig, role)
    fed, specs, counts = {}, [], {}
    for tensor in sig.inputs:
        key, array = _array_for(path, arrays, tensor, sig)
        per_sample = _check_input(path, key, array, tensor)
        if per_sample:
            counts[key] = len(array)
        keep_float = tensor.quantized and np.issubdtype(array.dtype, np.floating)
        # stored as `x` for a single input: every family's artifact finds it under the default name
        stored = SINGLE_INPUT_KEY if len(sig.inputs) == 1 else tensor.name
        fed[stored] = array if keep_float or tensor.dtype is None else array.astype(tensor.dtype, copy=False)
        specs.append({"name": stored, "per_sample": per_sample})
    # an input fed whole whose dimension is named like the per-sample inputs' batch axis (an RNN state
    # [2, batch, 128]) was given for one batch size: the agent skips other batch sizes, saying so
    batch_symbols = {t.shape[0] for t, spec in zip(sig.inputs, specs)
                     if spec["per_sample"] and t.shape and isinstance(t.shape[0], str)}
    for tensor, spec in zip(sig.inputs, specs):
        axes = [i for i, d in enumerate(tensor.shape or ()) if isinstance(d, str) and d in batch_symbols]
        if not spec["per_sample"] and axes:
            spec["batch_axis"] = axes[0]
    if not counts:
        raise ConfigError(f"{path}: no input takes samples on axis 0 ({', '.join(t.describe() for t in sig.inputs)})"
                          f"; accepted: a model with a batch axis")
    if len(set(counts.values())) != 1 or 0 in counts.values():
        raise ConfigError(f"{path}: the per-sample arrays have {counts} samples; accepted: the same number, > 0")
    n_samples = next(iter(counts.values()))
    y = _labels(path, arrays, n_samples, labels_required)
    if y is not None:
        fed[LABELS_KEY] = y
    stat = Path(path).stat()
    key = content_hash({"file": str(Path(path).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                        "inputs": [(t.name, str(t.dtype)) for t in sig.inputs]})
    folder, _ = cached_dir("data", f"user-{key}", lambda tmp: np.savez(tmp / "data.npz", **fed))
    first = next(spec["name"] for spec in specs if spec["per_sample"])
    max_label = int(y.max()) if y is not None and len(y) else None
    return UserData(folder / "data.npz", specs, n_samples, tuple(fed[first].shape[1:]), max_label)


def check_labels(path: Path, max_label: int, metric: str, n_classes: int | None) -> None:
    """Labels the metric can be scored against: class indices below the class count (top1), 0 / 1 (binary)."""
    if metric == "top1" and n_classes is not None and max_label >= n_classes:
        raise ConfigError(f"{path}: label {max_label} in 'y' is out of range: the scored output has "
                          f"{n_classes} classes (labels 0..{n_classes - 1})")
    if metric == "binary" and max_label > 1:
        raise ConfigError(f"{path}: label {max_label} in 'y': metric \"binary\" scores labels 0 and 1")
