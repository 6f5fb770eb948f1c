"""The agent: the process that runs jobs on a device and speaks versioned JSON lines on stdin/stdout.

The cpu target starts it locally for each job; board targets start the same code over SSH. It needs
numpy and the runtimes it is asked to use, nothing else, and keeps to Python 3.8 syntax.

Messages (one JSON object per line, each with "type"):
    agent -> host  hello     {protocol, facts}         (facts include the board's, with --board KIND)
    host -> agent  clock     {}                        a ping for mapping the board's clock to the host's
    agent -> host  clock     {t_ns}
    host -> agent  job       {job_id, backend, threads, batch_size, backend_options, artifact,
                              protocol, latency_out}   (latency_out null: samples come back inline)
    agent -> host  progress  {phase, done, total}
    agent -> host  result    {accuracy, n_correct, n_eval, windows, warmup_*, latency_out or
                              latency_ns_b64 (little-endian int64), peak_rss_mb, backend_info}
    agent -> host  error     {kind: "skip" | "fail", message}
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import traceback

PROTOCOL_VERSION = 2  # 2: clock pings, inline latencies, board-side power, --board and --smoke
RUNTIMES = ("onnxruntime", "torch", "numpy", "ai-edge-litert", "tflite-runtime", "tensorrt")


def send(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _read(path):
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def device_facts() -> dict:
    """What the device is: read here, on the device, never assumed by the host."""
    fields = {}
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    # x86 says "model name"; Arm boards say "Model" (Raspberry Pi) or "Hardware"
    cpu_model = next((fields[k] for k in ("model name", "hardware", "cpu model") if fields.get(k)), None)
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    cpufreq = "/sys/devices/system/cpu/cpu0/cpufreq/"
    versions = {}
    try:
        from importlib.metadata import PackageNotFoundError, version
        for name in RUNTIMES:
            try:
                versions[name] = version(name)
            except PackageNotFoundError:
                pass
    except ImportError:
        pass
    return {
        "hostname": platform.node(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu_model or platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "cpu_count_usable": usable,
        "governor": _read(cpufreq + "scaling_governor"),
        "cpu_max_khz": _read(cpufreq + "cpuinfo_max_freq"),
        "loadavg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "runtimes": versions,
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process. Linux's VmHWM belongs to this program alone; ru_maxrss
    would also count the parent's memory at fork time (it survives exec)."""
    for line in (_read("/proc/self/status") or "").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 1024.0 / 1024.0


def load_model(request: dict):
    """The backend (or, for an early-exit artifact, its two stages and the exit rule)."""
    from targets.backends import load_backend_class
    from targets.backends.base import Unsupported

    backend_cls = load_backend_class(request["backend"])
    artifact = request["artifact"]
    options = dict(request["backend_options"])
    options.update(artifact.get("backend_options", {}).get(request["backend"], {}))
    if not artifact.get("stages"):
        backend = backend_cls(request["threads"], options)
        backend.load(artifact)
        return backend
    from targets.staged import EarlyExitModel

    stages = []
    for stage in artifact["stages"]:
        backend = backend_cls(request["threads"], options)
        backend.load({"files": {"onnx": stage["onnx"]}})
        if not hasattr(backend, "outputs"):
            raise Unsupported(f"backend {request['backend']} cannot run the stages of an early-exit model")
        stages.append(backend)
    if request["batch_size"] != 1:
        raise Unsupported("early exits decide per sample: batch_size must be 1")
    return EarlyExitModel(stages[0], stages[1], artifact["exit"]["criterion"], artifact["exit"]["threshold"])


def run_job(request: dict) -> dict:
    monitor = device_power_monitor(request.get("power"))
    try:
        return _measure(request, monitor)
    finally:
        if monitor is not None:
            monitor.stop()
            RUNNING_MONITORS.remove(monitor)


# Started power sources (a tegrastats child process, reader threads): stopped before the agent exits.
RUNNING_MONITORS = []


def host_lines():
    """The host's lines, read on their own thread: when the host goes away (EOF: Ctrl-C on the host, a
    dropped SSH link) the agent stops at once, even mid-job, instead of measuring for nobody and loading
    the board while the next run starts."""
    import queue
    import threading

    lines = queue.Queue()

    def read():
        for line in sys.stdin:
            lines.put(line)
        for monitor in RUNNING_MONITORS:
            monitor.stop()
        os._exit(0)

    threading.Thread(target=read, name="host-lines", daemon=True).start()
    while True:
        yield lines.get()


def device_power_monitor(spec):
    """A power source on this device (tegrastats, INA3221, PMIC, hwmon, RAPL), started with its idle
    baseline before the model loads; it shares the windows' clock, so no mapping is needed."""
    if not spec:
        return None
    from power.monitor import PowerMonitor
    from power.registry import PowerSpec

    monitor = PowerMonitor(PowerSpec(**spec))
    monitor.check()
    RUNNING_MONITORS.append(monitor)
    monitor.start()
    return monitor


