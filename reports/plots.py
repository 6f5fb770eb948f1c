"""Figures of a run's results, each a Figure with a caption: accuracy against a cost with the Pareto
fronts (seaborn: colour and marker by a column), latency distributions, power traces and early-exit sweeps.
Only the points on a front are labelled, and labels are moved until none overlaps another; every point
names its job in a tooltip."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from adjustText import adjust_text

from reports.figure import MAX_SVG_POINTS, Figure, finish, log_scale, plain, spans_decades, to_data_uri
from reports.pareto import pareto_members

POINTS_GID = "points"
MAX_AVOIDED_POINTS = 300
MAX_LABELS = 12         # labelled points per front; the rest of a long front is in the tooltips and tables
MAX_PLOT_LABELS = 36    # per plot: adjustText's work grows with the labels, and a crowd of labels is unread
MAX_LEGEND_ENTRIES = 16  # past this many colours a legend hides the plot: the tooltips name each point
MAX_ANNOTATED_CELLS = 400
MAX_HEATMAP_COLUMNS = 24


def label(row) -> str:
    """A job's name in a figure; a split job's link setting is part of it (one variant, several links)."""
    link = row.get("link")
    return f"{row['variant']} {row['backend']} t{int(row['threads'])}" + (f" @{link}" if isinstance(link, str)
                                                                        and link else "")


def palette_for(values) -> dict:
    """One colour per value, in first-seen order, the same in every figure of a report."""
    names = list(dict.fromkeys(values))
    return dict(zip(names, sns.color_palette("tab10" if len(names) <= 10 else "husl", len(names))))


def draw_tradeoff(ax, points: pd.DataFrame, cost: str, hue: str, front_by: str | None, on_front: np.ndarray,
                  palette: dict, point_label) -> list:
    """Accuracy (%) against `cost` for `points` (no NaN in either; index 0..n-1): colour by `hue`, marker by
    variant family, each `front_by` group's Pareto front (`on_front`: pareto_members) as a step line, its
    points ringed and labelled by `point_label(row)`. Returns the labels left on the axes (none overlapping)."""
    data = points.assign(accuracy_pct=points["accuracy"] * 100)
    sns.scatterplot(data=data, x=cost, y="accuracy_pct", hue=hue, style="family", palette=palette, s=55,
                    alpha=0.9, ax=ax, legend="brief")
    ax.collections[-1].set_gid(POINTS_GID)
    groups = data[on_front].groupby(front_by, sort=False) if front_by else [(None, data[on_front])]
    for name, front in groups:
        front = front.sort_values(cost)
        ax.step(front[cost], front["accuracy_pct"], where="post", lw=1, ls="--",
                color=palette.get(name, "black") if name is not None else "black")
    front = data[on_front]
    ax.scatter(front[cost], front["accuracy_pct"], facecolors="none", edgecolors="black", s=120, lw=0.8)
    labelled = labels_to_draw(front, cost, front_by)
    texts = [ax.text(r[cost], r["accuracy_pct"], plain(point_label(r)), fontsize=7)
             for _, r in labelled.iterrows()]
    if spans_decades(data[cost]):
        log_scale(ax)
    if texts:
        # labels keep off every point where there are few; off the labelled points only where there are many
        # (adjustText's cost grows with the points it avoids)
        avoid = data if len(data) <= MAX_AVOIDED_POINTS else front
        _, arrows = adjust_text(texts, x=avoid[cost].to_numpy(), y=avoid["accuracy_pct"].to_numpy(), ax=ax,
                                arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.5}, time_lim=0.5)
        return drop_overlapping(ax, texts, arrows)
    return texts


def labels_to_draw(front: pd.DataFrame, cost: str, by: str | None) -> pd.DataFrame:
    """The front points to label: all of each front's, or MAX_LABELS of a longer one, evenly along it; with
    many fronts fewer each, so that one plot never holds more than MAX_PLOT_LABELS (none past that many
    fronts: the tooltips and the front table name them)."""
    groups = list(front.groupby(by, sort=False)) if by else [(None, front)]
    per_front = min(MAX_LABELS, MAX_PLOT_LABELS // max(1, len(groups)))
    picked = []
    for _, group in groups:
        group = group.sort_values(cost)
        if len(group) > per_front:
            group = group.iloc[np.unique(np.linspace(0, len(group) - 1, per_front).round().astype(int))] \
                if per_front else group.iloc[:0]
        picked.append(group)
    return pd.concat(picked) if picked else front


def drop_overlapping(ax, texts: list, arrows: list) -> list:
    """adjustText moves labels apart but does not promise it: a label still touching a kept one is removed
    with its leader line (its point keeps its tooltip)."""
    renderer = ax.figure.canvas.get_renderer()
    kept, boxes = [], []
    for text in texts:
        box = text.get_window_extent(renderer)
        if any(box.overlaps(other) for other in boxes):
            for arrow in arrows:
                if getattr(arrow, "arrow_patch", arrow).patchA is text:
                    arrow.remove()
            text.remove()
            continue
        kept.append(text)
        boxes.append(box)
    return kept


def tradeoff_plot(rows: pd.DataFrame, cost: str, cost_label: str, title: str, caption: str, hue: str,
                  front_by: str | None = None, point_label=label, describe=None) -> Figure:
    """Accuracy against a cost (see draw_tradeoff); every point's tooltip is `describe(row)` (its job)."""
    points = rows.dropna(subset=[cost, "accuracy"]).reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    on_front = pareto_members(points, cost, front_by)
    draw_tradeoff(ax, points, cost, hue, front_by, on_front, palette_for(points[hue]), point_label)
    ax.set_xlabel(cost_label)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(plain(title), fontsize=10)
    ax.grid(alpha=0.3, which="both")
    if points[hue].nunique() + points["family"].nunique() > MAX_LEGEND_ENTRIES:
        ax.get_legend().remove()
    else:
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), fontsize=7, title_fontsize=7, frameon=False)
    if len(points) > MAX_SVG_POINTS:  # a PNG: no tooltips to write
        return finish(fig, title, caption, n_points=len(points))
    describe = describe or point_label
    tooltips = [f"{describe(r)}: {cost_label} {r[cost]:.4g}, accuracy {r['accuracy'] * 100:.2f} %"
                + (" (on the Pareto front)" if on_front[i] else "") for i, r in points.iterrows()]
    return finish(fig, title, caption, {POINTS_GID: tooltips})


