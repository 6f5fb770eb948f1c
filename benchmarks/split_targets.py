"""Split computing, measured by edgebench itself: the split suite (local, offload, split and BottleFit
variants over 1 / 10 / 100 Mbit/s links, device at a quarter of a core) on the cpu target, then each
target of the split-computing issue beside what was measured, MET or MISSED:

  1. transfer      measured transfer time within 10% of 8 * payload_bytes / measured rate + measured RTT,
                   at 1, 10 and 100 Mbit/s (the job with the largest payload on each link)
  2. fp32 split    accuracy equal to the unsplit model's, exactly, on every workload
  3. BottleFit     payload >= 77.1% smaller than the raw input (the uint8 image and the fp32 tensor, both
                   printed) at <= 0.6 points accuracy loss
  4. crossover     the bandwidth range in which split beats both local and offload, and by how much
                   (BottleFit reports up to 89% less latency than local and 55% less than offload)

Needs root (network namespaces, tbf, a cgroup):

    sudo .venv/bin/python benchmarks/split_targets.py                  # runs the split suite first
    .venv/bin/python benchmarks/split_targets.py --run runs/<split run> # or reads a finished run
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

from harness.app.progress import QuietReporter
from harness.app.runner import Bench, BenchRequest
from reports.crossover import crossover_table, strategy_of
from reports.load import load_run

TRANSFER_TOLERANCE = 0.10
BOTTLEFIT_COMPRESSION = 0.771
BOTTLEFIT_MAX_LOSS = 0.006


def verdict(ok: bool) -> str:
    return "MET   " if ok else "MISSED"


def transfer_target(rows: pd.DataFrame) -> bool:
    print("1. transfer time against 8 * payload / measured rate + measured RTT (largest payload per link)")
    linked = rows[(rows["link"].fillna("") != "") & rows["transfer_ms"].notna()]
    met = True
    for rate in (1, 10, 100):
        on_link = linked[linked["link_rate_mbit"] == rate]
        if on_link.empty:
            print(f"   {rate:>5} Mbit/s: no job ran on this link                                   MISSED")
            met = False
            continue
        job = on_link.loc[on_link["payload_bytes"].idxmax()]
        model_ms = 8 * job["payload_bytes"] / (job["link_measured_mbit"] * 1e3) + job["link_rtt_ms"]
        error = job["transfer_ms"] / model_ms - 1
        ok = abs(error) <= TRANSFER_TOLERANCE
        met &= ok
        print(f"   {rate:>5} Mbit/s  {job['variant']:<20} {job['payload_bytes']:>8.0f} B  measured "
              f"{job['link_measured_mbit']:7.2f} Mbit/s, RTT {job['link_rtt_ms']:6.2f} ms: transfer "
              f"{job['transfer_ms']:8.2f} ms, model {model_ms:8.2f} ms ({error:+.1%})  {verdict(ok)}")
    return met


def fp32_identity_target(rows: pd.DataFrame) -> bool:
    print("2. fp32 split accuracy against the unsplit model's")
    met = True
    split = rows[(strategy_of(rows) == "split") & (rows["payload_dtype"] == "fp32")]
    for workload, group in split.groupby("workload"):
        local = rows[(rows["workload"] == workload) & (rows["family"] == "baseline")]
        reference = local["accuracy"].iloc[0] if not local.empty else math.nan
        for _, job in group.iterrows():
            if "accuracy measured through the same head and tail" in str(job["warnings"]):
                print(f"   {workload} {job['variant']:<20} @ {job['link']:<12} (accuracy not measured again "
                      f"over this link: the fastest link's)")
                continue
            ok = job["accuracy"] == reference
            met &= ok
            print(f"   {workload} {job['variant']:<20} @ {job['link']:<12} {job['accuracy']:.4f} vs unsplit "
                  f"{reference:.4f} (the whole evaluation set, through head, link and tail)  {verdict(ok)}")
    if split.empty:
        print("   no fp32 split job ran                                                           MISSED")
    return met and not split.empty


def bottlefit_target(rows: pd.DataFrame, info: dict) -> bool:
    print("3. BottleFit: payload against the raw input, and accuracy loss")
    met = True
    bottleneck = rows[strategy_of(rows) == "bottleneck"]
    for (workload, variant), group in bottleneck.groupby(["workload", "variant"]):
        job = group.iloc[0]
        analysis = info.get("split_analysis", {}).get(workload, {})
        raw_uint8, raw_fp32 = analysis.get("input_bytes_uint8"), job["input_bytes"]
        local = rows[(rows["workload"] == workload) & (rows["family"] == "baseline")]
        loss = local["accuracy"].iloc[0] - job["accuracy"]
        per_sample = job["payload_bytes"] / job["batch_size"]
        smaller_uint8 = 1 - per_sample / raw_uint8 if raw_uint8 else math.nan
        smaller_fp32 = 1 - per_sample / raw_fp32
        ok = smaller_uint8 >= BOTTLEFIT_COMPRESSION and loss <= BOTTLEFIT_MAX_LOSS
        met &= ok
        print(f"   {workload} {variant}: payload {per_sample:.0f} B ({job['payload_dtype']}); raw input "
              f"{raw_uint8} B as a uint8 image ({smaller_uint8:.1%} smaller), {raw_fp32:.0f} B as fp32 "
              f"({smaller_fp32:.1%} smaller); accuracy {job['accuracy']:.4f} vs {local['accuracy'].iloc[0]:.4f} "
              f"({-loss * 100:+.2f} points)  {verdict(ok)}")
    if bottleneck.empty:
        print("   no bottleneck job ran                                                           MISSED")
    return met and not bottleneck.empty


def crossover_target(rows: pd.DataFrame) -> bool:
    print("4. where split beats both local and offload (device at its emulated speed)")
    contenders = rows[strategy_of(rows).isin(["local", "offload", "split", "bottleneck"])]
    table = crossover_table(contenders, by="strategy")
    met = False
    for _, line in table.iterrows():
        if pd.isna(line["from_mbit"]):
            print(f"   {line['strategy']:<11} never fastest on the measured links")
            continue
        wins = line["strategy"] in ("split", "bottleneck")
        met |= wins
        against = [f"{line[f'vs_{other}_pct']:.0f}% less latency than {other} at "
                   f"{line[f'vs_{other}_at_mbit']:.1f} Mbit/s" for other in ("local", "offload")
                   if not pd.isna(line[f"vs_{other}_pct"])]
        print(f"   {line['strategy']:<11} fastest from {line['from_mbit']:.2f} to {line['to_mbit']:.2f} Mbit/s "
              f"(measured; {line['variant']}): {', '.join(against)}  (device quota {line['device_cpu_quota']} "
              f"cores, emulated)")
    print(f"   split or bottleneck fastest somewhere  {verdict(met)}")
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="a finished split-suite run to read instead of running the suite")
    parser.add_argument("--runs-dir", default="runs")
    args = parser.parse_args()
    run_dir = Path(args.run) if args.run else Bench(QuietReporter()).start(
        BenchRequest(target="cpu", suite="split"), Path(args.runs_dir)).dir
    info, rows = load_run(run_dir)
    rows = rows[rows["status"] == "ok"]
    print(f"run {run_dir}")
    results = [transfer_target(rows), fp32_identity_target(rows), bottlefit_target(rows, info),
               crossover_target(rows)]
    print(f"{sum(results)} of {len(results)} targets met")


if __name__ == "__main__":
    main()
