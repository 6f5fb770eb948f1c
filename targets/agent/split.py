"""A split job on its two agents: the device loads the head and connects to the server (JobRequest.split),
the server loads the tail and serves it on the data plane (ServeRequest). Board-side, Python 3.8.

The stages are ONNX files (artifact files["head"], files["tail"]; offload has no head: the input itself is
the payload), run by the job's backend as `backend.load({"files": {"onnx": path}})`; a backend that runs no
ONNX skips the job.
"""

from __future__ import annotations

from targets.agent.dataplane import ServerLink, SplitRunner, TailServer
from targets.agent.wire import JobRequest, ServeRequest, Serving
from targets.backends.base import Unsupported

# How long the device waits on the server (a connect, one reply, one probe) when the plan does not say.
DEFAULT_TIMEOUT_S = 60.0

# The accuracy pass sends batches of at most this many payload bytes (and at most 256 samples): a frame
# must cross a slow link well within the timeout (1 MiB: 8.4 s at 1 Mbit/s).
ACCURACY_FRAME_BYTES = 1 << 20

# Tail servers of this agent: they serve on their threads until the host closes the agent's stdin.
SERVERS = []


def load_stage(request, backend_cls, options: dict, key: str, what: str):
    """The artifact's files[key] loaded by the request's backend, or None when there is no such stage."""
    path = request.artifact.get("files", {}).get(key)
    if path is None:
        return None
    backend = backend_cls(request.threads, options)
    try:
        backend.load({"files": {"onnx": path}})
    except Unsupported as exc:
        raise Unsupported("backend {} cannot run the {} of a split model, an ONNX file: {}".format(
            request.backend, what, exc)) from None
    return backend


def open_split(request: JobRequest, backend_cls, options: dict) -> SplitRunner:
    """The device's side: the head loaded, connected to the server, the link's RTT and throughput probed."""
    head = load_stage(request, backend_cls, options, "head", "head")
    strategy = (request.artifact.get("split") or {}).get("strategy", "offload")
    if head is None and strategy != "offload":
        raise ValueError("split job {}: a {} artifact without files['head'] (it has {}); only offload sends the "
                         "raw input".format(request.job_id, strategy, ", ".join(request.artifact.get("files", {}))))
    plan = request.split
    link = ServerLink(plan["host"], plan["port"], plan["delay_ms"], plan.get("timeout_s", DEFAULT_TIMEOUT_S))
    try:
        runner = SplitRunner(head, link)
        per_sample = (request.artifact.get("split") or {}).get("payload_bytes")
        if isinstance(per_sample, int) and per_sample > 0:
            runner.accuracy_batch = max(1, min(256, ACCURACY_FRAME_BYTES // per_sample))
        runner.link_rtt_ms = link.rtt_ms()
        runner.link_measured_mbit = link.throughput_mbit(plan["probe_bytes"], runner.link_rtt_ms)
    except BaseException:
        link.close()
        raise
    return runner


def serve(request: ServeRequest, backend_cls, options: dict) -> Serving:
    """The server's side: the tail loaded and served on (bind_host, port) from now on."""
    tail = load_stage(request, backend_cls, options, "tail", "tail")
    if tail is None:
        raise ValueError("serve request for job {}: the artifact has no files['tail'] (it has {})".format(
            request.job_id, ", ".join(request.artifact.get("files", {})) or "none"))
    try:
        server = TailServer(tail, request.bind_host, request.port, request.delay_ms)
    except OSError as exc:
        raise OSError("cannot listen on {}:{} for job {}: {}".format(
            request.bind_host, request.port, request.job_id, exc)) from None
    SERVERS.append(server.start())
    return Serving(server.host, server.port)
