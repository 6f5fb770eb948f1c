"""Time to a number you can trust: the statistical stopping rule against MLPerf Tiny's fixed rule, same jobs.

Covers the full suite's jobs whose model one backend call runs (early exits and split variants are left
out: they need the agent's two-stage runner and a tail server), restricted by --workloads, --variants,
--backends and --threads. The defaults measure a subset that runs in ~10 minutes on 2 cores: the full
suite's onnxruntime jobs at 1 thread and batch 1 (8 jobs), latency only (no accuracy pass); the suite's
torch and litert jobs and its all-cores (2-thread here) jobs are not measured. Each job's
model is loaded once and measured back to back under both rules with the agent's own loop
(harness.core.measurement.run_windows) and the full suite's [protocol] (warm-up >= 2 s; fixed: 5 windows of
>= 10 s; statistical: windows of >= 1 s until the median's 99% CI is within +-1%, ceiling 20 windows / 30 s);
the order alternates between jobs, so neither rule always runs on the warmer machine. The statistics are
harness.core.stats.summarize's, as in a row.

Prints per job the p50 under each rule, their ratio, the statistical rule's windows and achieved interval,
and the wall time of each (warm-up and windows; the accuracy pass and model load are the same under both
rules and left out); then the totals and MET / MISSED against the targets: every p50 within 1% of the
fixed rule's, and the statistical rule's total wall time <= 1/3 of the fixed rule's.

    flock /tmp/edgebench-bench.lock .venv/bin/python benchmarks/stopping_rule.py [--workloads digits-cnn ...]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

from harness.app.suite import find_suite
from harness.core.measurement import FIXED, STATISTICAL, MeasurementProtocol, run_windows
from harness.core.plugins import load_ref
from harness.core.stats import summarize
from targets.backends import BACKENDS
from targets.spec import find_target
from workloads.build import build_base, build_variants
from workloads.spec import find_workload

P50_TOLERANCE = 0.01       # the statistical rule's p50 within 1% of the fixed rule's
WALL_TIME_TARGET = 1 / 3   # the statistical rule's total wall time at most a third of the fixed rule's
DEFAULT_VARIANTS = ["fp32", "int8", "fp16", "channels-50", "student-kd", "sparse-90"]
# one backend call per inference: the families run_windows times on a backend's own runner
ONE_CALL_STRATEGY = "local"
TWO_STAGE_FAMILIES = ("early_exit",)


def measure(call, args: tuple, protocol: MeasurementProtocol) -> dict:
    start = time.monotonic()
    timed = run_windows(call, args, protocol)
    wall_s = time.monotonic() - start
    latency = np.frombuffer(timed.latency_ns, dtype=np.int64)
    row = summarize(latency, timed.windows, 1, stopping_rule=timed.stopping_rule)
    return {"p50_ms": row["latency_p50_ms"], "ci_pct": row["latency_p50_ci_pct"], "rule": row["stopping_rule"],
            "windows": row["n_windows"], "wall_s": wall_s}


def jobs(workload_names: list[str], variant_names: list[str], suite: str):
    """(workload, variant name, artifact, one evaluation sample) for each job the benchmark covers."""
    for name in workload_names:
        workload = find_workload(name)
        wanted = {v.name for v in workload.variants
                  if v.name in variant_names and (v.suites is None or suite in v.suites)
                  and v.strategy == ONE_CALL_STRATEGY and v.family not in TWO_STAGE_FAMILIES}
        if not wanted:
            continue
        base = build_base(workload, lambda msg: print(f"  {msg}", flush=True))
        x = np.ascontiguousarray(base.data.load_eval()[0][:1])
        artifacts = build_variants(base, wanted, lambda msg: None)
        for variant in (v.name for v in workload.variants if v.name in wanted):
            yield name, variant, artifacts[variant], x


def verdict(met: bool) -> str:
    return "MET   " if met else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", nargs="+", default=["digits-cnn", "mnist-resnet8", "mnist-dscnn"])
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS,
                        help="variant names (those a workload has and the full suite runs)")
    parser.add_argument("--backends", nargs="+", default=["onnxruntime"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1])
    parser.add_argument("--suite", default="full", help="the suite whose [protocol] both rules use")
    args = parser.parse_args()

    suite = find_suite(args.suite)
    fixed = replace(suite.protocol, stopping=FIXED)
    statistical = replace(suite.protocol, stopping=STATISTICAL)
    options = find_target("cpu").backend_options
    print(f"suite {suite.name}: fixed = {fixed.n_windows} windows >= {fixed.window_min_s:g} s; statistical = "
          f"windows >= {statistical.statistical_window_s:g} s until the median's 99% CI <= "
          f"+-{statistical.median_ci_pct:g}% (>= {statistical.min_windows} windows, ceiling "
          f"{statistical.max_windows} windows / {statistical.max_timed_s:g} s); warm-up >= "
          f"{fixed.warmup_min_s:g} s under both", flush=True)
    header = (f"{'workload':14s} {'variant':12s} {'backend':12s} {'thr':>3s}  {'fixed p50 ms':>12s} "
              f"{'stat p50 ms':>11s} {'ratio':>6s}  {'rule':11s} {'win':>3s} {'CI +-%':>6s}  "
              f"{'fixed s':>7s} {'stat s':>6s}")
    print(header, flush=True)
    results = []
    for workload, variant, artifact, x in jobs(args.workloads, args.variants, suite.name):
        for backend_name in args.backends:
            for threads in args.threads:
                backend = load_ref(BACKENDS[backend_name])(threads, options.get(backend_name, {}))
                backend.load(artifact.to_dict())
                call, call_args = backend.runner(x)
                # alternate the order: the second rule runs on a machine the first warmed
                order = [fixed, statistical] if len(results) % 2 == 0 else [statistical, fixed]
                by_rule = {p.stopping: measure(call, call_args, p) for p in order}
                f, s = by_rule[FIXED], by_rule[STATISTICAL]
                ratio = s["p50_ms"] / f["p50_ms"]
                results.append((f, s, ratio))
                print(f"{workload:14s} {variant:12s} {backend_name:12s} {threads:>3d}  {f['p50_ms']:12.4f} "
                      f"{s['p50_ms']:11.4f} {ratio:6.3f}  {s['rule']:11s} {s['windows']:>3d} {s['ci_pct']:6.2f}  "
                      f"{f['wall_s']:7.1f} {s['wall_s']:6.1f}", flush=True)
    if not results:
        raise SystemExit("no job: check --workloads, --variants and --backends")
    fixed_s = sum(f["wall_s"] for f, _, _ in results)
    stat_s = sum(s["wall_s"] for _, s, _ in results)
    worst = max(abs(r - 1) for _, _, r in results)
    ceilings = sum(s["rule"] == "ceiling" for _, s, _ in results)
    print(f"\ntotal: fixed {fixed_s:.1f} s, statistical {stat_s:.1f} s, ratio {stat_s / fixed_s:.3f} "
          f"({fixed_s / stat_s:.1f}x faster); {ceilings} of {len(results)} jobs hit the ceiling")
    print(f"{verdict(stat_s <= WALL_TIME_TARGET * fixed_s)} statistical total <= 1/3 of fixed: "
          f"{stat_s / fixed_s:.3f}")
    print(f"{verdict(worst <= P50_TOLERANCE)} every p50 within 1% of the fixed rule's: worst {worst:.2%} "
          f"({sum(abs(r - 1) <= P50_TOLERANCE for _, _, r in results)} of {len(results)} within)")


if __name__ == "__main__":
    main()
