"""Helpers the tests share: a tiny workload that trains in seconds, a protocol with millisecond windows,
and a file writer. Fixtures are in conftest.py; plain functions are here, imported by name."""

from __future__ import annotations

import textwrap
from pathlib import Path

TINY_PROTOCOL = """
[protocol]
warmup_min_iterations = 3
warmup_min_s = 0.01
n_windows = 2
window_min_s = 0.05
window_min_iterations = 20
"""


def tiny_suite_toml(backends, batch_sizes=(1,), workloads=("digits-cnn",), name: str = "tiny") -> str:
    """A suite with millisecond windows, one thread; `workloads` is what `--model` replaces."""
    def toml_list(items) -> str:
        return "[" + ", ".join(f'"{i}"' if isinstance(i, str) else str(i) for i in items) + "]"

    return f"""
    [suite]
    name = "{name}"
    workloads = {toml_list(workloads)}
    {TINY_PROTOCOL}
    [matrix]
    backends = {toml_list(backends)}
    threads = [1]
    batch_sizes = {toml_list(batch_sizes)}
    """


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def tiny_workload_toml(name: str = "tiny-digits", epochs: int = 4, width: int = 8) -> str:
    return f"""
    [workload]
    name = "{name}"
    [dataset]
    name = "digits"
    seed = 0
    [model]
    arch = "small_cnn"
    [model.params]
    width = {width}
    [training]
    epochs = {epochs}
    batch_size = 64
    learning_rate = 0.01
    [[variants]]
    name = "fp32"
    family = "baseline"
    """


def user_workload_toml(user_model: dict, variants: str) -> str:
    """A workload file for the conftest `user_model` (its ONNX file and .npz), fp32 baseline first, then
    `variants` ([[variants]] tables)."""
    return textwrap.dedent(f"""
    [workload]
    name = "user"
    [dataset]
    name = "npz"
    path = "{user_model['data']}"
    [model]
    onnx = "{user_model['model']}"
    [[variants]]
    name = "fp32"
    family = "baseline"
    """) + textwrap.dedent(variants)


TESTS_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = TESTS_DIR.parent
FIXTURES = TESTS_DIR / "fixtures"


def fake_run(path: Path, p50_ms: float, accuracy: float, seed: int) -> Path:
    """A run directory holding one job whose samples are drawn around `p50_ms`."""
    import numpy as np

    from harness.core.measurement import Window
    from harness.core.rundir import RunStore
    from harness.core.schema import COLUMNS
    from harness.core.stats import summarize

    store = RunStore.create(path.parent, path.name, {"run_id": path.name})
    rng = np.random.default_rng(seed)
    latency_ns = (rng.normal(p50_ms, p50_ms * 0.05, 3000) * 1e6).astype(np.int64)
    windows = [Window(0, 10**10, 1000)] * 3
    row = {c: "" for c in COLUMNS}
    row.update(summarize(latency_ns, windows, 1))
    row.update(run_id=path.name, job_id="w__fp32__onnxruntime__t1__b1", status="ok", workload="w",
               variant="fp32", target="cpu", backend="onnxruntime", precision="fp32", threads=1,
               batch_size=1, family="baseline", accuracy=accuracy, peak_rss_mb=100.0,
               raw_latency_file=store.save_latency("w__fp32__onnxruntime__t1__b1", latency_ns, windows))
    store.append(row)
    return path


def synthetic_run(path: Path, target: str, jobs: list[dict], seed: int = 0, n_samples: int = 300,
                  info: dict | None = None) -> Path:
    """A run directory of ok jobs made up for report tests and benchmarks (not a measurement): each job a
    dict with workload, variant, family, precision, backend, p50_ms and accuracy (energy_mj, threads,
    batch_size optional); its samples are drawn around p50_ms, so the row's p50 is theirs."""
    import numpy as np

    from harness.core.measurement import Window
    from harness.core.rundir import RunStore
    from harness.core.schema import COLUMNS
    from harness.core.stats import summarize

    store = RunStore.create(path.parent, path.name, {
        "run_id": path.name, "config": {"target": {"name": target}, "suite": {"name": "synthetic"}},
        "measurement_protocol": {"n_windows": 3, "window_min_s": 1.0, "window_min_iterations": 50},
        **(info or {})})
    rng = np.random.default_rng(seed)
    windows = [Window(0, 10**9, n_samples // 3)] * 3
    # as a real run writes it: each variant's accuracy against the fp32 of its workload and backend
    fp32 = {(j["workload"], j["backend"]): j["accuracy"] for j in jobs if j["family"] == "baseline"}
    for job in jobs:
        threads, batch = job.get("threads", 1), job.get("batch_size", 1)
        job_id = f"{job['workload']}__{job['variant']}__{job['backend']}__t{threads}__b{batch}"
        latency_ns = (rng.normal(job["p50_ms"], job["p50_ms"] * 0.02, n_samples) * 1e6).astype(np.int64)
        row = {c: "" for c in COLUMNS}
        row.update(summarize(latency_ns, windows, batch))
        row.update(run_id=path.name, job_id=job_id, status="ok", target=target, threads=threads,
                   batch_size=batch, strategy="local", metric="top1", n_eval=1000, peak_rss_mb=100.0,
                   raw_latency_file=store.save_latency(job_id, latency_ns, windows),
                   accuracy_delta=job["accuracy"] - fp32.get((job["workload"], job["backend"]), job["accuracy"]),
                   **{k: job[k] for k in ("workload", "variant", "family", "precision", "backend", "accuracy")})
        if job.get("energy_mj") is not None:
            row.update(energy_per_inference_mj=job["energy_mj"], energy_source=job.get("energy_source", "rapl"))
        else:
            row.update(energy_source="none")
        store.append(row)
    store.close()
    return path
