"""How long the reports over many rows take: `edgebench history` and the cross-run report over 1,000,
10,000 and 100,000 result rows (1,000 jobs in each of 1, 10 and 100 runs). The runs are SYNTHETIC (made up
by tests/helpers.synthetic_run, then copied with a few jobs slowed down), so only the times mean anything.

    .venv/bin/python benchmarks/report_scaling.py [--sizes 1000,10000,100000] [--repeat 3]

Prints, per size, the median wall time of each report over --repeat runs. Target (issue #13): <= 10 s at
100,000 rows.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers import synthetic_run  # noqa: E402

from reports.cross_report import write_cross_report  # noqa: E402
from reports.history_report import write_history  # noqa: E402

# a sweep's shape: a few workloads, a couple of dozen variants, two backends, five batch sizes
JOBS_PER_RUN = 1000
WORKLOADS = [f"w{i}" for i in range(4)]
VARIANTS = ["fp32"] + [f"v{i}" for i in range(24)]
BACKENDS = ["onnxruntime", "torch"]
BATCH_SIZES = [1, 2, 4, 8, 16]
SLOWED_EVERY = 97  # job n is 20% slower from run 1 + n % 97 on: about ten steps per run for history to test


def template_jobs() -> list[dict]:
    jobs = []
    for workload in WORKLOADS:
        for backend in BACKENDS:
            for batch in BATCH_SIZES:
                for i, variant in enumerate(VARIANTS):
                    jobs.append(dict(workload=workload, variant=variant, backend=backend, batch_size=batch,
                                     family="baseline" if variant == "fp32" else "quantize", precision="fp32",
                                     p50_ms=(0.2 + 0.01 * i) * batch ** 0.7, accuracy=0.98 - 0.001 * i,
                                     energy_mj=(1.0 + 0.02 * i) * batch ** 0.7))
    assert len(jobs) == JOBS_PER_RUN
    return jobs


def copy_run(template: Path, target: Path, index: int) -> Path:
    """The template run under a new id and start time, raw samples hard-linked, some jobs slowed."""
    (target / "raw").mkdir(parents=True)
    for raw in (template / "raw").iterdir():
        os.link(raw, target / "raw" / raw.name)
    info = json.loads((template / "run.json").read_text())
    info.update(run_id=target.name, started_at=f"2026-01-01T00:{index // 60:02d}:{index % 60:02d}+00:00")
    (target / "run.json").write_text(json.dumps(info))
    with open(template / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for n, row in enumerate(rows):
        row["run_id"] = target.name
        if index > n % SLOWED_EVERY:
            row["latency_p50_ms"] = str(float(row["latency_p50_ms"]) * 1.2)
    with open(target / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return target


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    root = Path(tempfile.mkdtemp(prefix="edgebench-report-scaling-"))
    try:
        template = synthetic_run(root / "template" / "t", "board", template_jobs(), n_samples=300)
        runs = [copy_run(template, root / "runs" / f"run{i:03d}", i) for i in range(max(sizes) // JOBS_PER_RUN)]
        print(f"SYNTHETIC runs of {JOBS_PER_RUN} jobs; median of {args.repeat} per cell (seconds)")
        print(f"{'rows':>8} {'runs':>5} {'history':>9} {'cross report':>13}")
        for size in sizes:
            chosen = runs[:size // JOBS_PER_RUN]
            history = [timed(lambda: write_history(chosen, "latency_p50_ms", root / "out-h"))  # noqa: B023
                       for _ in range(args.repeat)]
            cross = [timed(lambda: write_cross_report(chosen, root / "out-c")) for _ in range(args.repeat)]  # noqa: B023
            print(f"{size:>8,} {len(chosen):>5} {statistics.median(history):>9.2f} {statistics.median(cross):>13.2f}",
                  flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
