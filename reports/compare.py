"""Comparing two runs job by job: the change of each metric, whether a latency change is significant
(Mann-Whitney U on the raw samples AND a ratio threshold, as asv does), and regression flags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from harness.core.rundir import load_latency
from harness.core.schema import KEY
from reports.load import load_run
from reports.render import fmt, markdown_table, markdown_text, render_html

JOIN = [k for k in KEY if k != "target"]  # so runs of two targets compare too
MAX_SAMPLES = 20_000                      # per side; strided, so drift over the run stays visible
ACCURACY_DROP_POINTS = 1.0                # an accuracy loss above this many points is a regression


def samples_ms(run_dir: Path, relative: str) -> np.ndarray:
    latency_ns, _ = load_latency(run_dir, relative)
    step = max(1, len(latency_ns) // MAX_SAMPLES)
    return latency_ns[::step] / 1e6


def shift_p_value(a_ms: np.ndarray, b_ms: np.ndarray) -> float:
    """Mann-Whitney U, two-sided: is one sample's latency distribution shifted against the other's?"""
    return float(mannwhitneyu(a_ms, b_ms, alternative="two-sided").pvalue)


def latency_verdict(a_ms: np.ndarray, b_ms: np.ndarray, ratio_threshold: float, alpha: float
                    ) -> tuple[float, float, str]:
    """(p50 ratio b/a, p-value, verdict). A change counts only when it is both significant and larger
    than the threshold: with thousands of samples, any shift is 'significant'."""
    ratio = float(np.median(b_ms) / np.median(a_ms))
    p_value = shift_p_value(a_ms, b_ms)
    if p_value < alpha and ratio >= ratio_threshold:
        return ratio, p_value, "regression"
    if p_value < alpha and ratio <= 1 / ratio_threshold:
        return ratio, p_value, "improvement"
    return ratio, p_value, "no significant change"


def compare_runs(run_a: Path, run_b: Path, ratio_threshold: float = 1.10, alpha: float = 0.01
                 ) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Joined rows with changes and verdicts, and the jobs found in only one of the runs."""
    _, a = load_run(run_a)
    _, b = load_run(run_b)
    a, b = a[a["status"] == "ok"], b[b["status"] == "ok"]
    joined = a.merge(b, on=JOIN, suffixes=("_a", "_b"))
    out = []
    for _, row in joined.iterrows():
        ratio, p_value, verdict = latency_verdict(samples_ms(run_a, row["raw_latency_file_a"]),
                                                  samples_ms(run_b, row["raw_latency_file_b"]),
                                                  ratio_threshold, alpha)
        accuracy_change = (row["accuracy_b"] - row["accuracy_a"]) * 100
        flags = [f"latency {verdict}"] if verdict != "no significant change" else []
        if accuracy_change < -ACCURACY_DROP_POINTS:
            flags.append(f"accuracy regression ({accuracy_change:+.2f} points)")
        out.append({**{k: row[k] for k in JOIN},
                    "p50_a_ms": row["latency_p50_ms_a"], "p50_b_ms": row["latency_p50_ms_b"],
                    "p50_ratio": ratio, "p_value": p_value, "latency_verdict": verdict,
                    "p99_ratio": row["latency_p99_ms_b"] / row["latency_p99_ms_a"],
                    "throughput_ratio": row["throughput_ips_b"] / row["throughput_ips_a"],
                    "accuracy_a": row["accuracy_a"], "accuracy_b": row["accuracy_b"],
                    "accuracy_change_points": accuracy_change,
                    "peak_rss_ratio": row["peak_rss_mb_b"] / row["peak_rss_mb_a"],
                    "regression": any("regression" in f for f in flags), "flags": "; ".join(flags)})
    def keys(df: pd.DataFrame) -> set[str]:
        return {"/".join(str(r[k]) for k in JOIN) for _, r in df.iterrows()}

    return pd.DataFrame(out), sorted(keys(a) - keys(b)), sorted(keys(b) - keys(a))


COMPARE_COLUMNS = [
    ("workload", "workload", None), ("variant", "variant", None), ("backend", "backend", None),
    ("threads", "threads", None), ("batch_size", "batch", None),
    ("p50_a_ms", "p50 A ms", ".4f"), ("p50_b_ms", "p50 B ms", ".4f"), ("p50_ratio", "B/A p50", ".3f"),
    ("p_value", "p (MWU)", ".2g"), ("latency_verdict", "latency", None), ("p99_ratio", "B/A p99", ".3f"),
    ("throughput_ratio", "B/A inf/s", ".3f"), ("accuracy_change_points", "Δ acc (pts)", "+.2f"),
    ("peak_rss_ratio", "B/A RSS", ".2f"), ("flags", "flags", None),
]


def write_comparison(run_a: Path, run_b: Path, out_dir: Path | None = None, ratio_threshold: float = 1.10,
                     alpha: float = 0.01) -> tuple[tuple[Path, Path], int]:
    table, only_a, only_b = compare_runs(run_a, run_b, ratio_threshold, alpha)
    out_dir = Path(out_dir or run_b)
    out_dir.mkdir(parents=True, exist_ok=True)
    headers = [h for _, h, _ in COMPARE_COLUMNS]
    body = [[fmt(r.get(c), f) for c, _, f in COMPARE_COLUMNS] for _, r in table.iterrows()]
    n_reg = int(table["regression"].sum()) if len(table) else 0
    title = f"edgebench comparison: {Path(run_a).resolve().name} (A) vs {Path(run_b).resolve().name} (B)"
    summary = (f"{len(table)} jobs in both runs; {n_reg} regression(s). A latency change counts when "
               f"Mann-Whitney U gives p < {alpha:g} and the p50 ratio is >= {ratio_threshold:g} (or "
               f"<= {1 / ratio_threshold:.3f}); an accuracy loss of more than {ACCURACY_DROP_POINTS:g} "
               f"point is a regression.")
    extra = [("only in A", ", ".join(only_a) or "none"), ("only in B", ", ".join(only_b) or "none")]
    html_path = out_dir / "compare.html"
    html_path.write_text(render_html("compare.html.j2", title=title, summary=summary, headers=headers,
                                     body=body, extra=extra))
    md_path = out_dir / "compare.md"
    # the runs' directory names and the jobs found in one run only (workload/variant/...) are the user's text
    md_path.write_text("\n".join([f"# {markdown_text(title)}", "", markdown_text(summary), "",
                                  markdown_table(headers, body), ""]
                                 + [f"- **{markdown_text(k)}**: {markdown_text(v)}" for k, v in extra]) + "\n")
    return (html_path, md_path), n_reg
