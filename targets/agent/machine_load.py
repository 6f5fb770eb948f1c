"""The machine's load around a job's timed windows: the CPU time other processes used, the share a
hypervisor stole and the load average, so that a job measured on a busy machine can say so.

Runs inside the agent on a board too: standard library only, Python 3.8. Where /proc/stat or the load
average cannot be read (macOS, a container that hides them) the figures are None: a job is never lost
over them.
"""

from __future__ import annotations

import os
import time
from collections import namedtuple
from typing import Optional

PROC_STAT = "/proc/stat"
# The aggregate "cpu" line of /proc/stat, in jiffies. guest and guest_nice (the fields after steal) are
# already counted in user and nice, so they are left out of the total.
CpuTimes = namedtuple("CpuTimes", "user nice system idle iowait irq softirq steal")
# A point in time: monotonic seconds, this process's CPU seconds, the cpu line (None: unreadable) and the
# 1-minute load average (None: unreadable).
Snapshot = namedtuple("Snapshot", "t_s own_cpu_s cpu load_avg_1m")


def _user_hz() -> Optional[int]:
    """/proc/stat's unit: jiffies per second (USER_HZ, 100 on nearly every Linux)."""
    try:
        return os.sysconf("SC_CLK_TCK")
    except (AttributeError, ValueError, OSError):
        return None


USER_HZ = _user_hz()


def parse_cpu_line(stat_text: str) -> Optional[CpuTimes]:
    """The aggregate `cpu` line of /proc/stat's text; None when it has none. Kernels older than 2.6.11
    have no steal field (read as 0)."""
    for line in stat_text.splitlines():
        words = line.split()
        if words and words[0] == "cpu":
            values = [int(w) for w in words[1:1 + len(CpuTimes._fields)]]
            return CpuTimes(*(values + [0] * (len(CpuTimes._fields) - len(values))))
    return None


def _read_cpu(path: str) -> Optional[CpuTimes]:
    try:
        with open(path) as fh:
            return parse_cpu_line(fh.read())
    except (OSError, ValueError):
        return None


def _load_avg_1m() -> Optional[float]:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not on Windows; OSError where the system will not tell
        return None


def snapshot(stat_path: str = PROC_STAT) -> Snapshot:
    # time.process_time: this process's user + system time summed over ALL its threads (a runtime's
    # intra-op pool, a power source's reader, the split data plane): what getrusage(RUSAGE_SELF) counts,
    # read in one call. Not time.thread_time, which counts the calling thread alone.
    return Snapshot(time.monotonic(), time.process_time(), _read_cpu(stat_path), _load_avg_1m())


def machine_load(before: Snapshot, after: Snapshot, user_hz: Optional[int] = USER_HZ) -> dict:
    """What the machine did between two snapshots, as the result columns of the same names:
    load_avg_1m      the larger of the two load averages (it lags by a minute and counts this process)
    other_cpu_cores  busy CPU time not this process's, per second of wall time (0 on a quiet machine)
    cpu_steal_pct    steal's share of all CPU time
    each None where it cannot be known."""
    loads = [s.load_avg_1m for s in (before, after)]
    result = {"load_avg_1m": None if None in loads else max(loads), "other_cpu_cores": None, "cpu_steal_pct": None}
    if before.cpu is None or after.cpu is None or not user_hz:
        return result
    delta = CpuTimes(*(b - a for a, b in zip(before.cpu, after.cpu)))
    total = sum(delta)
    wall_s = after.t_s - before.t_s
    # a counter that went back (a CPU taken offline drops its share of the aggregate) says nothing
    if min(delta) < 0 or total <= 0 or wall_s <= 0:
        return result
    busy_s = (total - delta.idle - delta.iowait - delta.steal) / user_hz
    own_s = after.own_cpu_s - before.own_cpu_s
    # /proc/stat charges whole ticks while our own time is exact: over a short interval busy can come out a
    # little below our own time; it is nobody else's
    result["other_cpu_cores"] = max(0.0, busy_s - own_s) / wall_s
    result["cpu_steal_pct"] = 100.0 * delta.steal / total
    return result
