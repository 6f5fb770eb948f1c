"""Figures of split computing, each with a caption saying what was measured and how: where the time goes
(head / serialise / transfer / tail) at each link setting, end-to-end latency against the measured
bandwidth with the crossovers, accuracy against the bytes sent (sc2bench's rate-accuracy curve), and the
split analysis of the network (payload and head MACs at every candidate cut)."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from reports.crossover import (
    LINKED,
    STRATEGIES,
    crossover_points,
    crossover_table,
    latency_points,
    local_reference,
    strategy_of,
)
from reports.figure import Figure, log_scale, plain, to_data_uri

STAGES = (("head_ms", "head (device)", "tab:blue"), ("serialize_ms", "serialise (device)", "tab:orange"),
          ("transfer_ms", "transfer (link, both ways)", "tab:red"), ("tail_ms", "tail (server)", "tab:green"))
STRATEGY_COLORS = {"local": "tab:gray", "offload": "tab:red", "split": "tab:blue", "bottleneck": "tab:purple"}
DTYPE_MARKERS = {"fp32": "o", "fp16": "s", "int8": "^"}


def _png(title: str, uri: str, caption: str) -> Figure:
    # PNG: these figures hold no per-point tooltips, and stay small as images
    return Figure(title, caption, uri=uri)


def _values(rows: pd.DataFrame, column: str) -> list:
    return sorted(set(rows[column].dropna()) - {""}) if column in rows else []


def conditions(rows: pd.DataFrame) -> str:
    """How the rows were measured, for a caption: the link shaping and the device's emulated speed."""
    parts = []
    shaping = _values(rows[strategy_of(rows).isin(LINKED)], "link_shaping")
    if shaping:
        parts.append("link: " + " | ".join(shaping))
    quotas = _values(rows, "device_cpu_quota")
    if quotas:
        parts.append("emulated device speed: the device's processes held to "
                     + ", ".join(f"{q:g}" for q in quotas) + " CPU core(s) by a cgroup quota")
    return ("; ".join(parts) + ".") if parts else ""


def link_order(rows: pd.DataFrame) -> list[str]:
    """The link settings of the linked rows, slowest first (by measured, else nominal, bandwidth)."""
    linked = rows[strategy_of(rows).isin(LINKED)]
    if linked.empty:
        return []
    speed = {}
    for link, group in linked.groupby(linked["link"].fillna("")):
        measured = group.get("link_measured_mbit", pd.Series(dtype=float)).median()
        nominal = group.get("link_rate_mbit", pd.Series(dtype=float)).median()
        speed[link] = measured if not math.isnan(measured) else (nominal if not math.isnan(nominal) else math.inf)
    return sorted(speed, key=lambda k: (speed[k], k))


