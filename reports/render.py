"""Rendering: HTML through Jinja2 with autoescaping (a report shows names that came from user files),
Markdown through a small table writer."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape

from harness.core.errors import ConfigError
from harness.core.schema import REPORT_COLUMNS, REPORT_WHEN_PRESENT

TEMPLATES = Path(__file__).resolve().parent / "templates"

def fmt(value, spec: str | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if spec is None:
        return str(value)
    try:
        return format(int(value) if spec.endswith("d") else float(value), spec)
    except (TypeError, ValueError):
        return str(value)


def table_cells(rows: pd.DataFrame, columns=REPORT_COLUMNS) -> tuple[list[str], list[list[str]]]:
    # an empty text cell is read as "", not NaN: a column of "" only is absent too (`link` of local jobs)
    columns = [c for c in columns if c[0] not in REPORT_WHEN_PRESENT
               or (c[0] in rows and (rows[c[0]].notna() & rows[c[0]].ne("")).any())]
    headers = [h for _, h, _ in columns]
    body = [[fmt(row.get(c), f) for c, _, f in columns] for _, row in rows.iterrows()]
    return headers, body


def markdown_text(text) -> str:
    """Text for report.md: a '<' is backslash-escaped, so that a name from a user's file (a tensor called
    '<img onerror=...>') is shown, not rendered as HTML by a Markdown viewer."""
    return str(text).replace("\\", "\\\\").replace("<", "\\<")


def markdown_table(headers: list[str], body: list[list[str]]) -> str:
    def esc(cell: str) -> str:
        return markdown_text(cell).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(map(esc, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in body]
    return "\n".join(lines)


def default_out_dir(run_dirs: list[Path], prefix: str) -> Path:
    """<the first run's parent>/<prefix>-<digest of the runs' names>: the same runs land in the same place."""
    names = "\n".join(sorted(Path(p).resolve().name for p in run_dirs))
    return Path(run_dirs[0]).resolve().parent / f"{prefix}-{hashlib.sha256(names.encode()).hexdigest()[:10]}"


def make_out_dir(path: Path) -> Path:
    """Where a report goes, made if missing; one line naming it when that cannot be."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {path}: cannot write a report there ({exc.strerror or exc}); give a "
                          f"directory that can be created or written") from None
    return path


def render_html(template: str, **context) -> str:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    return env.get_template(template).render(**context)


def markdown_section(section: dict, level: int) -> list[str]:
    """A report section ({name, tables: [{title, headers, body, note}], figures}) as Markdown lines: its
    tables, then a line per figure (figures are in report.html) with its caption."""
    md = [f"{'#' * level} {markdown_text(section['name'])}", ""]
    for table in section["tables"]:
        md += [f"{'#' * (level + 1)} {markdown_text(table['title'])}", "",
               markdown_table(table["headers"], table["body"]), "", markdown_text(table["note"]), ""]
    return md + [f"- *{markdown_text(f.title)}* (in report.html): {markdown_text(f.caption)}"
                 for f in section["figures"]] + [""]
