"""Figures for reports, embedded as PNG data URIs so that report.html opens from disk on its own."""

from __future__ import annotations

import base64
import io
import json

import matplotlib

matplotlib.use("Agg")  # no display on a build machine or in CI
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from reports.pareto import pareto_mask


def to_data_uri(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def label(row) -> str:
    """A job's name in a figure; a split job's link setting is part of it (one variant, several links)."""
    link = row.get("link")
    return f"{row['variant']} {row['backend']} t{int(row['threads'])}" + (f" @{link}" if isinstance(link, str)
                                                                        and link else "")


def tradeoff_plot(rows: pd.DataFrame, cost: str, cost_label: str, title: str,
                  by_variant: bool = False) -> str:
    """Accuracy against a cost, every job (or variant) a point, the Pareto front as a step line."""
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    points = rows.dropna(subset=[cost, "accuracy"])
    front = pareto_mask(points[cost].to_numpy(), points["accuracy"].to_numpy())
    for name, group in points.groupby("family" if by_variant else "backend"):
        ax.scatter(group[cost], group["accuracy"] * 100, label=name, s=40, alpha=0.85)
    for _, row in points.iterrows():
        ax.annotate(row["variant"] if by_variant else label(row), (row[cost], row["accuracy"] * 100),
                    fontsize=7, xytext=(4, 3), textcoords="offset points")
    on_front = points[front].sort_values(cost)
    if len(on_front):
        ax.step(on_front[cost], on_front["accuracy"] * 100, where="post", color="black", lw=1,
                ls="--", label="Pareto front")
        ax.scatter(on_front[cost], on_front["accuracy"] * 100, facecolors="none", edgecolors="black",
                   s=110, lw=1)
    ax.set_xlabel(cost_label)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return to_data_uri(fig)


def latency_distribution_plot(samples_ms: dict[str, np.ndarray], title: str) -> str:
    """One horizontal box per job (whiskers at p1/p99) over its per-iteration latencies."""
    names = list(samples_ms)
    fig, ax = plt.subplots(figsize=(5.6, 0.45 * len(names) + 1.4))
    ax.boxplot([samples_ms[n] for n in names], vert=False, whis=(1, 99), showfliers=False)
    ax.set_yticks(range(1, len(names) + 1), names, fontsize=8)
    ax.set_xlabel("latency per inference (ms), whiskers p1-p99")
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="x")
    return to_data_uri(fig)


def power_trace_plot(traces: dict[str, tuple], title: str) -> str:
    """Power against time for each job, its timed windows shaded; `traces` maps a label to
    (t_ns, power_w, windows as [[start_ns, end_ns, n]])."""
    fig, axes = plt.subplots(len(traces), 1, figsize=(5.6, 1.6 * len(traces) + 0.8), squeeze=False)
    for ax, (name, (t_ns, power_w, windows)) in zip(axes[:, 0], traces.items()):
        origin = windows[0][0]
        ax.plot((t_ns - origin) / 1e9, power_w, lw=0.6)
        for start, end, _ in windows:
            ax.axvspan((start - origin) / 1e9, (end - origin) / 1e9, color="tab:orange", alpha=0.15)
        ax.set_ylabel("W")
        ax.set_title(name, fontsize=8, loc="left")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("time since the first timed window (s); shaded: timed windows")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return to_data_uri(fig)


def exit_curve_plot(rows: pd.DataFrame, baseline: pd.Series | None, title: str) -> str:
    """Early-exit threshold sweep: accuracy (left), and exit share, expected MACs and measured mean
    latency relative to the baseline (right)."""
    rows = rows.assign(threshold=rows["variant_params"].map(lambda p: json.loads(p)["threshold"]))
    rows = rows.sort_values("threshold")
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    ax.plot(rows["threshold"], rows["accuracy"] * 100, "o-", color="black", label="accuracy")
    ax.set_xlabel("exit threshold")
    ax.set_ylabel("accuracy (%)")
    right = ax.twinx()
    right.plot(rows["threshold"], rows["exit_rate"] * 100, "s--", color="tab:green", label="exits early")
    if baseline is not None:
        right.plot(rows["threshold"], rows["expected_macs"] / baseline["macs"] * 100, "^--",
                   color="tab:blue", label="expected MACs vs baseline")
        right.plot(rows["threshold"], rows["latency_mean_ms"] / baseline["latency_mean_ms"] * 100, "v--",
                   color="tab:red", label="mean latency vs baseline")
    right.set_ylabel("% (exits, or of the baseline)")
    lines = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="lower left")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return to_data_uri(fig)
