"""One job on the device: load the model, the accuracy pass over the whole evaluation set, then warm-up
and timed windows (harness.core.measurement), with a board-side power source recording when asked.
A split job's model is its head and the server agent running its tail (targets/agent/split.py): the same
passes run through both, and the result adds the four parts of the time and the link's figures.
Every result carries the machine's load around the timed part (targets/agent/machine_load.py).
Board-side, Python 3.8."""

from __future__ import annotations

import base64
import os
import tempfile

import numpy as np

from harness.core import model_io
from harness.core.measurement import MeasurementProtocol, run_windows
from harness.core.plugins import load_ref
from targets.agent.dataplane import SplitRunner
from targets.agent.early_exit import ExitModel, load_exit_model
from targets.agent.facts import peak_rss_mb
from targets.agent.machine_load import machine_load, snapshot
from targets.agent.wire import ACCURACY, LOAD, WARMUP, WINDOW, DeviceEnergy, JobRequest, JobResult, Progress
from targets.backends.base import Unsupported

# Started power sources (a tegrastats child process, reader threads): stopped before the agent exits.
RUNNING_MONITORS = []


def stop_all_monitors() -> None:
    """Stop every running power source (the host went away: nobody will read them)."""
    for monitor in list(RUNNING_MONITORS):
        monitor.stop()


def backend_class(request: JobRequest):
    """The backend's class by the reference the host resolved; a plug-in backend that is not installed on
    this device is a skip that says so (the shipped agent carries edgebench's own backends only)."""
    try:
        return load_ref(request.backend_ref)
    except ImportError as exc:
        raise Unsupported("backend '{}' ({}) is not importable on this device ({}): install the package "
                          "that provides it there".format(request.backend, request.backend_ref, exc)) from None


def stage_options(request) -> dict:
    """The target's options for the request's backend, with the artifact's own over them."""
    options = dict(request.backend_options)
    options.update(request.artifact.get("backend_options", {}).get(request.backend, {}))
    return options


def load_model(request: JobRequest):
    """The backend (or, for an early-exit artifact, its one-call graph or its two stages and the exit rule;
    for a split job, its head and the connection to the server running its tail)."""
    backend_cls = backend_class(request)
    artifact = request.artifact
    options = stage_options(request)
    if request.split is not None:
        from targets.agent.split import open_split

        return open_split(request, backend_cls, options)
    if not artifact.get("stages"):
        backend = backend_cls(request.threads, options)
        backend.load(artifact)
        return backend
    return load_exit_model(lambda: backend_cls(request.threads, options), artifact, request.batch_size,
                           request.backend)


def device_power_monitor(spec):
    """A power source on this device (tegrastats, INA3221, PMIC, hwmon, RAPL), started with its idle
    baseline before the model loads; it shares the windows' clock, so no mapping is needed."""
    if not spec:
        return None
    from power.monitor import PowerMonitor
    from power.spec import PowerSpec

    monitor = PowerMonitor(PowerSpec(**spec))
    monitor.check()
    RUNNING_MONITORS.append(monitor)
    monitor.start()
    return monitor


