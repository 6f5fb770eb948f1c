"""Rendering: HTML through Jinja2 with autoescaping (a report shows names that came from user files),
Markdown through a small table writer."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape

TEMPLATES = Path(__file__).resolve().parent / "templates"

# (column, header, format) for the results table of a report
RESULT_COLUMNS = [
    ("workload", "workload", None), ("variant", "variant", None), ("backend", "backend", None),
    ("precision", "precision", None), ("threads", "threads", "d"), ("batch_size", "batch", "d"),
    ("accuracy", "accuracy", ".4f"), ("accuracy_delta", "Δ acc", "+.4f"),
    ("latency_p50_ms", "p50 ms", ".4f"), ("latency_p90_ms", "p90 ms", ".4f"),
    ("latency_p99_ms", "p99 ms", ".4f"), ("latency_mean_ms", "mean ms", ".4f"),
    ("latency_std_ms", "std ms", ".4f"), ("h2d_ms", "H2D ms", ".4f"), ("d2h_ms", "D2H ms", ".4f"),
    ("throughput_ips", "inf/s", ",.0f"),
    ("macs", "MACs", ",.0f"), ("params", "params", ",.0f"), ("model_bytes", "bytes", ",.0f"),
    ("weight_sparsity", "sparsity", ".2f"), ("exit_rate", "exits", ".3f"),
    ("expected_macs", "expected MACs", ",.0f"),
    ("peak_rss_mb", "peak RSS MB", ".0f"), ("energy_per_inference_mj", "mJ/inf", ".4g"),
    ("energy_per_inference_above_idle_mj", "mJ/inf above idle", ".4g"), ("avg_power_w", "avg W", ".3f"),
    ("energy_source", "energy source", None), ("valid", "valid", None),
]


def fmt(value, spec: str | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if spec is None:
        return str(value)
    try:
        return format(int(value) if spec.endswith("d") else float(value), spec)
    except (TypeError, ValueError):
        return str(value)


# shown only when some row has a value (GPU targets)
WHEN_PRESENT = {"h2d_ms", "d2h_ms"}


def table_cells(rows: pd.DataFrame, columns=RESULT_COLUMNS) -> tuple[list[str], list[list[str]]]:
    columns = [c for c in columns if c[0] not in WHEN_PRESENT
               or (c[0] in rows and rows[c[0]].notna().any())]
    headers = [h for _, h, _ in columns]
    body = [[fmt(row.get(c), f) for c, _, f in columns] for _, row in rows.iterrows()]
    return headers, body


def markdown_table(headers: list[str], body: list[list[str]]) -> str:
    def esc(cell: str) -> str:
        return str(cell).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(map(esc, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in body]
    return "\n".join(lines)


def render_html(template: str, **context) -> str:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    return env.get_template(template).render(**context)
