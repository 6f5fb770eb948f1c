"""Does the harness add to what it measures? Its p50 against a bare `session.run` loop, same process.

For each model, rounds alternate (interleaved, so machine noise hits both alike) between
  bare:    t0 = clock(); session.run(outputs, feed); t1 = clock()     in a plain Python loop
  harness: harness.core.measurement.run_windows(*OrtBackend.runner(x), ...) as the agent runs it
and the script prints each side's median p50 and the median of the per-round ratios.

    .venv/bin/python benchmarks/harness_overhead.py [--rounds 10] [--round-s 1.0]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from harness.core.measurement import MeasurementProtocol, run_windows
from targets.backends.ort_backend import OrtBackend
from workloads.build import build_base
from workloads.spec import find_workload

clock_ns = time.monotonic_ns


def bare_loop_p50_ms(session, outputs, feed, seconds: float) -> float:
    latency = []
    end = clock_ns() + int(seconds * 1e9)
    while True:
        t0 = clock_ns()
        session.run(outputs, feed)
        t1 = clock_ns()
        latency.append(t1 - t0)
        if t1 >= end:
            break
    return float(np.percentile(latency, 50)) / 1e6


def harness_p50_ms(backend: OrtBackend, x: np.ndarray, seconds: float) -> float:
    settings = MeasurementProtocol(warmup_min_iterations=0, warmup_min_s=0.0, n_windows=1,
                                window_min_s=seconds, window_min_iterations=1)
    call, args = backend.runner(x)
    timed = run_windows(call, args, settings)
    return float(np.percentile(np.frombuffer(timed.latency_ns, dtype=np.int64), 50)) / 1e6


def measure(workload_name: str, rounds: int, round_s: float) -> dict:
    base = build_base(find_workload(workload_name))
    artifact = base.artifact("fp32", "baseline", "fp32").to_dict()
    backend = OrtBackend(threads=1, options={})
    backend.load(artifact)
    x_eval, _ = base.data.load_eval()
    x = np.ascontiguousarray(x_eval[:1])
    feed = {backend.input_name: x}
    bare_loop_p50_ms(backend.session, backend.output_names, feed, 1.0)  # warm-up, untimed
    bare, harness = [], []
    for i in range(rounds):
        # alternate which side goes first, so neither always runs on a warmer machine
        order = (("bare", "harness") if i % 2 == 0 else ("harness", "bare"))
        for side in order:
            if side == "bare":
                bare.append(bare_loop_p50_ms(backend.session, backend.output_names, feed, round_s))
            else:
                harness.append(harness_p50_ms(backend, x, round_s))
    ratios = [h / b for h, b in zip(harness, bare)]
    return {"workload": workload_name, "bare_p50_ms": statistics.median(bare),
            "harness_p50_ms": statistics.median(harness), "ratio": statistics.median(ratios),
            "ratio_min": min(ratios), "ratio_max": max(ratios)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--round-s", type=float, default=1.0)
    parser.add_argument("--workload", action="append", help="default: digits-cnn and mnist-resnet8")
    args = parser.parse_args()
    print(f"{'workload':16s} {'bare p50 ms':>12s} {'harness p50 ms':>15s} {'harness/bare':>13s} "
          f"{'(min..max over rounds)':>24s}")
    for name in args.workload or ["digits-cnn", "mnist-resnet8"]:
        r = measure(name, args.rounds, args.round_s)
        print(f"{r['workload']:16s} {r['bare_p50_ms']:12.4f} {r['harness_p50_ms']:15.4f} "
              f"{r['ratio']:13.3f} {r['ratio_min']:>11.3f}..{r['ratio_max']:.3f}")


if __name__ == "__main__":
    main()
