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
    agent -> host  result    JobResult    accuracy, raw latency samples, windows, board-side energy, the
                                          machine's load around the windows
    agent -> host  error     JobFailed    kind "skip" (cannot run by design) or "fail"
    host -> agent  serve     ServeRequest the server of a split job: load the tail, listen on the data plane
    agent -> host  serving   Serving      the address it listens on; it serves until the host closes stdin

A split job's payloads go from the device agent to the server agent directly (targets/agent/dataplane.py),
never through these lines: JobRequest.split says where the server listens.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import List, Optional

# 3: typed messages, wire_version (was "protocol"), backend and power sources named by import reference
# 4: split computing: JobRequest.split, serve / serving, JobResult's split_times, payload and link figures
# 5: the statistical stopping rule: its keys in JobRequest.measurement_protocol, JobResult.stopping_rule
WIRE_VERSION = 5

# A job's phases, in order, as Progress reports them.
LOAD, ACCURACY, WARMUP, WINDOW = PHASES = ("load", "accuracy", "warmup", "window")
# JobFailed kinds: a job this device cannot run by design (recorded as skipped), or a failure.
SKIP, FAIL = FAILURE_KINDS = ("skip", "fail")
# JobRequest.split: where the server agent listens, the data plane's one-way delay, the bytes of the link's
# throughput probe, and optionally how long the device waits on the server before the job fails.
SPLIT_PLAN_KEYS = ("host", "port", "delay_ms", "probe_bytes")
SPLIT_PLAN_OPTIONAL = ("timeout_s", "accuracy_pass")
# JobResult.split_times: medians over the timed iterations, on the device's clock.
SPLIT_TIMES_KEYS = ("head_ms", "serialize_ms", "transfer_ms", "tail_ms")
# JobResult.machine_load: the machine around the timed windows (targets/agent/machine_load.py), named as the
# result columns they fill; a value is None where the device cannot tell.
MACHINE_LOAD_KEYS = ("load_avg_1m", "other_cpu_cores", "cpu_steal_pct")


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
    split: Optional[dict] = None        # a split job: SPLIT_PLAN_KEYS; the device runs files["head"] (if any)
    type: str = "job"


@dataclass
class ServeRequest:
    """Run a split job's tail (artifact files["tail"]) for the device agents that connect to bind_host:port."""

    job_id: str
    backend: str
    backend_ref: str
    threads: int
    backend_options: dict
    artifact: dict               # as the server sees it
    bind_host: str
    port: int = 0                # 0: any free port (Serving says which)
    delay_ms: float = 0.0        # one-way delay added to every frame this side receives
    type: str = "serve"


@dataclass
class Serving:
    host: str
    port: int
    type: str = "serving"


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
    accuracy: Optional[float]    # None: a split job told not to repeat its accuracy pass (accuracy_pass)
    n_correct: Optional[int]
    n_eval: int
    windows: List[list]          # [start_ns, end_ns, n_iterations] on the device's clock
    warmup_iterations: int
    warmup_s: float
    peak_rss_mb: float
    backend_info: dict
    latency_out: Optional[str] = None       # where the samples were saved, or None ...
    latency_ns_b64: Optional[str] = None    # ... and they are here: little-endian int64
    exit_rate: Optional[float] = None       # early-exit artifacts: the share of samples that left early,
    exit_path: Optional[str] = None         # how they ran (targets.agent.early_exit: one-call, two-stage, ...)
    exit_skip_rate: Optional[float] = None  # and the share an exit predictor sent past the head
    h2d_ms: Optional[float] = None          # GPU backends: one batch's copies, timed apart (medians)
    d2h_ms: Optional[float] = None
    warnings: List[str] = field(default_factory=list)
    device_energy: Optional[DeviceEnergy] = None
    split_times: Optional[dict] = None          # split jobs: SPLIT_TIMES_KEYS, medians in ms
    payload_bytes: Optional[int] = None         # tensor bytes sent per inference at the job's batch size
    link_measured_mbit: Optional[float] = None  # probed by the device over the data plane before the job
    link_rtt_ms: Optional[float] = None
    # MACHINE_LOAD_KEYS: others' CPU time, steal and load average around the timed windows, so that a job
    # measured on a busy machine says so; None from an agent that did not look
    machine_load: Optional[dict] = None
    # what ended the timed windows (harness.core.measurement.ENDED_BY); None from an agent that did not say
    stopping_rule: Optional[str] = None
    type: str = "result"


