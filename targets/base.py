"""The target interface: a `Target` opens a `Session` on a device, and the session runs jobs there.

A new target is one module with a `Target` subclass, one entry point in the `edgebench.targets` group and
one TOML file under targets/.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field

import numpy as np

from harness.core.errors import ConfigError, SkipJob
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
    exit_rate: float | None = None              # early-exit artifacts: the share that left early,
    exit_path: str | None = None                # how they ran (one-call, two-stage, ...)
    exit_skip_rate: float | None = None         # and the share an exit predictor sent past the head
    h2d_ms: float | None = None                 # GPU backends: one batch's copies, timed apart
    d2h_ms: float | None = None
    warnings: list[str] = field(default_factory=list)
    device_energy: DeviceEnergy | None = None   # from a power source on the device (same clock)
    machine_load: dict | None = None            # load and others' CPU time around the timed part (agent)
    # device clock - host clock, and its bound: windows are on the device's clock (0, 0 when local)
    clock_offset_ns: int = 0
    clock_uncertainty_ns: int = 0
    # split jobs: {"head_ms", "serialize_ms", "transfer_ms", "tail_ms"} (medians, device clock), the tensor
    # bytes sent per inference, and the link as the device probed it before the job
    split_times: dict | None = None
    payload_bytes: int | None = None
    link_measured_mbit: float | None = None
    link_rtt_ms: float | None = None
    stopping_rule: str | None = None            # what ended the timed windows (measurement.ENDED_BY)


@dataclass(frozen=True)
class SplitPlan:
    """Where a split job's device agent sends its payloads: the server agent's address (as the device
    reaches it), the data plane's one-way delay, the bytes of the throughput probe before the job, and how
    long the device waits on the server before the job fails."""

    host: str
    port: int
    delay_ms: float = 0.0
    probe_bytes: int = 1 << 20
    timeout_s: float = 60.0
    # False: skip the accuracy pass (measured through the same head and tail over another link already)
    accuracy_pass: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


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
            on_progress: ProgressCallback, split: SplitPlan | None = None) -> Measurement:
        """Accuracy pass over the whole evaluation set, then the timed windows. Raises JobError
        (or SkipJob for a job this device cannot run by design). With `split`, the device runs the
        artifact's head and sends each payload to the server agent the plan names."""

    def serve(self, job: Job, staged: dict, backend_options: dict, bind_host: str, port: int = 0,
              delay_ms: float = 0.0, wrapper: list[str] | tuple = ()) -> AbstractContextManager:
        """A context manager yielding (host, port): a fresh agent (its command prefixed by `wrapper`) runs
        `staged`'s tail for device agents that connect to bind_host:port (0: any free port), adding
        `delay_ms` to every frame it receives; closed on exit."""
        raise SkipJob(f"target {self._name()} cannot serve the tail of a split job")

    def set_agent_wrapper(self, argv: list[str]) -> None:
        """Words put before every later agent's command (a network namespace, a cgroup); [] for none."""
        if argv:
            raise ConfigError(f"target {self._name()} cannot run its agent inside {' '.join(argv)!r} (a network "
                              f"namespace or a CPU quota): only the local cpu target can; a board is on its "
                              f"real network at its own speed")

    def _name(self) -> str:
        spec = getattr(self, "spec", None)
        return getattr(spec, "name", type(self).__name__)

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
