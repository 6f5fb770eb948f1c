"""A slice of a power trace: timestamped voltage, current and power samples on one monotonic clock, and
its file in a run directory (raw/<job-id>.power.npz). Written by power sources, on a board too (Python 3.8,
numpy); read by reports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class TraceSlice:
    t_ns: np.ndarray
    voltage_v: np.ndarray
    current_a: np.ndarray
    power_w: np.ndarray

    def __len__(self) -> int:
        return len(self.t_ns)

    def save(self, path: Path) -> None:
        np.savez_compressed(path, t_ns=self.t_ns, voltage_v=self.voltage_v, current_a=self.current_a,
                            power_w=self.power_w)

    @classmethod
    def load(cls, path: Path) -> "TraceSlice":
        with np.load(path, allow_pickle=False) as data:
            return cls(data["t_ns"], data["voltage_v"], data["current_a"], data["power_w"])
