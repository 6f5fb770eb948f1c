"""What a run says about itself, for the reports: its facts (device, board, runtimes, protocol, commit) and
the banners above its numbers (not valid for publication, emulated energy)."""

from __future__ import annotations

import pandas as pd

from reports.captions import protocol_text
from reports.noise import busy_banner, concurrent_banner


def run_facts(info: dict) -> list[tuple[str, str]]:
    device = info.get("device", {})
    host = info.get("host", {})
    config = info.get("config", {})
    protocol = info.get("measurement_protocol", {})
    git = host.get("git", {})
    runtimes = ", ".join(f"{k} {v}" for k, v in sorted(device.get("runtimes", {}).items()))
    board = board_line(device)
    return [
        ("run", info.get("run_id", "")),
        ("target", config.get("target", {}).get("name", "")),
        ("suite", config.get("suite", {}).get("name", "")),
        ("device", f"{device.get('cpu_model')} · {device.get('cpu_count_usable')} usable cores · "
                   f"governor {device.get('governor') or 'unreadable'} · {device.get('os')}"),
        *([("board", board)] if board else []),
        ("runtimes", runtimes),
        ("protocol", f"warm-up >= {protocol.get('warmup_min_iterations')} it and >= "
                     f"{protocol.get('warmup_min_s')} s; {protocol_text(protocol)}"),
        ("edgebench", f"{host.get('edgebench')} at {(git.get('commit') or 'no git')[:12]}"
                      f"{' (dirty)' if git.get('dirty') else ''}"),
        ("started / finished", f"{info.get('started_at')} / {info.get('finished_at', 'not finished')}"),
    ]


def board_line(device: dict) -> str:
    """A board reached over SSH: what it is, how it was reached, which runtimes passed the smoke test."""
    board, transport = device.get("board"), device.get("transport")
    if not board and not transport:
        return ""
    parts = [f"{board.get('kind')}: {board.get('model') or 'model unreadable'}" if board else "",
             f"Python {device.get('python')}",
             f"over {transport['kind']} to {transport['host']}" if transport else ""]
    if board and board.get("throttled"):
        parts.append("throttled: " + (", ".join(board["throttled"]["flags"]) or "never"))
    smoke = device.get("smoke", {})
    if smoke:
        parts.append("smoke test: " + ", ".join(f"{name} {'ok' if r.get('ok') else 'FAILED'}"
                                                for name, r in sorted(smoke.items())))
    return " · ".join(p for p in parts if p)


def validity_banner(ok: pd.DataFrame) -> str:
    invalid = ok[ok["valid"].eq(False)]
    if invalid.empty:
        return ""
    return (f"Not valid for publication: {len(invalid)} of {len(ok)} results break the MLPerf Tiny "
            f"rules (windows >= 10 s, 5 windows, enough samples for p99). See 'Validity and warnings'.")


def job_name(row) -> str:
    return f"{row['workload']}/{row['variant']} {row['backend']} t{row['threads']} b{row['batch_size']}"


def emulated_suffix(rows: pd.DataFrame) -> str:
    return " (EMULATED meter)" if rows["energy_source"].str.startswith("emulated").any() else ""


def energy_banner(ok: pd.DataFrame) -> str:
    """Says which energy is emulated: all of it, or (runs compared together) the runs whose is."""
    with_energy = ok[ok["energy_source"].notna() & ~ok["energy_source"].isin(["none", ""])]
    is_emulated = with_energy["energy_source"].str.startswith("emulated")
    if not is_emulated.any():
        return ""
    emulated = ", ".join(sorted(set(with_energy.loc[is_emulated, "energy_source"])))
    emulated_runs = set(with_energy.loc[is_emulated, "run_id"]) if "run_id" in ok else set()
    if not emulated_runs or emulated_runs == set(ok["run_id"]):  # one run, or every run of the report
        return (f"Energy is EMULATED ({emulated}): modelled power, not a measurement of this "
                f"machine (run.json 'power' says how it was made).")
    measured = sorted(set(with_energy.loc[~is_emulated, "energy_source"]))
    others = (f"the other rows' energy was measured ({', '.join(measured)})" if measured
              else "the other runs measured no energy")
    return (f"Energy of {', '.join(sorted(emulated_runs))} is EMULATED ({emulated}): modelled power, not a "
            f"measurement (its run.json 'power' says how it was made); {others}.")


def banners(ok: pd.DataFrame) -> str:
    """Everything a reader must know before the numbers: not valid for publication, emulated energy, a busy
    machine, another run measuring at the same time."""
    return " ".join(filter(None, [validity_banner(ok), energy_banner(ok), busy_banner(ok), concurrent_banner(ok)]))
