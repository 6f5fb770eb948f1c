"""The Jetson target's GPU backends on an NVIDIA GPU: torch CUDA and TensorRT fp32 / fp16.

Needs an NVIDIA GPU, torch with CUDA and TensorRT's Python bindings; elsewhere it names what is missing
and exits with status 2, measuring nothing. It has not yet run on a GPU: no GPU was lent to the sessions
that wrote it, so its first run on one is its test.

1. The GPU, its driver (nvidia-smi), CUDA, torch and TensorRT versions.
2. For each TensorRT precision: `edgebench bench` on a local GPU target (backends torch with
   device = "cuda", and tensorrt) over the reference workloads, twice. The first run builds TensorRT
   engines; the second must find every one in the engine cache (backend_info engine_built_s empty).
   Printed per row: p50 and the H2D / D2H copy columns.
3. edgebench's TensorRT p50 against a bare execute_async_v3 loop on the same engine and buffers
   (benchmarks/harness_overhead.py), target ratio <= 1.03.

    .venv/bin/python benchmarks/gpu_path.py [--workload NAME ...] [--rounds 10] [--runs-dir runs/gpu]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PRECISIONS = ("fp32", "fp16")
RATIO_TARGET = 1.03


def missing() -> list[str]:
    """What this machine lacks for the GPU path, in words; empty when it has it all."""
    lacks = []
    if shutil.which("nvidia-smi") is None:
        lacks.append("nvidia-smi (an NVIDIA driver)")
    try:
        import torch
        if not torch.cuda.is_available():
            lacks.append(f"a CUDA GPU that torch sees (torch {torch.__version__}, built for CUDA "
                         f"{torch.version.cuda})")
    except ImportError:
        lacks.append("torch")
    if importlib.util.find_spec("tensorrt") is None:
        lacks.append("TensorRT's Python bindings (the tensorrt package)")
    return lacks


def gpu_facts() -> dict:
    import tensorrt
    import torch

    name, driver = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                                  capture_output=True, text=True, check=True).stdout.splitlines()[0].split(", ")
    return {"gpu": name, "driver": driver, "cuda": torch.version.cuda, "torch": torch.__version__,
            "tensorrt": tensorrt.__version__}


def target_file(folder: Path, precision: str) -> Path:
    path = folder / f"gpu-{precision}.toml"
    path.write_text(f"""[target]
name = "gpu-{precision}"
adapter = "cpu"
description = "this machine's NVIDIA GPU: torch CUDA and TensorRT {precision}"
backends = ["torch", "tensorrt"]

[backends.torch]
device = "cuda"

[backends.tensorrt]
precision = "{precision}"
""")
    return path


def bench(target: Path, workloads: list[str], runs_dir: Path) -> list[dict]:
    """One `edgebench bench` run; its rows."""
    from harness.app.cli import main

    def finished() -> set:
        return {p for p in runs_dir.glob("*/results.csv") if not p.parent.is_symlink()}  # not runs/latest

    before = finished() if runs_dir.exists() else set()
    argv = ["bench", "--target", str(target), "--runs-dir", str(runs_dir), "--quiet", "--stopping", "statistical",
            "--backend", "torch", "--backend", "tensorrt"]  # the suite's other backends are not this target's
    for name in workloads:
        argv += ["--workload", name]
    code = main(argv)
    new = finished() - before
    if not new:
        raise SystemExit(f"gpu_path: edgebench bench exited with {code} before it made a run directory")
    (results,) = new
    if code != 0:
        print(f"edgebench bench exited with {code}; its rows so far are in {results.parent}")
    return list(csv.DictReader(open(results)))


def engine_built_s(row: dict):
    return json.loads(row["backend_info"] or "{}").get("engine_built_s")


def ms(cell: str) -> str:
    return f"{float(cell):.4f}" if cell else ""


def print_rows(label: str, rows: list[dict]) -> None:
    print(f"\n{label}")
    print(f"{'workload':16s} {'variant':14s} {'backend':9s} {'status':8s} {'p50 ms':>9s} {'H2D ms':>8s} "
          f"{'D2H ms':>8s} {'engine built s':>15s}")
    for r in rows:
        built = engine_built_s(r) if r["backend"] == "tensorrt" else None
        print(f"{r['workload']:16s} {r['variant']:14s} {r['backend']:9s} {r['status']:8s} "
              f"{ms(r['latency_p50_ms']):>9s} {ms(r['h2d_ms']):>8s} {ms(r['d2h_ms']):>8s} "
              f"{'' if built is None else f'{built:.1f}':>15s}  {r['reason'][:60] if r['status'] != 'ok' else ''}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", action="append", help="default: mnist-resnet8, mnist-dscnn, digits-cnn")
    parser.add_argument("--rounds", type=int, default=10, help="bare-loop comparison rounds (default 10)")
    parser.add_argument("--runs-dir", default="runs/gpu")
    args = parser.parse_args()
    lacks = missing()
    if lacks:
        print("gpu_path: this machine lacks " + "; ".join(lacks) + ". Nothing was measured.", file=sys.stderr)
        return 2
    print("facts:", gpu_facts())
    workloads = args.workload or ["mnist-resnet8", "mnist-dscnn", "digits-cnn"]
    runs_dir = Path(args.runs_dir)
    verdicts = []
    with tempfile.TemporaryDirectory() as tmp:
        for precision in PRECISIONS:
            target = target_file(Path(tmp), precision)
            first, second = bench(target, workloads, runs_dir), bench(target, workloads, runs_dir)
            print_rows(f"tensorrt {precision}, first run (engines built)", first)
            print_rows(f"tensorrt {precision}, second run (engines from the cache)", second)
            trt_ok = [r for r in second if r["backend"] == "tensorrt" and r["status"] == "ok"]
            hits = sum(engine_built_s(r) is None for r in trt_ok)
            if not trt_ok:
                verdicts.append(f"NOT RUN: {precision}: no TensorRT job ran ok (see the skip reasons above)")
                continue
            verdicts.append(f"{'MET' if hits == len(trt_ok) else 'MISSED'}: {precision} engine-cache hits on "
                            f"the second run: {hits} of {len(trt_ok)} TensorRT jobs")
    from harness_overhead import measure  # beside this script

    for precision in PRECISIONS:
        r = measure(workloads[0], "tensorrt", {"precision": precision}, args.rounds, 1.0)
        verdicts.append(f"{'MET' if r['ratio'] <= RATIO_TARGET else 'MISSED'}: {r['workload']} tensorrt {precision}"
                        f" p50 edgebench {r['harness_p50_ms']:.4f} ms / bare loop {r['bare_p50_ms']:.4f} ms = "
                        f"{r['ratio']:.3f} (rounds {r['ratio_min']:.3f}..{r['ratio_max']:.3f}; target <= "
                        f"{RATIO_TARGET})")
    print("\n" + "\n".join(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