def stage_bars_plot(rows: pd.DataFrame, title: str) -> str:
    """One panel per link setting, one horizontal bar per variant: its stages' medians stacked, the
    end-to-end p50 as a black tick; the local reference (no link) as one grey bar, repeated in each panel."""
    strategy = strategy_of(rows)
    local = local_reference(rows).sort_values("variant")
    links = link_order(rows)
    heights = [len(local) + len(rows[(strategy != "local") & (rows["link"] == k)]) for k in links]
    fig, axes = plt.subplots(len(links), 1, figsize=(6.2, 0.32 * sum(heights) + 0.7 * len(links) + 1.0),
                             sharex=True, squeeze=False, layout="constrained",
                             gridspec_kw={"height_ratios": [max(h, 1) for h in heights]})
    for ax, link in zip(axes[:, 0], links):
        here = rows[(strategy != "local") & (rows["link"] == link)]
        here = here.assign(order=strategy_of(here).map(STRATEGIES.index)).sort_values(["order", "variant"])
        names = [plain(v) for v in local["variant"]] + [plain(v) for v in here["variant"]]
        y = np.arange(len(names))
        ax.barh(y[:len(local)], local["latency_p50_ms"], color=STRATEGY_COLORS["local"],
                label="local: whole model on the device")
        left = np.zeros(len(here))
        for column, name, color in STAGES:
            values = (here[column] if column in here else pd.Series(0.0, index=here.index)).fillna(0.0)
            ax.barh(y[len(local):], values.to_numpy(), left=left, color=color, label=name)
            left += values.to_numpy()
        ax.scatter(pd.concat([local["latency_p50_ms"], here["latency_p50_ms"]]), y, marker="|", s=160,
                   color="black", zorder=3, label="end-to-end p50")
        ax.set_yticks(y, names, fontsize=7)
        ax.invert_yaxis()
        measured = here["link_measured_mbit"].median() if "link_measured_mbit" in here else math.nan
        rtt = here["link_rtt_ms"].median() if "link_rtt_ms" in here else math.nan
        ax.set_title(f"{plain(link)}: " + ("bandwidth not measured" if math.isnan(measured) else
                                            f"measured {measured:.3g} Mbit/s, RTT {rtt:.3g} ms"),
                     fontsize=8, loc="left")
        ax.grid(alpha=0.3, axis="x")
    axes[-1, 0].set_xlabel("median per inference (ms)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="outside lower center", ncol=3)
    fig.suptitle(plain(title), fontsize=10)
    return to_data_uri(fig)


def _interpolated(points: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """A variant's latency drawn as the crossover table computes it: linear in 1/bandwidth between the
    measured link settings."""
    per_link = points.groupby("mbit")["latency_ms"].median()
    x = 1 / per_link.index.to_numpy()
    order = np.argsort(x)
    dense = np.linspace(x[order][0], x[order][-1], 200)
    return 1 / dense, np.interp(dense, x[order], per_link.to_numpy()[order])


def latency_bandwidth_plot(rows: pd.DataFrame, title: str) -> str:
    """End-to-end p50 against the measured bandwidth (log x), one line per linked variant, local variants
    as horizontal lines, the crossovers (where the fastest variant changes) marked; one panel per link
    delay."""
    points = latency_points(rows)
    delays = sorted(points["link_delay_ms"].dropna().unique())
    table = crossover_table(rows, by="variant")
    fig, axes = plt.subplots(1, len(delays), figsize=(5.8 * len(delays), 3.8), squeeze=False)
    for ax, delay in zip(axes[0], delays):
        here = points[points["link_delay_ms"] == delay]
        for (strategy, variant), group in here.groupby(["strategy", "variant"]):
            color = STRATEGY_COLORS.get(strategy, "black")
            if strategy == "local":
                ax.axhline(group["latency_ms"].median(), color=color, ls="--", lw=1,
                           label=f"{plain(variant)} (local)")
                continue
            mbit, latency = _interpolated(group)
            line, = ax.plot(mbit, latency, lw=1.2, label=f"{plain(variant)} ({strategy})")
            ax.scatter(group["mbit"], group["latency_ms"], color=line.get_color(), s=22, zorder=3)
        for mbit in crossover_points(table[table["link_delay_ms"] == delay]):
            lowest = min(_at(group, mbit) for _, group in here.groupby("variant"))
            ax.scatter([mbit], [lowest], marker="x", s=70, color="black", zorder=4)
            ax.annotate(f"{mbit:.3g} Mbit/s", (mbit, lowest), fontsize=7, xytext=(4, -10),
                        textcoords="offset points")
        log_scale(ax)
        ax.set_xlabel("measured bandwidth (Mbit/s)")
        ax.set_ylabel("end-to-end latency p50 (ms)")
        ax.set_title(f"{plain(title)} (delay {delay:g} ms each way)", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    return to_data_uri(fig)


def _at(points: pd.DataFrame, mbit: float) -> float:
    """A variant's latency at `mbit` (interpolated in 1/bandwidth); local: its constant; inf outside."""
    if points["mbit"].isna().all():
        return float(points["latency_ms"].median())
    per_link = points.groupby("mbit")["latency_ms"].median()
    x = 1 / per_link.index.to_numpy()
    if not x.min() <= 1 / mbit <= x.max():
        return math.inf
    order = np.argsort(x)
    return float(np.interp(1 / mbit, x[order], per_link.to_numpy()[order]))


def rate_accuracy_plot(rows: pd.DataFrame, input_bytes: dict[str, float], title: str) -> str:
    """Accuracy against the payload per sample (log x), one point per variant and backend; the unsplit
    model (the local baseline) as a dashed line, the raw input's sizes (`input_bytes`: label -> bytes) as
    dotted verticals."""
    strategy = strategy_of(rows)
    linked = rows[strategy.isin(LINKED)].dropna(subset=["accuracy", "payload_bytes"])
    backends = linked["backend"].nunique()
    points = (linked.assign(strategy=strategy, per_sample=linked["payload_bytes"] / linked["batch_size"])
              .groupby(["strategy", "variant", "backend"], as_index=False)
              .agg(per_sample=("per_sample", "median"), accuracy=("accuracy", "median"),
                   payload_dtype=("payload_dtype", "first")))
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    for (strat, dtype), group in points.groupby(["strategy", "payload_dtype"], dropna=False):
        group = group.sort_values("per_sample")
        ax.plot(group["per_sample"], group["accuracy"] * 100, marker=DTYPE_MARKERS.get(dtype, "D"),
                ls=":", lw=0.8, color=STRATEGY_COLORS.get(strat, "black"), label=f"{strat} {plain(dtype)}")
    for _, row in points.iterrows():
        name = plain(row["variant"]) + (f" {plain(row['backend'])}" if backends > 1 else "")
        ax.annotate(name, (row["per_sample"], row["accuracy"] * 100), fontsize=6, xytext=(3, 3),
                    textcoords="offset points")
    base = rows[(strategy == "local") & (rows["family"] == "baseline")]["accuracy"].dropna()
    if len(base):
        ax.axhline(base.median() * 100, color="black", ls="--", lw=1, label="unsplit model (local baseline)")
    for (name, size), style in zip(input_bytes.items(), (":", "-.")):
        ax.axvline(size, color="gray", ls=style, lw=1, label=f"raw input, {name}: {size:,.0f} B")
    log_scale(ax)
    ax.set_xlabel("payload per sample (bytes, batch 1)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(plain(title), fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return to_data_uri(fig)


def split_analysis_plot(analysis: dict, used_points: dict[str, str], title: str) -> str:
    """The candidate cuts in network order: payload per sample at fp32 and int8 (top, log y, the raw input
    as horizontal lines) and the device's cumulative head MACs (bottom); natural bottlenecks starred, the
    cuts this run measured (`used_points`: tensor -> variant) as dashed verticals."""
    candidates = sorted(analysis.get("candidates", []), key=lambda c: c["index"])
    index = np.array([c["index"] for c in candidates])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 5.2), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 2]})
    for key, name, color in (("payload_bytes_fp32", "fp32", "tab:blue"), ("payload_bytes_int8", "int8",
                                                                            "tab:orange")):
        top.plot(index, [c[key] for c in candidates], marker=".", color=color, label=f"payload {name}")
    natural = [c for c in candidates if c.get("natural_bottleneck")]
    if natural:
        top.scatter([c["index"] for c in natural], [c["payload_bytes_fp32"] for c in natural], marker="*",
                    s=140, color="gold", edgecolors="black", zorder=3, label="natural bottleneck")
    if analysis.get("input_bytes"):
        top.axhline(analysis["input_bytes"], color="gray", ls=":", lw=1,
                    label=f"input fp32: {analysis['input_bytes']:,.0f} B")
    if analysis.get("input_bytes_uint8"):
        top.axhline(analysis["input_bytes_uint8"], color="gray", ls="-.", lw=1,
                    label=f"input uint8: {analysis['input_bytes_uint8']:,.0f} B")
    log_scale(top, "y")
    top.set_ylabel("bytes per sample")
    top.set_title(plain(title), fontsize=9)
    top.legend(fontsize=7)
    # MACs are None where onnx-tool could not profile the graph
    head_macs = np.array([math.nan if c.get("head_macs") is None else c["head_macs"] for c in candidates], float)
    bottom.plot(index, head_macs / 1e6, marker=".", color="black")
    last = candidates[-1] if candidates else {}
    total = (last.get("head_macs") or 0) + (last.get("tail_macs") or 0)
    if total and last.get("head_macs") is not None and last.get("tail_macs") is not None:
        bottom.axhline(total / 1e6, color="gray", ls=":", lw=1, label=f"whole model: {total / 1e6:.3g} M")
        bottom.legend(fontsize=7)
    bottom.set_ylabel("head MACs (millions)")
    by_tensor = {c["tensor"]: c["index"] for c in candidates}
    for tensor, variant in used_points.items():
        if tensor in by_tensor:
            for ax in (top, bottom):
                ax.axvline(by_tensor[tensor], color="tab:green", ls="--", lw=0.8)
            top.annotate(plain(variant), (by_tensor[tensor], 0.02), xycoords=("data", "axes fraction"),
                         fontsize=6, rotation=90, va="bottom", ha="right", color="tab:green")
    step = max(1, math.ceil(len(candidates) / 40))
    shown = candidates[::step]
    bottom.set_xticks([c["index"] for c in shown], [plain(f"{c['index']} {c['op']}") for c in shown],
                      rotation=90, fontsize=6)
    bottom.set_xlabel("candidate cut (network order, producer op)")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    return to_data_uri(fig)


