"""The runs under a directory as a table, the start point for choosing what to report or compare: id,
target, suite, started, commit, jobs ok / skipped / failed, the share of ok jobs valid for publication, and
where their energy came from."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from harness.core.errors import ConfigError
from reports.load import load_run
from reports.render import markdown_table

COLUMNS = ["run", "target", "suite", "started", "commit", "ok", "skipped", "failed", "valid", "energy source"]


def run_entry(run_dir: Path) -> dict:
    try:
        info, rows = load_run(run_dir)
    except (ConfigError, OSError, ValueError) as exc:
        return {"run": run_dir.name, "target": f"unreadable: {exc}"}
    config = info.get("config", {})
    git = info.get("host", {}).get("git", {})
    status = rows["status"].value_counts()
    ok = rows[rows["status"] == "ok"]
    sources = sorted(set(ok["energy_source"].dropna()) - {"", "none"})
    return {"run": info.get("run_id", run_dir.name),
            "target": config.get("target", {}).get("name") or ", ".join(sorted(set(rows["target"]))),
            "suite": config.get("suite", {}).get("name", ""), "started": info.get("started_at", ""),
            "commit": (git.get("commit") or "")[:10] + ("+dirty" if git.get("dirty") else ""),
            **{s: int(status.get(s, 0)) for s in ("ok", "skipped", "failed")},
            "valid": f"{ok['valid'].eq(True).mean():.0%}" if len(ok) else "",
            "energy source": ", ".join(sources) or "none"}


def list_runs(root: Path) -> pd.DataFrame:
    """One row per run directory under `root` (a directory with results.csv), oldest first."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root}: not a directory; give the directory that holds the runs (e.g. runs)")
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and (p / "results.csv").is_file())
    table = pd.DataFrame([run_entry(d) for d in dirs], columns=COLUMNS)
    return table.sort_values(["started", "run"], kind="stable", na_position="first").reset_index(drop=True)


def print_runs(root: Path) -> None:
    """A table for the terminal; Markdown where the output is a file or a CI log (no wrapping)."""
    runs = list_runs(root)
    cells = [["" if pd.isna(run[c]) else str(run[c]) for c in COLUMNS] for _, run in runs.iterrows()]
    if not sys.stdout.isatty():
        print(markdown_table(COLUMNS, cells))
    else:
        print_rich(root, cells)
    if runs.empty:
        print(f"no runs in {root} (a run is a directory with results.csv)")


def print_rich(root: Path, cells: list[list[str]]) -> None:
    table = Table(title=f"runs in {root}", title_justify="left")
    for column in COLUMNS:
        table.add_column(column, justify="right" if column in ("ok", "skipped", "failed", "valid") else "left")
    for row in cells:
        table.add_row(*row)
    Console().print(table)
