"""What each figure shows, said under it: what is measured, over which windows, how, and which numbers are
emulated. One place, so that the single-run and the cross-run reports say the same thing the same way."""

from __future__ import annotations

import pandas as pd

FRONT = ("Ringed: the Pareto front (no other point is both cheaper and more accurate); its points are labelled "
         "where a label fits without covering another (at most 12 per front); hover any point for its job.")


def protocol_text(protocol: dict) -> str:
    """'3 timed windows of >= 1 s and >= 50 iterations each', or the statistical rule's windows."""
    if not protocol:
        return "timed windows"
    if protocol.get("stopping") == "statistical":
        return (f"timed windows of >= {protocol.get('statistical_window_s')} s and >= "
                f"{protocol.get('window_min_iterations')} iterations each, at least {protocol.get('min_windows')}, "
                f"until the median's 99% confidence interval was within +-{protocol.get('median_ci_pct')}% (at most "
                f"{protocol.get('max_windows')} windows or {protocol.get('max_timed_s')} s; each row's "
                f"stopping_rule says what ended it)")
    return (f"{protocol.get('n_windows')} timed windows of >= {protocol.get('window_min_s')} s and >= "
            f"{protocol.get('window_min_iterations')} iterations each")


def batches(rows: pd.DataFrame) -> str:
    sizes = sorted({int(b) for b in rows["batch_size"].dropna()})
    return "batch " + ", ".join(map(str, sizes)) if sizes else "its batch"


def accuracy_text(rows: pd.DataFrame) -> str:
    metrics = sorted(set(rows["metric"].dropna()) - {""}) if "metric" in rows else []
    n_eval = sorted({int(n) for n in rows["n_eval"].dropna()}) if "n_eval" in rows else []
    samples = f" on {', '.join(f'{n:,}' for n in n_eval)} evaluation samples" if n_eval else ""
    return f"accuracy ({', '.join(metrics) or 'top1'}){samples}"


def latency_caption(rows: pd.DataFrame, protocol: dict, who: str = "a job") -> str:
    return (f"Each point is {who}: {accuracy_text(rows)} against the latency p50 per inference at "
            f"{batches(rows)}, over every iteration of {protocol_text(protocol)}. {FRONT}")


def energy_sources(rows: pd.DataFrame) -> str:
    sources = sorted(set(rows["energy_source"].dropna()) - {"", "none"})
    named = [f"{s} (EMULATED: modelled power, not a measurement)" if s.startswith("emulated") else s
             for s in sources]
    return "; ".join(named) or "none"


def energy_caption(rows: pd.DataFrame, protocol: dict, who: str = "a job") -> str:
    return (f"Each point is {who}: {accuracy_text(rows)} against the energy per inference: the median over "
            f"{protocol_text(protocol)} of the window's energy (power integrated over exactly the window) "
            f"divided by its inferences. Power source: {energy_sources(rows)}. {FRONT}")


MACS_CAPTION = ("One point per variant: multiply-accumulates per inference at batch 1, counted in the ONNX "
                "graph (early exits: expected at the measured exit rate). " + FRONT)


def distribution_caption(protocol: dict, max_samples: int) -> str:
    return (f"Per-iteration latency of each job over {protocol_text(protocol)}: box p25-p75 with the median, "
            f"whiskers p1-p99 (at most {max_samples:,} samples per job, evenly strided, are drawn).")


def power_caption(rows: pd.DataFrame) -> str:
    return (f"Power against time, from {energy_sources(rows)}; shaded: the timed windows the energy per "
            f"inference is integrated over.")


EXIT_CAPTION = ("Early-exit threshold sweep: accuracy (left axis); the share of samples leaving at the exit, "
                "the expected MACs and the measured mean latency as % of the baseline on the same backend "
                "(right axis).")