def latency_distribution_plot(samples_ms: pd.DataFrame, title: str, caption: str, hue: str | None = None
                              ) -> Figure:
    """One horizontal box per job (`job` column; whiskers at p1/p99, no fliers) over its per-iteration
    latencies (`latency_ms`), coloured by `hue` where given."""
    n_jobs = samples_ms["job"].nunique()
    fig, ax = plt.subplots(figsize=(6.4, 0.32 * n_jobs + 1.4))
    sns.boxplot(data=samples_ms, x="latency_ms", y="job", hue=hue, dodge=False, whis=(1, 99), showfliers=False, ax=ax,
                palette=palette_for(samples_ms[hue]) if hue else None, linewidth=0.8)
    if spans_decades(samples_ms["latency_ms"]):
        log_scale(ax)
    ax.set_xlabel("latency per inference (ms); box: p25-p75, whiskers: p1-p99")
    ax.set_ylabel("")
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title(plain(title), fontsize=10)
    ax.grid(alpha=0.3, axis="x", which="both")
    if hue:
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), fontsize=7, frameon=False)
    return finish(fig, title, caption)


def power_trace_plot(traces: dict[str, tuple], title: str, caption: str) -> Figure:
    """Power against time for each job, its timed windows shaded; `traces` maps a label to
    (t_ns, power_w, windows as [[start_ns, end_ns, n]])."""
    fig, axes = plt.subplots(len(traces), 1, figsize=(5.6, 1.6 * len(traces) + 0.8), squeeze=False)
    for ax, (name, (t_ns, power_w, windows)) in zip(axes[:, 0], traces.items()):
        origin = windows[0][0]
        ax.plot((t_ns - origin) / 1e9, power_w, lw=0.6)
        for start, end, _ in windows:
            ax.axvspan((start - origin) / 1e9, (end - origin) / 1e9, color="tab:orange", alpha=0.15)
        ax.set_ylabel("W")
        ax.set_title(plain(name), fontsize=8, loc="left")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("time since the first timed window (s); shaded: timed windows")
    fig.suptitle(plain(title), fontsize=10)
    fig.tight_layout()
    return Figure(title, caption, uri=to_data_uri(fig))  # PNG: thousands of samples per trace


def exit_curve_plot(rows: pd.DataFrame, baseline: pd.Series | None, title: str, caption: str) -> Figure:
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
    ax.set_title(plain(title), fontsize=10)
    ax.grid(alpha=0.3)
    return finish(fig, title, caption)


def ratio_heatmap(matrix: pd.DataFrame, title: str, caption: str, higher_is_better: bool) -> Figure:
    """variant x column of ratios against a reference (1 = the same), coloured on a log2 scale centred on
    1 (blue: better), each cell written as '1.31x'; empty where the variant did not run there. Past
    MAX_HEATMAP_COLUMNS columns only the first are drawn (the caption says so; the table beside has all)."""
    if len(matrix.columns) > MAX_HEATMAP_COLUMNS:
        caption += f" The first {MAX_HEATMAP_COLUMNS} of {len(matrix.columns)} columns are drawn; the table has all."
        matrix = matrix.iloc[:, :MAX_HEATMAP_COLUMNS]
    fig, ax = plt.subplots(figsize=(1.0 * len(matrix.columns) + 2.4, 0.36 * len(matrix) + 1.6))
    log2 = np.log2(matrix.astype(float))
    bound = float(np.nanmax(np.abs(log2.to_numpy()))) if np.isfinite(log2.to_numpy()).any() else 1.0
    sns.heatmap(log2, ax=ax, cmap="RdBu" if higher_is_better else "RdBu_r", center=0, vmin=-max(bound, 0.1),
                vmax=max(bound, 0.1), fmt="",
                annot=matrix.map(lambda v: "" if v != v else f"{v:.2f}x") if matrix.size <= MAX_ANNOTATED_CELLS
                else False,
                annot_kws={"fontsize": 7}, cbar_kws={"label": "log2 of the ratio"}, linewidths=0.5)
    ax.set_xticklabels([plain(t.get_text()) for t in ax.get_xticklabels()], rotation=30, ha="right", fontsize=7)
    ax.set_yticklabels([plain(t.get_text()) for t in ax.get_yticklabels()], rotation=0, fontsize=7)
    ax.set_xlabel("")
    ax.set_ylabel("variant")
    ax.set_title(plain(title), fontsize=10)
    return finish(fig, title, caption)
