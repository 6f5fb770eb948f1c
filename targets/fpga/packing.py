"""FINN's input/output data layout for dataflow accelerators, in numpy (board-side, Python 3.8).

FINN drivers pack the innermost dimension of the folded tensor into bytes: element i takes bits
[i*bits, (i+1)*bits) of one little integer padded to whole bytes (`reverse_inner`), stored little-endian
(`reverse_endian`); bipolar values are -1 -> 0, +1 -> 1; signed values are two's complement. These are
FINN's `finnpy_to_packed_bytearray(x, dt, reverse_inner=True, reverse_endian=True)` semantics.
"""

import numpy as np


def _check(values, bits, kind):
    if kind == "bipolar":
        ok = np.isin(values, (-1, 1))
    elif kind == "int":
        ok = (values >= -(1 << (bits - 1))) & (values < (1 << (bits - 1)))
    else:
        ok = (values >= 0) & (values < (1 << bits))
    if not np.all(ok):
        raise ValueError("values outside {}{} (e.g. {})".format(kind, bits, values[~ok].flat[0]))


def pack_innermost(x, bits, kind="uint", reverse_inner=True, reverse_endian=True):
    """(..., n) integers -> (..., ceil(n * bits / 8)) uint8."""
    values = np.asarray(x)
    if not np.all(values == np.round(values)):
        raise ValueError("packing takes integers; quantize first")
    values = values.astype(np.int64)
    _check(values, bits, kind)
    if kind == "bipolar":
        values = (values + 1) // 2
    values = values & ((1 << bits) - 1)          # two's complement for signed values
    if not reverse_inner:
        values = values[..., ::-1]               # element 0 goes to the most significant bits
    n = values.shape[-1]
    total = -(-n * bits // 8) * 8
    bit_planes = (values[..., None] >> np.arange(bits)) & 1      # (..., n, bits), LSB first
    flat = bit_planes.reshape(values.shape[:-1] + (n * bits,))
    pad = np.zeros(values.shape[:-1] + (total - n * bits,), dtype=flat.dtype)
    stream = np.concatenate([flat, pad], axis=-1).astype(np.uint8)
    packed = np.packbits(stream.reshape(values.shape[:-1] + (total // 8, 8)), axis=-1, bitorder="little")
    packed = packed[..., 0]
    return packed if reverse_endian else packed[..., ::-1]


def unpack_innermost(packed, bits, n, kind="uint", reverse_inner=True, reverse_endian=True):
    """The inverse of pack_innermost: (..., n_bytes) uint8 -> (..., n) float32 values."""
    packed = np.asarray(packed, dtype=np.uint8)
    if not reverse_endian:
        packed = packed[..., ::-1]
    stream = np.unpackbits(packed[..., None], axis=-1, bitorder="little")
    stream = stream.reshape(packed.shape[:-1] + (-1,))[..., :n * bits].astype(np.int64)
    planes = stream.reshape(packed.shape[:-1] + (n, bits))
    values = (planes << np.arange(bits)).sum(axis=-1)
    if not reverse_inner:
        values = values[..., ::-1]
    if kind == "bipolar":
        values = 2 * values - 1
    elif kind == "int":
        values = np.where(values >= 1 << (bits - 1), values - (1 << bits), values)
    return values.astype(np.float32)
