"""Affine (scale, zero point) quantization of a model's input and output tensors, as integer-only
runtimes define it. Used where an int8 .tflite runs: on the device (LiteRT backend, Python 3.8, numpy)
and on the host (the variant's host accuracy)."""

from __future__ import annotations

import numpy as np


def quantize(x: np.ndarray, dtype, scale: float, zero_point: int) -> np.ndarray:
    """`x` in the tensor's dtype: as is for a float tensor, else round(x / scale) + zero_point, clipped."""
    if np.issubdtype(dtype, np.floating):
        return np.ascontiguousarray(x, dtype=dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)


def dequantize(y: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    if np.issubdtype(y.dtype, np.floating) or scale == 0:
        return y
    return (y.astype(np.float32) - zero_point) * scale