def device_energy(monitor, windows, batch_size):
    """The energy columns computed here, and the job's trace sent back inline."""
    import base64
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trace.npz")
        columns, reasons, warnings = monitor.job_columns(windows, batch_size, path)
        with open(path, "rb") as fh:
            trace = base64.b64encode(fh.read()).decode("ascii")
    return {"columns": columns, "reasons": reasons, "warnings": warnings, "trace_npz_b64": trace,
            "source": monitor.describe()}


def _measure(request, monitor):
    import numpy as np

    from harness.protocol import ProtocolSettings, run_protocol
    from targets.staged import EarlyExitModel

    send({"type": "progress", "phase": "load", "done": 0, "total": 1})
    model = load_model(request)
    staged = isinstance(model, EarlyExitModel)
    batch_size = request["batch_size"]
    fixed_batch = None if staged else model.fixed_batch
    if fixed_batch is not None and fixed_batch != batch_size:
        from targets.backends.base import Unsupported
        raise Unsupported(f"the model has a fixed batch size of {fixed_batch}; "
                          f"batch_size {batch_size} cannot run")

    with np.load(request["artifact"]["eval_data"], allow_pickle=False) as data:
        x, y = data["x"], data["y"]
    eval_batch = fixed_batch or 256
    correct = 0
    for start in range(0, len(x), eval_batch):
        chunk = x[start:start + eval_batch]
        n = len(chunk)
        if n < eval_batch and fixed_batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], eval_batch - n, axis=0)])
        logits = np.asarray(model.predict(np.ascontiguousarray(chunk)))[:n]
        correct += int((logits.reshape(n, -1).argmax(axis=1) == y[start:start + n]).sum())
        send({"type": "progress", "phase": "accuracy", "done": start + n, "total": len(x)})
    extra = {}
    note = getattr(model, "measurement_note", None)
    if note:
        extra["warnings"] = [note]
    if staged:
        extra["exit_rate"] = model.exit_rate
        call, args = model.runner(x)
    else:
        call, args = model.runner(np.ascontiguousarray(np.resize(x, (batch_size,) + x.shape[1:])))

    settings = ProtocolSettings(**request["protocol"])
    send({"type": "progress", "phase": "warmup", "done": 0, "total": settings.n_windows})
    timed = run_protocol(call, args, settings, on_window=lambda done, total: send(
        {"type": "progress", "phase": "window", "done": done, "total": total}))
    if monitor is not None:
        extra["power"] = device_energy(monitor, timed.windows, batch_size)
    latency = np.frombuffer(timed.latency_ns, dtype=np.int64)
    samples = {"latency_out": request["latency_out"]}
    if request["latency_out"]:
        np.save(request["latency_out"], latency)
    else:
        import base64
        samples["latency_ns_b64"] = base64.b64encode(latency.astype("<i8").tobytes()).decode("ascii")
    result = {
        "type": "result",
        "accuracy": correct / len(y),
        "n_correct": correct,
        "n_eval": len(y),
        "windows": [[w.start_ns, w.end_ns, w.n_iterations] for w in timed.windows],
        "warmup_iterations": timed.warmup_iterations,
        "warmup_s": timed.warmup_s,
        "peak_rss_mb": peak_rss_mb(),
        "backend_info": model.stage1.info() if staged else model.info(),
        "extra": extra,
    }
    result.update(samples)
    return result


def main(argv=None) -> int:
    import argparse
    import time

    from targets.backends.base import Unsupported

    parser = argparse.ArgumentParser(prog="edgebench-agent")
    parser.add_argument("--board", default=None, help="rpi | jetson | pynq: add that board's facts")
    parser.add_argument("--smoke", default="", help="comma-separated runtimes to smoke-test in hello")
    args = parser.parse_args(argv)
    facts = device_facts()
    facts["agent"] = os.path.abspath(__file__)  # inside the shipped .pyz on a board
    if args.board:
        from targets.board_facts import board_facts
        facts["board"] = dict(board_facts(args.board), kind=args.board)
    if args.smoke:
        from targets.smoke import smoke_tests
        facts["smoke"] = smoke_tests(args.smoke.split(","))
    send({"type": "hello", "protocol": PROTOCOL_VERSION, "facts": facts})
    for line in host_lines():
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            if request.get("type") == "clock":
                send({"type": "clock", "t_ns": time.monotonic_ns()})
                continue
            if request.get("type") != "job":
                raise ValueError("unexpected message type {!r}".format(request.get("type")))
            send(run_job(request))
        except Unsupported as exc:
            send({"type": "error", "kind": "skip", "message": str(exc)})
        except Exception as exc:  # every failure goes back to the host as a message, not a dead pipe
            send({"type": "error", "kind": "fail", "message": f"{type(exc).__name__}: {exc}",
                  "traceback": traceback.format_exc(limit=6)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
