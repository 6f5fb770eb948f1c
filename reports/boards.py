"""Board-to-board variation: the spread of one job's median latency across the boards that ran it (a farm
run with `replicate = true`, where every board runs every job)."""

from __future__ import annotations

import pandas as pd

from harness.core.jobs import KEY_COLUMNS

HEADERS = ["job", "boards", "n", "p50 min ms", "p50 median ms", "p50 max ms", "spread %"]


def job_label(row) -> str:
    label = f"{row['workload']}/{row['variant']} {row['backend']} t{int(row['threads'])} b{int(row['batch_size'])}"
    return f"{label} {row['link']}" if isinstance(row.get("link"), str) and row["link"] else label


def board_spread_table(ok_rows: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """(headers, body): one line per job (its key columns) that ran ok on more than one board: the boards,
    how many, the min / median / max over boards of the job's p50 latency, and the spread, (max - min) /
    median in %. Empty body when no job ran on several boards."""
    if ok_rows.empty or "board" not in ok_rows.columns:
        return HEADERS, []
    rows = ok_rows[ok_rows["board"].fillna("").astype(str) != ""]
    rows = rows[pd.to_numeric(rows["latency_p50_ms"], errors="coerce").notna()]
    keys = [c for c in KEY_COLUMNS if c in rows.columns]
    body = []
    for _, group in rows.groupby(keys, dropna=False, sort=True):
        if group["board"].nunique() < 2:
            continue
        p50 = pd.to_numeric(group["latency_p50_ms"])
        median = float(p50.median())
        spread = (float(p50.max()) - float(p50.min())) / median * 100 if median > 0 else float("nan")
        body.append([job_label(group.iloc[0]), ", ".join(sorted(group["board"].astype(str).unique())),
                     str(len(group)), f"{p50.min():.4f}", f"{median:.4f}", f"{p50.max():.4f}", f"{spread:.1f}"])
    return HEADERS, body
