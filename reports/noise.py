"""Noise made visible: when a job counts as measured on a busy machine, the warning its row carries, and the
report's banners over the jobs measured while the machine was busy or while another edgebench run measured
on it. Every phrase a banner looks for in a row's `warnings` is defined here, and matched here only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

from harness.core.concurrent_runs import CONCURRENT_WARNING

# A job was measured on a busy machine when, during its timed windows:
# - other processes used at least this many cores. An idle Linux box uses a few hundredths; a quarter of a
#   core is a real neighbour: even on cores the job does not use it takes cache, memory bandwidth and the
#   clock's boost budget, and it preempts the job now and then. Over windows of a second or more, tick
#   accounting in /proc/stat resolves far finer than this.
BUSY_OTHER_CORES = 0.25
# - or a hypervisor stole at least this share of the CPU time: each steal is the job's vCPU taken away
#   mid-inference, a latency outlier; a quiet VM shows ~0 %.
BUSY_STEAL_PCT = 2.0
# The 1-minute load average is no verdict: it lags by a minute (the previous job is still in it) and counts
# the agent itself. The warning quotes it as supporting evidence only.

# The start of the warning a busy job's row carries (harness/app/rows.py writes it through busy_warning).
BUSY_WARNING = "machine busy during the timed windows"


def busy_warning(load_avg_1m: float | None, other_cpu_cores: float | None, cpu_steal_pct: float | None,
                 own_server_cores: float = 0.0) -> str:
    """The warning for a job measured on a busy machine, "" for a quiet one (or one whose figures are
    unknown). `own_server_cores`: the cores the job's own server agent could use on this machine (a split
    job with both agents here); they count among the others but are not held against the machine."""
    seen = []
    if other_cpu_cores is not None and other_cpu_cores - own_server_cores >= BUSY_OTHER_CORES:
        server = (f", this job's server agent (up to {own_server_cores:g} core"
                  f"{'s' if own_server_cores != 1 else ''}) among them" if own_server_cores else "")
        seen.append(f"other processes used {other_cpu_cores:.2f} cores{server}")
    if cpu_steal_pct is not None and cpu_steal_pct >= BUSY_STEAL_PCT:
        seen.append(f"the hypervisor stole {cpu_steal_pct:.1f} % of the CPU time")
    if not seen:
        return ""
    load = f" (load average {load_avg_1m:.1f})" if load_avg_1m is not None else ""
    return f"{BUSY_WARNING}: {', '.join(seen)}{load}; latencies may be inflated"


def _with_warning(ok_rows: pd.DataFrame, phrase: str) -> pd.DataFrame:
    """The rows whose `warnings` contain `phrase` (none in a run that has no such column)."""
    if "warnings" not in ok_rows.columns:
        return ok_rows.iloc[0:0]
    return ok_rows[ok_rows["warnings"].fillna("").astype(str).str.contains(phrase, regex=False)]


def _jobs(n: int) -> str:
    return f"{n} job{'s' if n != 1 else ''}"


def _largest(rows: pd.DataFrame, column: str) -> float | None:
    """The column's largest value over `rows`; None when it is missing or empty (a run of an older format)."""
    if column not in rows.columns:
        return None
    value = rows[column].max(skipna=True)
    return None if value != value else float(value)  # NaN: no value at all


def busy_banner(ok_rows: pd.DataFrame) -> str:
    """One line over the results when some jobs were measured on a busy machine, "" otherwise."""
    busy = _with_warning(ok_rows, BUSY_WARNING)
    if busy.empty:
        return ""
    seen = []
    others = _largest(busy, "other_cpu_cores")
    if others is not None and others >= BUSY_OTHER_CORES:
        seen.append(f"others used up to {others:.1f} cores")
    steal = _largest(busy, "cpu_steal_pct")
    if steal is not None and steal >= BUSY_STEAL_PCT:
        seen.append(f"the hypervisor stole up to {steal:.1f} %")
    detail = f" ({'; '.join(seen)})" if seen else ""
    verb = "was" if len(busy) == 1 else "were"
    return (f"{len(busy)} of {_jobs(len(ok_rows))} {verb} measured while the machine was busy{detail}: their "
            f"latencies may be inflated; see 'Validity and warnings'.")


def concurrent_banner(ok_rows: pd.DataFrame) -> str:
    """One line over the results when another edgebench run measured on this machine during some jobs."""
    overlapped = _with_warning(ok_rows, CONCURRENT_WARNING)
    if overlapped.empty:
        return ""
    return (f"This run overlapped with another edgebench run on the same machine for {len(overlapped)} of "
            f"{_jobs(len(ok_rows))}: each disturbed the other's latencies; see 'Validity and warnings'.")
