"""Where each split-computing strategy wins: the end-to-end latency (p50) of every strategy against the
link's measured bandwidth, and the bandwidth ranges in which each has the lowest latency.

Latency between two measured bandwidths is interpolated linearly in 1/bandwidth, not in bandwidth: what the
link changes is the transfer time, ~ bytes / bandwidth plus a fixed delay, so T(B) = a + b / B is a straight
line in 1/B (methods.md: offload T = T_full(server) + 8 S_input / B, split T = T_head + 8 S_payload / B +
T_tail). A crossover between two measured bandwidths is where two such lines meet. Nothing is extrapolated
past the lowest and the highest bandwidth measured: a range that reaches either says so (from_edge, to_edge).

A link setting is placed at the median of `link_measured_mbit` over its rows (each job probes the link right
before its accuracy pass); its nominal rate stands in only when none was measured. Local rows (the whole
model on the device, no link) cost the same at every bandwidth; "local" is the unsplit model, the baseline
variant, where the run has one (a quantised, pruned or distilled variant is another model, with another
accuracy: the trade-off plots compare those). Rows are compared only within one workload, target, backend,
thread count, batch size, emulated device speed (device_cpu_quota) and link delay.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

STRATEGIES = ("local", "offload", "split", "bottleneck")
LINKED = ("offload", "split", "bottleneck")   # the strategies that cross the link
# rows are compared within one of these (link_delay_ms is added for the linked rows)
COMPARED = ("workload", "target", "backend", "threads", "batch_size", "device_cpu_quota")
GROUP = (*COMPARED, "link_delay_ms")
TABLE_COLUMNS = [*GROUP, "strategy", "variant", "from_mbit", "to_mbit", "from_edge", "to_edge",
                 "vs_local_pct", "vs_local_at_mbit", "vs_offload_pct", "vs_offload_at_mbit",
                 "local_variant", "local_ms"]


def strategy_of(rows: pd.DataFrame) -> pd.Series:
    """Each row's strategy; a row that names none (a family from before split computing) runs locally."""
    if "strategy" not in rows:
        return pd.Series("local", index=rows.index)
    return rows["strategy"].fillna("").replace("", "local")


def local_reference(rows: pd.DataFrame) -> pd.DataFrame:
    """The local rows that stand for local computing: the baseline's (the unsplit model) where there is
    one, else every local row."""
    local = rows[strategy_of(rows) == "local"]
    if "family" in local and (local["family"] == "baseline").any():
        return local[local["family"] == "baseline"]
    return local


def _key(values) -> tuple:
    """A group key with NaN as None, so that 'no quota' equals 'no quota'."""
    return tuple(None if isinstance(v, float) and math.isnan(v) else v for v in values)


def _column(rows: pd.DataFrame, name: str) -> pd.Series:
    return rows[name] if name in rows else pd.Series(np.nan, index=rows.index)


def latency_points(rows: pd.DataFrame) -> pd.DataFrame:
    """The points the crossovers are computed from, tidy: GROUP columns, strategy, variant, link, mbit (the
    link setting's median measured bandwidth; NaN for local rows), latency_ms (end-to-end p50). The local
    reference's rows (local_reference) are repeated in every link-delay group of their kind. Only `ok`
    rows; a link setting without any bandwidth (measured or nominal) is left out."""
    if "status" in rows:
        rows = rows[rows["status"] == "ok"]
    rows = rows.assign(strategy=strategy_of(rows), link=_column(rows, "link").fillna(""),
                       **{c: _column(rows, c) for c in ("device_cpu_quota", "link_delay_ms",
                                                         "link_measured_mbit", "link_rate_mbit")})
    rows = rows.dropna(subset=["latency_p50_ms"])
    linked = rows[rows["strategy"].isin(LINKED)].copy()
    local = rows[rows["strategy"] == "local"]
    if linked.empty:
        return pd.DataFrame(columns=[*GROUP, "strategy", "variant", "link", "mbit", "latency_ms"])
    linked["link_delay_ms"] = linked["link_delay_ms"].fillna(0.0)
    measured = linked.groupby([*GROUP, "link"], dropna=False)["link_measured_mbit"].transform("median")
    nominal = linked.groupby([*GROUP, "link"], dropna=False)["link_rate_mbit"].transform("median")
    linked["mbit"] = measured.fillna(nominal)
    linked = linked[linked["mbit"] > 0]
    parts = [linked]
    local_by_kind = {_key(k): local_reference(g) for k, g in local.groupby(list(COMPARED), dropna=False)}
    for delay_key, _ in linked.groupby(list(GROUP), dropna=False):
        same = local_by_kind.get(_key(delay_key[:-1]))
        if same is not None:
            parts.append(same.assign(link_delay_ms=delay_key[-1], mbit=np.nan))
    points = pd.concat(parts, ignore_index=True)
    points = points.rename(columns={"latency_p50_ms": "latency_ms"})
    return points[[*GROUP, "strategy", "variant", "link", "mbit", "latency_ms"]].reset_index(drop=True)