def split_figures(workload: str, rows: pd.DataFrame, analysis: dict | None) -> list[Figure]:
    """Every split-computing figure of one workload's ok rows (and its run.json split analysis)."""
    figures: list[Figure] = []
    strategy = strategy_of(rows)
    linked = rows[strategy.isin(LINKED)]
    kinds = [c for c in ("backend", "threads", "batch_size", "device_cpu_quota") if c in rows]
    for key, _ in linked.groupby(kinds, dropna=False):
        kind = dict(zip(kinds, key))
        same = rows
        for column, value in kind.items():
            same = same[same[column].isna()] if isinstance(value, float) and math.isnan(value) \
                else same[same[column] == value]
        where = f"{kind['backend']} t{int(kind['threads'])} b{int(kind['batch_size'])}"
        when = conditions(same)
        figures.append(_png(
            f"{workload}: where the time goes ({where})",
            stage_bars_plot(same, f"{workload}: stages per inference, {where}"),
            "Median per inference of each stage, over every timed iteration, on the device's clock: head = "
            "the device's compute up to the cut (with the payload codec), serialise = framing the payload, "
            "transfer = the reply's wait minus the server's tail time (both directions and the delay), "
            "tail = the server's compute. Medians of stages need not add up to the median of their sum: "
            "the black tick is the end-to-end p50. Local: the unsplit model (baseline) on the device, end to "
            "end. "
            + when))
        if latency_points(same)["mbit"].isna().all():
            continue  # no link setting has a bandwidth (measured or nominal) to place it at
        figures.append(_png(
            f"{workload}: latency vs bandwidth ({where})",
            latency_bandwidth_plot(same, f"{workload}: end-to-end latency, {where}"),
            "End-to-end latency p50 per inference against the link's bandwidth as measured by the device "
            "agent right before each job's accuracy pass (median over the jobs at that link setting), log "
            "scale. Lines run linearly in 1/bandwidth between the measured settings (transfer time ~ bytes / "
            "bandwidth), as the crossover table computes; dashed horizontal: the unsplit model on the "
            "device (local baseline, no link); "
            "crosses: where the fastest variant changes. " + when))
    if linked["accuracy"].notna().any():
        sizes = {}
        input_fp32 = (analysis or {}).get("input_bytes") or (linked["input_bytes"].median()
                                                             if "input_bytes" in linked else None)
        if input_fp32 and not math.isnan(input_fp32):
            sizes["fp32 tensor"] = input_fp32
        if (analysis or {}).get("input_bytes_uint8"):
            sizes["uint8 image"] = analysis["input_bytes_uint8"]
        figures.append(_png(
            f"{workload}: accuracy vs payload",
            rate_accuracy_plot(rows, sizes, f"{workload}: accuracy vs bytes sent"),
            "Top-1 accuracy over the whole evaluation split against the bytes sent per sample (the encoded "
            "payload at batch 1: fp32, fp16 or int8 at the cut; offload: the raw fp32 input), log scale: "
            "the rate-accuracy curve of sc2bench. Accuracy does not depend on the link: one point per "
            "variant and backend. Dashed: the unsplit model (the local baseline); dotted verticals: the raw "
            "input."))
    if analysis and analysis.get("candidates"):
        used = {}
        if "split_point" in rows:
            for _, row in rows[strategy.isin(("split", "bottleneck"))].iterrows():
                if row["split_point"]:
                    used.setdefault(row["split_point"], row["variant"])
        figures.append(_png(
            f"{workload}: split analysis",
            split_analysis_plot(analysis, used, f"{workload}: candidate cuts"),
            "From the model graph, not measured: at each candidate cut (a tensor that separates the graph, "
            "in network order) the payload per sample at fp32 and int8, and the device's share of the work "
            "(cumulative head MACs at batch 1). Natural bottlenecks (smaller than the input and than every "
            "earlier candidate) are starred; dashed verticals: the cuts this run measured."))
    return figures