@dataclass
class JobFailed:
    kind: str                    # one of FAILURE_KINDS
    message: str
    traceback: str = ""
    type: str = "error"


HOST_TO_AGENT = {"clock": ClockPing, "job": JobRequest, "serve": ServeRequest}
AGENT_TO_HOST = {"hello": Hello, "clock": ClockReply, "progress": Progress, "result": JobResult,
                 "error": JobFailed, "serving": Serving}


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
    if isinstance(message, JobRequest) and message.split is not None:
        _check_split_plan(message.split)
    if isinstance(message, (ServeRequest, Serving)):
        _check_address(message.type, message.bind_host if isinstance(message, ServeRequest) else message.host,
                       message.port, 0)
    if isinstance(message, ServeRequest) and not _number(message.delay_ms, 0):
        raise WireError("serve delay_ms {!r}; expected a number >= 0".format(message.delay_ms))
    if isinstance(message, JobResult) and message.split_times is not None:
        if not isinstance(message.split_times, dict) or sorted(message.split_times) != sorted(SPLIT_TIMES_KEYS):
            raise WireError("result split_times {!r}; expected the keys {}".format(
                message.split_times, ", ".join(SPLIT_TIMES_KEYS)))
    if isinstance(message, JobResult) and message.machine_load is not None:
        _check_machine_load(message.machine_load)
    return message


def _number(value, minimum) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= minimum


def _check_machine_load(load) -> None:
    if not isinstance(load, dict) or sorted(load) != sorted(MACHINE_LOAD_KEYS):
        raise WireError("result machine_load {!r}; expected the keys {}".format(load, ", ".join(MACHINE_LOAD_KEYS)))
    for key, value in load.items():
        if value is not None and not _number(value, 0):
            raise WireError("result machine_load {} {!r}; expected a number >= 0 or null".format(key, value))


def _check_address(what: str, host, port, min_port: int) -> None:
    if not isinstance(host, str) or not host:
        raise WireError("{} host {!r}; expected a non-empty string".format(what, host))
    if not isinstance(port, int) or isinstance(port, bool) or not min_port <= port <= 65535:
        raise WireError("{} port {!r}; expected an integer in {}..65535".format(what, port, min_port))


def _check_split_plan(plan) -> None:
    if not isinstance(plan, dict):
        raise WireError("job split {!r}; expected an object with {}".format(plan, ", ".join(SPLIT_PLAN_KEYS)))
    missing = [k for k in SPLIT_PLAN_KEYS if k not in plan]
    unknown = sorted(set(plan) - set(SPLIT_PLAN_KEYS) - set(SPLIT_PLAN_OPTIONAL))
    if missing or unknown:
        raise WireError("job split with {}; expected the keys {} (optional: {})".format(
            "; ".join(filter(None, ["missing " + ", ".join(missing) if missing else "",
                                    "unknown " + ", ".join(unknown) if unknown else ""])),
            ", ".join(SPLIT_PLAN_KEYS), ", ".join(SPLIT_PLAN_OPTIONAL)))
    _check_address("job split", plan["host"], plan["port"], 1)
    if not _number(plan["delay_ms"], 0):
        raise WireError("job split delay_ms {!r}; expected a number >= 0".format(plan["delay_ms"]))
    if not isinstance(plan["probe_bytes"], int) or isinstance(plan["probe_bytes"], bool) or plan["probe_bytes"] < 0:
        raise WireError("job split probe_bytes {!r}; expected an integer >= 0".format(plan["probe_bytes"]))
    if "timeout_s" in plan and not (_number(plan["timeout_s"], 0) and plan["timeout_s"] > 0):
        raise WireError("job split timeout_s {!r}; expected a number > 0".format(plan["timeout_s"]))
    if not isinstance(plan.get("accuracy_pass", True), bool):
        raise WireError("job split accuracy_pass {!r}; expected true or false".format(plan["accuracy_pass"]))


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