def device_energy(monitor, windows, batch_size) -> DeviceEnergy:
    """The energy columns computed here, and the job's trace sent back inline."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trace.npz")
        columns, reasons, warnings = monitor.job_columns(windows, batch_size, path)
        with open(path, "rb") as fh:
            trace = base64.b64encode(fh.read()).decode("ascii")
    return DeviceEnergy(columns, reasons, warnings, trace, monitor.describe())


def run_job(request: JobRequest, send) -> JobResult:
    monitor = device_power_monitor(request.power)
    try:
        return _measure(request, monitor, send)
    finally:
        if monitor is not None:
            monitor.stop()
            RUNNING_MONITORS.remove(monitor)


def _accuracy_pass(model, inputs, specs, labels, scoring, eval_batch, fixed_batch, send) -> int:
    index = scoring["output_index"]
    correct = 0
    for start in range(0, len(labels), eval_batch):
        stop = min(start + eval_batch, len(labels))
        chunk = model_io.batch(inputs, specs, start, stop)
        if stop - start < eval_batch and fixed_batch:  # the model takes full batches only: pad, then cut
            chunk = model_io.resized(chunk, specs, eval_batch)
        outputs = model.predict_all(chunk)
        if index >= len(outputs):
            raise Unsupported("{} returns {} output(s); the metric scores output {} ({})".format(
                model.name or type(model).__name__, len(outputs), index, scoring.get("output")))
        correct += model_io.count_correct(np.asarray(outputs[index])[:stop - start], labels[start:stop], scoring)
        send(Progress(ACCURACY, stop, len(labels)))
    return correct


def _measure(request: JobRequest, monitor, send) -> JobResult:
    send(Progress(LOAD, 0, 1))
    model = load_model(request)
    try:
        return _measure_model(request, model, monitor, send)
    finally:
        if isinstance(model, SplitRunner):
            model.close()


def _measure_model(request: JobRequest, model, monitor, send) -> JobResult:
    early_exit = isinstance(model, ExitModel)
    batch_size = request.batch_size
    fixed_batch = None if early_exit else model.fixed_batch
    if fixed_batch is not None and fixed_batch != batch_size:
        raise Unsupported("the model has a fixed batch size of {}; batch_size {} cannot run".format(
            fixed_batch, batch_size))

    specs, scoring = model_io.input_specs(request.artifact), model_io.scoring_of(request.artifact)
    with np.load(request.artifact["eval_data"], allow_pickle=False) as data:
        inputs = model_io.load_inputs(data, specs)
        labels = data[model_io.LABELS_KEY] if model_io.LABELS_KEY in data else None
    problem = model_io.batch_problem(inputs, specs, batch_size)
    if problem:
        raise Unsupported(problem)
    n_eval = len(next(a for a, s in zip(inputs, specs) if s["per_sample"]))
    # a split job's accuracy does not depend on the link: measured over one, it is not sent again over a
    # slower one (the whole evaluation set at 1 Mbit/s takes minutes); a model without a metric has none
    again = (request.split or {}).get("accuracy_pass", True) and scoring["metric"] != "none"
    # inputs fed whole (an RNN's state) were given for the job's batch size: the accuracy pass keeps it
    eval_batch = (fixed_batch or getattr(model, "accuracy_batch", None)
                  or (batch_size if model_io.has_constants(specs) else 256))
    correct = (_accuracy_pass(model, inputs, specs, labels, scoring, eval_batch, fixed_batch, send)
               if again else None)
    if early_exit:
        call, args = model.runner_all(inputs)
    else:
        call, args = model.runner_all(model_io.resized(inputs, specs, batch_size))

    protocol = MeasurementProtocol(**request.measurement_protocol)
    send(Progress(WARMUP, 0, protocol.planned_windows))
    # The machine around the timed part. run_windows warms up first, inside it, with no hook before the
    # first window: the warm-up's share of the interval is small and it runs the same loop.
    before = snapshot()
    timed = run_windows(call, args, protocol,
                        on_window=lambda done, total: send(Progress(WINDOW, done, total)))
    load = machine_load(before, snapshot())
    latency = np.frombuffer(timed.latency_ns, dtype=np.int64)
    result = JobResult(
        accuracy=correct / n_eval if correct is not None else None, n_correct=correct, n_eval=n_eval,
        windows=[[w.start_ns, w.end_ns, w.n_iterations] for w in timed.windows],
        warmup_iterations=timed.warmup_iterations, warmup_s=timed.warmup_s, peak_rss_mb=peak_rss_mb(),
        backend_info=model.info(),
        exit_rate=model.exit_rate if early_exit else None, exit_path=model.path if early_exit else None,
        exit_skip_rate=model.skip_rate if early_exit else None,
        h2d_ms=(model.copy_times or {}).get("h2d_ms"), d2h_ms=(model.copy_times or {}).get("d2h_ms"),
        warnings=[model.measurement_note] if model.measurement_note else [],
        device_energy=device_energy(monitor, timed.windows, batch_size) if monitor is not None else None,
        machine_load=load, stopping_rule=timed.stopping_rule)
    if isinstance(model, SplitRunner):
        result.split_times = model.split_times(len(latency))
        result.payload_bytes = model.payload_bytes
        result.link_measured_mbit, result.link_rtt_ms = model.link_measured_mbit, model.link_rtt_ms
    if request.latency_out:
        np.save(request.latency_out, latency)
        result.latency_out = request.latency_out
    else:
        result.latency_ns_b64 = base64.b64encode(latency.astype("<i8").tobytes()).decode("ascii")
    return result
