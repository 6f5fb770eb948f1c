"""history.html and history.md: one metric of every job across runs (reports.history), an overview of all
jobs relative to their first run, the jobs that changed drawn one by one, and every significant change."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns

from harness.core.schema import BY_NAME
from reports.compare import ACCURACY_DROP_POINTS
from reports.figure import Figure, finish, plain
from reports.history import POINTS_METRICS, History, job_summary, load_history, newest_regressions
from reports.render import default_out_dir, make_out_dir, markdown_table, markdown_text, render_html, table_cells

MAX_JOB_PANELS = 12
VERDICT_COLORS = {"regression": "tab:red", "improvement": "tab:green"}


def metric_label(metric: str) -> str:
    unit = BY_NAME[metric].unit
    return f"{metric} ({unit})" if unit else metric


def run_ticks(history: History) -> list[str]:
    """A run's name on the x axis: its id, and its commit where known."""
    return [f"{r.run_id}" + (f"\n{r.commit[:8]}" if r.commit else "") for r in history.runs.itertuples()]


def overview_plot(history: History, caption: str) -> Figure:
    points = history.points
    first = points.groupby("job")["value"].transform("first")
    relative = points.assign(relative=points["value"] / first)
    fig, ax = plt.subplots(figsize=(7.2, 3.4))
    # the median over jobs and the band of their middle half: percentiles, no bootstrap (100,000 points)
    sns.lineplot(data=relative, x="position", y="relative", estimator="median", errorbar=("pi", 50), ax=ax,
                 marker="o", color="black")
    for verdict, color in VERDICT_COLORS.items():
        at = history.changes[history.changes["verdict"] == verdict]["position"].value_counts()
        if len(at):
            ax.scatter(at.index, [ax.get_ylim()[1]] * len(at), s=20 + 4 * at.to_numpy(), color=color,
                       marker="v", label=f"{verdict}s ({int(at.sum())})", clip_on=False, zorder=3)
    ax.axhline(1, color="0.6", lw=0.8, ls=":")
    ax.set_xticks(range(len(history.runs)), [plain(t) for t in run_ticks(history)], fontsize=6,
                  rotation=45 if len(history.runs) > 8 else 0, ha="right" if len(history.runs) > 8 else "center")
    ax.set_xlabel("run (oldest first)")
    ax.set_ylabel(f"{history.metric} / the job's first")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    ax.set_title(f"All jobs: {history.metric} relative to their first run", fontsize=10)
    return finish(fig, f"{history.metric}: all jobs", caption)


def jobs_plot(history: History, jobs: list[str], caption: str) -> Figure:
    n_cols = min(3, len(jobs))
    n_rows = -(-len(jobs) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.0 * n_cols + 0.6, 2.2 * n_rows + 0.4), squeeze=False)
    for ax, job in zip(axes.flat, jobs):
        series = history.points[history.points["job"] == job]
        ax.plot(series["position"], series["value"], "o-", color="0.3", ms=3, lw=1)
        changes = history.changes[history.changes["job"] == job]
        for verdict, color in VERDICT_COLORS.items():
            at = changes[changes["verdict"] == verdict]
            ax.scatter(at["position"], at["to_value"], color=color, s=30, zorder=3)
        ax.set_title(plain(job), fontsize=6)
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(jobs):]:
        ax.set_visible(False)
    fig.supxlabel("run position (oldest first)", fontsize=8)
    fig.supylabel(plain(metric_label(history.metric)), fontsize=8)
    fig.tight_layout()
    return finish(fig, f"{history.metric}: jobs that changed", caption)


CHANGE_COLUMNS = [("job", "job", None), ("from_run", "from run", None), ("to_run", "to run", None),
                  ("from_value", "before", ".4g"), ("to_value", "after", ".4g"), ("ratio", "after / before", ".3f"),
                  ("p_value", "p", ".2g"), ("test", "test", None), ("verdict", "verdict", None)]
SUMMARY_COLUMNS = [("job", "job", None), ("runs", "runs", "d"), ("first", "first", ".4g"), ("last", "last", ".4g"),
                   ("low", "lowest", ".4g"), ("high", "highest", ".4g"), ("regressions", "regressions", "d"),
                   ("improvements", "improvements", "d")]


def write_history(run_dirs: list[Path], metric: str, out_dir: Path | None = None, order: str = "time",
                  ratio_threshold: float = 1.10, alpha: float = 0.01) -> tuple[tuple[Path, Path], int]:
    """Writes history.html / history.md; returns their paths and the number of jobs whose newest run
    regressed."""
    history = load_history(run_dirs, metric, order, ratio_threshold, alpha)
    out_dir = make_out_dir(Path(out_dir) if out_dir else default_out_dir(run_dirs, f"history-{metric}"))
    if metric in POINTS_METRICS:
        rule = (f"A change counts where {metric} moved by more than {ACCURACY_DROP_POINTS:g} point between two "
                f"consecutive runs of a job (no samples to test).")
    else:
        rule = (f"A change counts where {metric} moved by a ratio >= {ratio_threshold:g} (or <= "
                f"{1 / ratio_threshold:.3f}) between two consecutive runs of a job"
                + (f" and Mann-Whitney U on their raw samples gives p < {alpha:g}." if metric.startswith("latency_")
                   else " (no samples to test for this metric: the ratio alone)."))
    n_regressions = int((history.changes["verdict"] == "regression").sum())
    n_newest = len(newest_regressions(history))
    summary_text = (f"{history.points['job'].nunique():,} jobs over {len(history.runs)} runs in {order} order; "
                    f"{n_regressions} regression(s), {len(history.changes) - n_regressions} improvement(s); "
                    f"{n_newest} job(s) regressed in their newest run. {rule}")
    figures = []
    if len(history.points):
        figures.append(overview_plot(history, f"Per run, the median over jobs of {metric} divided by the job's "
                                              f"value in its first run, with the band of the middle half of "
                                              f"the jobs (p25-p75); triangles: runs with significant changes "
                                              f"(size: how many). {rule}"))
    changed = history.changes["job"].value_counts().index[:MAX_JOB_PANELS].tolist()
    if changed:
        figures.append(jobs_plot(history, changed, f"{metric} of the {len(changed)} job(s) with the most "
                                                   f"significant changes; red: regressions, green: improvements."))
    change_headers, change_body = table_cells(history.changes, CHANGE_COLUMNS)
    summary_headers, summary_body = table_cells(job_summary(history), SUMMARY_COLUMNS)
    runs_headers, runs_body = table_cells(history.runs, [("position", "#", "d"), ("run_id", "run", None),
                                                   ("started_at", "started", None), ("commit", "commit", None)])
    title = f"edgebench history: {metric}"
    html_path = out_dir / "history.html"
    html_path.write_text(render_html("history.html.j2", title=title, summary=summary_text, notes=history.notes,
                                     figures=figures, tables=[
                                         ("Significant changes", change_headers, change_body),
                                         ("Jobs", summary_headers, summary_body),
                                         ("Runs", runs_headers, runs_body)]))
    md = [f"# {markdown_text(title)}", "", markdown_text(summary_text), ""]
    md += [f"- {markdown_text(n)}" for n in history.notes]
    md += ["", "## Significant changes", "", markdown_table(change_headers, change_body), "", "## Jobs", "",
           markdown_table(summary_headers, summary_body), "", "## Runs", "", markdown_table(runs_headers, runs_body),
           ""]
    md_path = out_dir / "history.md"
    md_path.write_text("\n".join(md))
    return (html_path, md_path), n_newest
