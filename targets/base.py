"""The target interface: a `Target` opens a `Session` on a device, and the session runs jobs there.

A new target is one module with a `Target` subclass, one entry point in the `edgebench.targets` group and
one TOML file under targets/.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from harness.core.jobs import Artifact, Job
from harness.core.measurement import MeasurementProtocol, Window
from targets.agent.wire import DeviceEnergy

# on_progress(phase, done, total): phase is one of targets.agent.wire.PHASES.
ProgressCallback = Callable[[str, int, int], None]


@dataclass
class Measurement:
    """What a session returns for one job: raw samples, never summaries only."""

    accuracy: float
    n_correct: int
    n_eval: int
    latency_ns: np.ndarray
    windows: list[Window]
    warmup_iterations: int
    warmup_s: float
    peak_rss_mb: float
    backend_info: dict
    exit_rate: float | None = None              # early-exit artifacts: the share that left early
    h2d_ms: float | None = None                 # GPU backends: one batch's copies, timed apart
    d2h_ms: float | None = None
    warnings: list[str] = field(default_factory=list)
    device_energy: DeviceEnergy | None = None   # from a power source on the device (same clock)
    # device clock - host clock, and its bound: windows are on the device's clock (0, 0 when local)
    clock_offset_ns: int = 0
    clock_uncertainty_ns: int = 0


class Session(ABC):
    @abstractmethod
    def info(self) -> dict:
        """Facts about the device: CPU model, cores, governor, runtimes and their versions."""

    def stage(self, artifact: Artifact) -> dict:
        """The artifact as the device sees it (`Artifact.to_dict()` with the device's paths), after
        copying its files and evaluation data there. Local devices use the files where they are."""
        return artifact.to_dict()

    @abstractmethod
    def run(self, job: Job, staged: dict, measurement_protocol: MeasurementProtocol, backend_options: dict,
            on_progress: ProgressCallback) -> Measurement:
        """Accuracy pass over the whole evaluation set, then the timed windows. Raises JobError
        (or SkipJob for a job this device cannot run by design)."""

    def record_power_on_device(self, spec) -> bool:
        """True when this session records `spec`'s power source on the device itself (the agent then
        returns each job's energy); False leaves it to the host."""
        return False

    def close(self) -> None:
        pass


class Target(ABC):
    def __init__(self, spec):
        self.spec = spec

    @abstractmethod
    def open(self) -> Session:
        ...
