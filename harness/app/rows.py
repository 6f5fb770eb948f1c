"""One result row per job: keys, nominal cost, measured statistics, accuracy delta, the machine's load,
energy."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict
from pathlib import Path

from harness.app.split_runs import NETWORK
from harness.core.baselines import BaselineAccuracies
from harness.core.environment import utc_now
from harness.core.jobs import Artifact, Job, stage_files
from harness.core.measurement import MeasurementProtocol, Window
from harness.core.model_io import DEFAULT_SCORING, describe_scoring
from harness.core.rundir import RunStore
from harness.core.stats import ValidityRules, summarize
from reports.noise import busy_warning
from targets.agent.wire import MACHINE_LOAD_KEYS
from targets.base import Measurement

# Above this share of a window, the device-to-host clock mapping's error is worth a warning.
CLOCK_UNCERTAINTY_SHARE = 0.01


def job_row(run_id: str, job: Job, artifact: Artifact) -> dict:
    """The row's keys and the artifact's nominal cost: what a job's row holds even when it fails."""
    # the precision the built artifact holds (a quantizer may leave a graph in float), as planned otherwise
    return {"run_id": run_id, "job_id": job.job_id, **asdict(job), "precision": artifact.precision,
            "energy_source": "none",
            "finished_at": utc_now(),
            "variant_params": json.dumps(artifact.variant_params, sort_keys=True) if artifact.variant_params else "",
            "model_bytes": artifact.model_bytes, "params": artifact.params, "macs": artifact.macs,
            "weight_sparsity": round(artifact.weight_sparsity or 0.0, 4), "n_eval": artifact.n_eval,
            "metric": describe_scoring(artifact.scoring or DEFAULT_SCORING), "notes": "; ".join(artifact.notes)}


def expected_macs(exit_macs: dict, exit_rate: float, skip_rate: float | None) -> float | None:
    """Early exits (T-RECX): every sample pays the body (and the exit predictor, if any); those sent on to
    the head pay it; those that do not leave pay the rest of the network."""
    if any(m is None for m in exit_macs.values()):
        return None
    return (exit_macs["body"] + exit_macs.get("predictor", 0) + (1 - (skip_rate or 0.0)) * exit_macs["head"]
            + (1 - exit_rate) * exit_macs["rest"])


def measured_row(row: dict, job: Job, m: Measurement, store: RunStore, artifact: Artifact,
                 baselines: BaselineAccuracies, protocol: MeasurementProtocol | None = None) -> dict:
    summary = summarize(m.latency_ns, m.windows, job.batch_size, ValidityRules(), m.stopping_rule, protocol)
    row.update(summary)
    row.update(status="ok", accuracy=m.accuracy, n_eval=m.n_eval, warmup_iterations=m.warmup_iterations,
               peak_rss_mb=round(m.peak_rss_mb, 1), clock_offset_us=round(m.clock_offset_ns / 1e3, 1),
               clock_uncertainty_us=round(m.clock_uncertainty_ns / 1e3, 1),
               # copies to and from a GPU, timed apart from the compute in the latency columns
               h2d_ms=m.h2d_ms, d2h_ms=m.d2h_ms,
               backend_info=json.dumps(m.backend_info, sort_keys=True),
               raw_latency_file=store.save_latency(job.job_id, m.latency_ns, m.windows))
    if m.exit_rate is not None:
        row.update(exit_rate=m.exit_rate, exit_path=m.exit_path, exit_skip_rate=m.exit_skip_rate,
                   expected_macs=expected_macs(artifact.exit["macs"], m.exit_rate, m.exit_skip_rate))
        stage_format = m.backend_info.get("stage_format")  # two stages, from these files (.tflite or ONNX)
        if stage_format:
            row["model_bytes"] = sum(Path(stage_files(s)[stage_format]).stat().st_size for s in artifact.stages)
    if m.warnings:
        row["warnings"] = "; ".join(filter(None, [row.get("warnings"), *m.warnings]))
    reference = m.accuracy if job.family == "baseline" else baselines.reference(asdict(job))
    row["accuracy_delta"] = m.accuracy - reference if None not in (m.accuracy, reference) else None
    add_machine_load(row, job, m.machine_load)
    return row


def add_machine_load(row: dict, job: Job, machine_load: dict | None) -> None:
    """The machine around the job's timed windows (wire.MACHINE_LOAD_KEYS, named as their columns), and on
    a busy machine a warning that says what was seen (reports.noise holds the thresholds)."""
    if not machine_load:
        return  # an agent that did not look: the columns stay empty
    figures = {key: None if machine_load.get(key) is None else round(machine_load[key], 3)
               for key in MACHINE_LOAD_KEYS}
    row.update(figures)
    # A split job whose server agent runs on this machine too (over loopback or between network
    # namespaces: every link but the real network) sees that server's CPU time among the others'. Its tail
    # runs one request at a time on the job's threads, so it uses at most `threads` cores: that much is not
    # held against the machine, and the warning says the server is in the figure.
    own_server_cores = job.threads if job.link and job.link != NETWORK else 0
    warning = busy_warning(**figures, own_server_cores=own_server_cores)
    if warning:
        row["warnings"] = "; ".join(filter(None, [row.get("warnings"), warning]))


def add_energy(row: dict, monitor, job: Job, m: Measurement, store: RunStore) -> list[str]:
    """Energy columns from the power trace of the job's windows; a broken power rule invalidates the row
    (the reasons are returned: strict mode stops the run on them).
    A source on the device computed them there (same clock as the windows); a host-side meter's trace
    is on the host's clock, so the device's windows are mapped onto it."""
    relative = f"raw/{job.job_id}.power.npz"
    if m.device_energy is not None:
        device = m.device_energy
        (store.dir / relative).write_bytes(base64.b64decode(device.trace_npz_b64))
        columns, reasons, warnings = dict(device.columns), list(device.reasons), list(device.warnings)
        columns["energy_source"] = f"{columns['energy_source']} (on the device)"
    else:
        on_host = [Window(w.start_ns - m.clock_offset_ns, w.end_ns - m.clock_offset_ns, w.n_iterations)
                   for w in m.windows]
        columns, reasons, warnings = monitor.job_columns(on_host, job.batch_size, store.dir / relative)
        shortest_ns = min(w.end_ns - w.start_ns for w in m.windows)
        if m.clock_uncertainty_ns > CLOCK_UNCERTAINTY_SHARE * shortest_ns:
            warnings.append(f"clock mapping uncertain by {m.clock_uncertainty_ns / 1e6:.2f} ms, over "
                            f"{CLOCK_UNCERTAINTY_SHARE:.0%} of the shortest window")
    row.update(columns, power_trace_file=relative)
    if reasons:
        row["valid"] = False
        row["invalid_reasons"] = "; ".join(filter(None, [row.get("invalid_reasons"), *reasons]))
    if warnings:
        row["warnings"] = "; ".join(filter(None, [row.get("warnings"), *warnings]))
    return reasons