def _lower_envelope(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[tuple[float, float, str]]:
    """(x_low, x_high, name) sections of x = 1/bandwidth in which `name` has the lowest latency, exact for
    curves piecewise linear in x (each given by its sorted x and latency). A curve takes part only where it
    is defined (between its own lowest and highest x); a single x gives one section of zero width."""
    grid = np.unique(np.concatenate([x for x, _ in curves.values()]))
    names = sorted(curves)
    if len(grid) == 1:
        values = {n: curves[n][1][0] for n in names}
        return [(grid[0], grid[0], min(names, key=lambda n: values[n]))]
    sections: list[tuple[float, float, str]] = []
    for g0, g1 in zip(grid[:-1], grid[1:]):
        active = [n for n in names if curves[n][0][0] <= g0 and curves[n][0][-1] >= g1]
        if not active:
            continue
        v0 = np.array([np.interp(g0, *curves[n]) for n in active])
        v1 = np.array([np.interp(g1, *curves[n]) for n in active])
        cuts = {g0, g1}
        for i in range(len(active)):
            for j in range(i + 1, len(active)):
                d0, d1 = v0[i] - v0[j], v1[i] - v1[j]
                if d0 * d1 < 0:  # the two lines cross strictly inside
                    cuts.add(g0 + d0 / (d0 - d1) * (g1 - g0))
        cuts = sorted(cuts)
        for a, b in zip(cuts[:-1], cuts[1:]):
            t = ((a + b) / 2 - g0) / (g1 - g0)
            winner = active[int(np.argmin(v0 + t * (v1 - v0)))]  # ties: the first name
            if sections and sections[-1][2] == winner and sections[-1][1] == a:
                sections[-1] = (sections[-1][0], b, winner)
            else:
                sections.append((a, b, winner))
    return sections


def _merge(sections: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    merged: list[tuple[float, float, str]] = []
    for a, b, name in sections:
        if merged and merged[-1][2] == name and merged[-1][1] == a:
            merged[-1] = (merged[-1][0], b, name)
        else:
            merged.append((a, b, name))
    return merged


def _best_saving(points: list[tuple[float, float, float]]) -> tuple[float, float]:
    """(largest saving in %, at Mbit/s) over (mbit, latency, reference latency) points; NaN when none."""
    savings = [((1 - t / ref) * 100, mbit) for mbit, t, ref in points if ref and not math.isnan(ref)]
    return max(savings) if savings else (math.nan, math.nan)


def _group_table(points: pd.DataFrame, by: str) -> list[dict]:
    linked = points[points["strategy"] != "local"]
    local = points[points["strategy"] == "local"]
    grid = np.sort(1 / linked["mbit"].unique())
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    strategy: dict[str, str] = {}
    for (name, strat), rows in linked.groupby(["variant", "strategy"]):
        per_link = rows.groupby("mbit")["latency_ms"].median()
        x = 1 / per_link.index.to_numpy()
        order = np.argsort(x)
        curves[name], strategy[name] = (x[order], per_link.to_numpy()[order]), strat
    local_best = local.loc[local["latency_ms"].idxmin()] if len(local) else None
    for _, row in local.iterrows():  # constant: one point at each end of the grid is the whole line
        curves[row["variant"]] = (grid[[0, -1]], np.array([row["latency_ms"]] * 2))
        strategy[row["variant"]] = "local"
    sections = _lower_envelope(curves)
    if by == "strategy":
        winners = [(a, b, strategy[n]) for a, b, n in sections]
        contenders = sorted(set(strategy.values()), key=STRATEGIES.index)
    else:
        winners = sections
        contenders = sorted(curves, key=lambda n: (STRATEGIES.index(strategy[n]), n))
    winners = _merge(winners)

    def latency(name: str, x: float) -> float:
        """The contender's latency at x: a variant's, or a strategy's fastest variant's; NaN if not there."""
        names = [n for n in curves if strategy[n] == name] if by == "strategy" else [name]
        values = [np.interp(x, *curves[n]) for n in names if curves[n][0][0] <= x <= curves[n][0][-1]]
        return min(values) if values else math.nan

    def fastest(strat: str, x: float) -> float:
        values = [np.interp(x, *curves[n]) for n in curves if strategy[n] == strat
                  and curves[n][0][0] <= x <= curves[n][0][-1]]
        return min(values) if values else math.nan

    records = []
    for name in contenders:
        own = [(a, b) for a, b, n in winners if n == name]
        strat = name if by == "strategy" else strategy[name]
        for a, b in own or [(math.nan, math.nan)]:
            record = {"strategy": strat, "from_mbit": 1 / b, "to_mbit": 1 / a,
                      "from_edge": b == grid[-1], "to_edge": a == grid[0],
                      "local_variant": None if local_best is None else local_best["variant"],
                      "local_ms": math.nan if local_best is None else local_best["latency_ms"]}
            if by == "strategy":  # the variants that are this strategy's fastest within the range
                inside = [n for s0, s1, n in sections if strategy[n] == name and a <= s0 and s1 <= b]
                record["variant"] = ", ".join(dict.fromkeys(reversed(inside)))
            else:
                record["variant"] = name
            # savings at the measured settings inside [from, to) (the top end too when it is the edge)
            measured = [x for x in grid if a < x <= b or (x == a and record["to_edge"])]
            at = [(1 / x, latency(name, x)) for x in measured]
            record["vs_local_pct"], record["vs_local_at_mbit"] = (
                _best_saving([(m, t, record["local_ms"]) for m, t in at]) if strat != "local"
                else (math.nan, math.nan))
            record["vs_offload_pct"], record["vs_offload_at_mbit"] = (
                _best_saving([(m, t, fastest("offload", 1 / m)) for m, t in at]) if strat != "offload"
                else (math.nan, math.nan))
            records.append(record)
    return records


def crossover_table(rows: pd.DataFrame, by: str = "strategy") -> pd.DataFrame:
    """One row per (comparison group, contender, bandwidth range in which it has the lowest latency), tidy.

    by="strategy": a strategy's latency at a bandwidth is its fastest variant's there (`variant` lists the
    variants that are, low bandwidth first); by="variant": every variant on its own. A contender that is
    never the fastest gets one row with from_mbit and to_mbit NaN.

    Columns: GROUP, strategy, variant, from_mbit / to_mbit (the range [from, to) in Mbit/s, on the measured
    bandwidth; crossovers interpolated linearly in 1/bandwidth), from_edge / to_edge (the range reaches the
    lowest / highest bandwidth measured: it may extend past it), vs_local_pct (how much lower the latency is
    than the local reference's (local_reference; its fastest row), the largest over the measured settings
    in the range) and vs_local_at_mbit (where), vs_offload_pct / vs_offload_at_mbit (the same against the
    fastest offload variant at that setting), local_variant and local_ms (the local reference). Rows are
    sorted by group, then low bandwidth first, contenders that never win last.

    To ask "where does split beat both local and offload", pass only those strategies' rows.
    """
    if by not in ("strategy", "variant"):
        raise ValueError(f"crossover_table(by={by!r}); accepted: 'strategy' or 'variant'")
    points = latency_points(rows)
    records = []
    for group, group_points in points.groupby(list(GROUP), dropna=False, sort=False):
        if not (group_points["strategy"] != "local").any():
            continue
        for record in _group_table(group_points, by):
            records.append({**dict(zip(GROUP, group)), **record})
    table = pd.DataFrame(records, columns=TABLE_COLUMNS)
    if len(table):
        table["never"] = table["from_mbit"].isna()
        table = (table.sort_values([*GROUP, "never", "from_mbit"], kind="stable", na_position="first")
                 .drop(columns="never").reset_index(drop=True))
    return table


def crossover_points(table: pd.DataFrame) -> list[float]:
    """The bandwidths (Mbit/s) at which the fastest contender changes: every range's ends that are not
    the edge of what was measured."""
    ends = set(table.loc[~table["from_edge"].astype(bool) & table["from_mbit"].notna(), "from_mbit"])
    ends |= set(table.loc[~table["to_edge"].astype(bool) & table["to_mbit"].notna(), "to_mbit"])
    return sorted(ends)
