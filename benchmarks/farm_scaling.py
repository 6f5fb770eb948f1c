"""Wall time of one job list on a farm of 1, 2 and 3 loopback boards.

Starts the test suite's lab (tests/farm_lab.py: a real labgrid-coordinator and labgrid-exporter on
127.0.0.1, one sshd "board" per place) and runs the same edgebench job list (the tiny test workload at six
batch sizes, 3 windows of >= 0.5 s each) with `boards = 1`, `2` and `3`, printing each run's wall time from
the command to its report. The boards are this machine's cores: past its core count they share them, so
the speed-up says how much the farm's fan-out and its labgrid / SSH overhead cost, not what separate
boards would gain (each of those runs its job alone: there the jobs' time divides by the boards).

    .venv/bin/python benchmarks/farm_scaling.py
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from farm_lab import missing, start_lab  # noqa: E402  (the farm tests' lab)
from helpers import TINY_PROTOCOL, tiny_workload_toml, write  # noqa: E402

from harness.app.cli import main as edgebench  # noqa: E402

BATCHES = [1, 2, 4, 8, 16, 32]


def suite(root: Path) -> Path:
    workload = write(root / "tiny.toml", tiny_workload_toml())
    protocol = TINY_PROTOCOL.replace("n_windows = 2", "n_windows = 3").replace("window_min_s = 0.05",
                                                                               "window_min_s = 0.5")
    return write(root / "suite.toml", f"""
    [suite]
    name = "scaling"
    workloads = ["{workload}"]
    {protocol}
    [matrix]
    backends = ["onnxruntime"]
    threads = [1]
    batch_sizes = {BATCHES}
    """)


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    problem = missing()
    if problem:
        sys.exit(f"farm_scaling: {problem}")
    with tempfile.TemporaryDirectory(prefix="edgebench-farm-") as tmp:
        root = Path(tmp)
        os.environ.setdefault("EDGEBENCH_CACHE", str(root / "cache"))
        lab = start_lab(root / "lab", 3)
        try:
            jobs = suite(root)
            # the model is trained and the agent shipped once, outside the timings
            warm = write(root / "warm.toml", lab.target_toml(name="warm", boards=3))
            run(warm, jobs, root / "warm")
            results = []
            for boards in (1, 2, 3):
                target = write(root / f"farm{boards}.toml", lab.target_toml(name=f"farm{boards}", boards=boards))
                results.append((boards, *run(target, jobs, root / f"runs{boards}")))
        finally:
            lab.stop()
    print(f"{len(BATCHES)} jobs (tiny-digits fp32 onnxruntime, batch {BATCHES[0]}..{BATCHES[-1]}, 3 windows >= 0.5 s), "
          f"loopback boards on {os.cpu_count()} cores")
    print(f"{'boards':>6}  {'wall s':>7}  {'speed-up':>8}  jobs per board")
    for boards, wall_s, per_board in results:
        print(f"{boards:>6}  {wall_s:7.1f}  {results[0][1] / wall_s:7.2f}x  {per_board}")


def run(target: Path, jobs: Path, runs: Path) -> tuple[float, str]:
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = edgebench(["bench", "--target", str(target), "--suite", str(jobs), "--runs-dir", str(runs),
                          "--quiet"])
    wall_s = time.perf_counter() - started
    if code != 0:
        sys.exit(f"farm_scaling: the run on {target.name} exited {code}")
    import csv

    run_dir = next(p for p in runs.iterdir() if p.is_dir() and not p.is_symlink())
    with open(run_dir / "results.csv", newline="") as fh:
        boards = [r["board"].split("/")[0] for r in csv.DictReader(fh)]
    return wall_s, ", ".join(f"{b}: {boards.count(b)}" for b in sorted(set(boards)))


if __name__ == "__main__":
    main()
