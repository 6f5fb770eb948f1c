"""The agent's wire contract: every message between a host and an agent, typed and versioned, with its
JSON form. Both ends use this module: the agent on a board (Python 3.8, standard library only) and the
host-side driver (targets/agent_driver.py).

One JSON object per line, each with "type":

    agent -> host  hello     Hello        first line: the wire version and the device's facts
    host -> agent  clock     ClockPing    for mapping the board's clock onto the host's
    agent -> host  clock     ClockReply
    host -> agent  job       JobRequest   one job: artifact (paths as the device sees them), backend,
                                          measurement protocol, optional board-side power source
    agent -> host  progress  Progress     phase ("load", "accuracy", "warmup", "window"), done, total
    agent -> host  result    JobResult    accuracy, raw latency samples, windows, board-side energy
    agent -> host  error     JobFailed    kind "skip" (cannot run by design) or "fail"
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import List, Optional

# 3: typed messages, wire_version (was "protocol"), backend and power sources named by import reference
WIRE_VERSION = 3

# A job's phases, in order, as Progress reports them.
LOAD, ACCURACY, WARMUP, WINDOW = PHASES = ("load", "accuracy", "warmup", "window")
# JobFailed kinds: a job this device cannot run by design (recorded as skipped), or a failure.
SKIP, FAIL = FAILURE_KINDS = ("skip", "fail")


class WireError(ValueError):
    """A line that is not a message of this wire version."""


@dataclass
class Hello:
    facts: dict
    wire_version: int = WIRE_VERSION
    type: str = "hello"


@dataclass
class ClockPing:
    type: str = "clock"


@dataclass
class ClockReply:
    t_ns: int
    type: str = "clock"


@dataclass
class JobRequest:
    job_id: str
    backend: str
    backend_ref: str             # "module:Class" of the backend, resolved by the host's registry
    threads: int
    batch_size: int
    backend_options: dict
    artifact: dict               # Artifact.to_dict(), file paths as the device sees them
    measurement_protocol: dict   # MeasurementProtocol.to_dict()
    latency_out: Optional[str] = None   # a local .npy path; None: samples come back inline
    power: Optional[dict] = None        # a board-side power source: PowerSpec as a dict, with source_ref
    type: str = "job"


@dataclass
class Progress:
    phase: str                   # one of PHASES
    done: int
    total: int
    type: str = "progress"


@dataclass
class DeviceEnergy:
    """A board-side power source's energy columns for one job, computed on the board's clock, and the
    job's trace (the run directory's .power.npz bytes, base64)."""

    columns: dict
    reasons: List[str]
    warnings: List[str]
    trace_npz_b64: str
    source: dict


@dataclass
class JobResult:
    accuracy: float
    n_correct: int
    n_eval: int
    windows: List[list]          # [start_ns, end_ns, n_iterations] on the device's clock
    warmup_iterations: int
    warmup_s: float
    peak_rss_mb: float
    backend_info: dict
    latency_out: Optional[str] = None       # where the samples were saved, or None ...
    latency_ns_b64: Optional[str] = None    # ... and they are here: little-endian int64
    exit_rate: Optional[float] = None       # early-exit artifacts: the share of samples that left early
    h2d_ms: Optional[float] = None          # GPU backends: one batch's copies, timed apart (medians)
    d2h_ms: Optional[float] = None
    warnings: List[str] = field(default_factory=list)
    device_energy: Optional[DeviceEnergy] = None
    type: str = "result"


@dataclass
class JobFailed:
    kind: str                    # one of FAILURE_KINDS
    message: str
    traceback: str = ""
    type: str = "error"


HOST_TO_AGENT = {"clock": ClockPing, "job": JobRequest}
AGENT_TO_HOST = {"hello": Hello, "clock": ClockReply, "progress": Progress, "result": JobResult,
                 "error": JobFailed}


def encode(message) -> str:
    """One line of JSON (without the newline)."""
    return json.dumps(asdict(message))


def _build(cls, data: dict):
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise WireError("{} message with unknown field(s) {}".format(data.get("type"), ", ".join(unknown)))
    try:
        message = cls(**data)
    except TypeError as exc:  # a required field is missing
        raise WireError("{} message: {}".format(data.get("type"), exc)) from None
    if isinstance(message, JobResult) and isinstance(message.device_energy, dict):
        message.device_energy = _build(DeviceEnergy, message.device_energy)
    if isinstance(message, Progress) and message.phase not in PHASES:
        raise WireError("progress phase {!r}; expected one of {}".format(message.phase, ", ".join(PHASES)))
    if isinstance(message, JobFailed) and message.kind not in FAILURE_KINDS:
        raise WireError("error kind {!r}; expected one of {}".format(message.kind, ", ".join(FAILURE_KINDS)))
    return message


def decode(line, direction: dict):
    """The message on one line, of one of the types in `direction` (HOST_TO_AGENT or AGENT_TO_HOST)."""
    try:
        data = json.loads(line)
    except ValueError:
        raise WireError("a line that is not JSON: {!r}".format(line[:200])) from None
    if not isinstance(data, dict) or data.get("type") not in direction:
        kind = data.get("type") if isinstance(data, dict) else type(data).__name__
        raise WireError("unexpected message type {!r}; expected one of {}".format(
            kind, ", ".join(sorted(direction))))
    if data["type"] == "hello" and data.get("wire_version") != WIRE_VERSION:
        # an older agent may call the version "protocol"; say which it speaks before anything else
        raise WireError("the agent speaks wire version {}, this host speaks {}: ship the same edgebench "
                        "version".format(data.get("wire_version", data.get("protocol")), WIRE_VERSION))
    return _build(direction[data["type"]], data)
