"""Split computing through `edgebench bench`: real training, real device and server agents, the real data
plane over loopback and (as root) over two network namespaces joined by a tbf-shaped veth pair."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest
from helpers import TINY_PROTOCOL, tiny_workload_toml, write

from harness.app.cli import main

SPLIT_VARIANTS = """
    [[variants]]
    name = "offload"
    family = "offload"
    [[variants]]
    name = "split-fp32"
    family = "split"
    point = 1
    [[variants]]
    name = "split-int8"
    family = "split"
    point = 1
    payload = "int8"
    """

needs_namespaces = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("tc") is None,
    reason="network namespaces and tbf need root and iproute2 (ip, tc)")


def split_files(tmp_path: Path, suite_extra: str = "", variants: str = SPLIT_VARIANTS) -> dict:
    workload = write(tmp_path / "tiny.toml", tiny_workload_toml() + variants)
    suite = write(tmp_path / "split-suite.toml", f"""
    [suite]
    name = "tiny-split"
    workloads = ["{workload}"]
    {TINY_PROTOCOL}
    [matrix]
    backends = ["onnxruntime"]
    {suite_extra}
    """)
    return {"workload": workload, "suite": suite, "runs": tmp_path / "runs"}


def run_rows(runs: Path) -> tuple[Path, list[dict]]:
    run_dir = next(p for p in runs.iterdir() if p.is_dir() and not p.is_symlink())
    with open(run_dir / "results.csv", newline="") as fh:
        return run_dir, list(csv.DictReader(fh))


def test_local_offload_and_split_over_loopback_with_the_breakdown_and_the_analysis(tmp_path, capsys):
    files = split_files(tmp_path)
    assert main(["bench", "--suite", str(files["suite"]), "--runs-dir", str(files["runs"]), "--quiet",
                 "--link", "none"]) == 0
    run_dir, rows = run_rows(files["runs"])
    by_variant = {r["variant"]: r for r in rows}
    assert [r["status"] for r in rows] == ["ok"] * 4
    local = by_variant["fp32"]
    assert (local["strategy"], local["link"], local["transfer_ms"]) == ("local", "", "")
    for name, strategy in (("offload", "offload"), ("split-fp32", "split"), ("split-int8", "split")):
        row = by_variant[name]
        assert (row["strategy"], row["link"]) == (strategy, "loopback")
        assert row["job_id"].endswith("__loopback")
        assert row["link_shaping"].startswith("none: loopback, unshaped") and row["link_rate_mbit"] == ""
        for part in ("head_ms", "serialize_ms", "transfer_ms", "tail_ms", "link_measured_mbit", "link_rtt_ms"):
            assert float(row[part]) >= 0, part
        # the parts happen one after the other inside every timed iteration
        assert float(row["serialize_ms"]) + float(row["transfer_ms"]) < float(row["latency_p90_ms"])
        assert float(row["tail_ms"]) > 0 and float(row["transfer_ms"]) > 0
    # an 8x8 digit as fp32 crosses whole for offload; the int8 payload is a quarter of the fp32 one
    assert int(by_variant["offload"]["payload_bytes"]) == 64 * 4 == int(by_variant["offload"]["input_bytes"])
    assert int(by_variant["split-int8"]["payload_bytes"]) * 4 == int(by_variant["split-fp32"]["payload_bytes"])
    assert by_variant["split-int8"]["payload_dtype"] == "int8"
    # cut without retraining: the fp32 split scores exactly what the whole network scores
    assert by_variant["split-fp32"]["accuracy"] == local["accuracy"] == by_variant["offload"]["accuracy"]
    assert abs(float(by_variant["split-int8"]["accuracy"]) - float(local["accuracy"])) <= 0.01
    assert int(by_variant["split-fp32"]["head_macs"]) + int(by_variant["split-fp32"]["tail_macs"]) == \
        int(local["macs"])

    analysis = json.loads((run_dir / "run.json").read_text())["split_analysis"]["tiny-digits"]
    assert analysis["input_bytes"] == 256 and analysis["input_bytes_uint8"] == 64
    cut = analysis["candidates"][1]
    assert cut["payload_bytes_fp32"] == int(by_variant["split-fp32"]["payload_bytes"])
    assert by_variant["split-fp32"]["split_point"] == cut["tensor"]
    report = (run_dir / "report.md").read_text()
    assert "Split computing" in report


@needs_namespaces
def test_shaped_links_in_namespaces_with_an_emulated_slower_device(tmp_path):
    files = split_files(tmp_path, """
    [split]
    server = "cpu"
    device_cpu_quota = 0.5
    [[link]]
    rate_mbit = 100
    delay_ms = 0
    [[link]]
    rate_mbit = 20
    delay_ms = 3
    """, variants=SPLIT_VARIANTS.split('    [[variants]]\n    name = "split-int8"')[0])
    assert main(["bench", "--suite", str(files["suite"]), "--runs-dir", str(files["runs"]), "--quiet"]) == 0
    _, rows = run_rows(files["runs"])
    assert [r["status"] for r in rows] == ["ok"] * 5
    assert all(r["device_cpu_quota"] == "0.5" for r in rows)  # the local job ran at the emulated speed too
    linked = [r for r in rows if r["link"]]
    assert [r["link"] for r in linked] == ["100mbit-0ms"] * 2 + ["20mbit-3ms"] * 2  # the fastest link first
    for row in linked:
        rate, delay = float(row["link_rate_mbit"]), float(row["link_delay_ms"])
        assert row["link_shaping"].startswith(f"tbf {rate:g} Mbit/s each direction (kernel)")
        # tbf counts headers: the data plane's goodput sits a few percent under the nominal rate
        assert 0.75 * rate <= float(row["link_measured_mbit"]) <= 1.02 * rate
        assert float(row["link_rtt_ms"]) >= 2 * delay
        assert float(row["transfer_ms"]) >= 2 * delay
    slow = {r["variant"]: r for r in linked if r["link"] == "20mbit-3ms"}
    fast = {r["variant"]: r for r in linked if r["link"] == "100mbit-0ms"}
    for name in ("offload", "split-fp32"):
        # measured once, over the fastest link, and said so on the others
        assert slow[name]["accuracy"] == fast[name]["accuracy"]
        assert "accuracy measured through the same head and tail over link 100mbit-0ms" in slow[name]["warnings"]
    assert not [ns for ns in os.popen("ip netns list").read().split() if ns.startswith("eb-")]


def test_a_server_that_cannot_run_the_tail_and_a_bad_cut_stop_the_run_before_any_job(tmp_path, capsys):
    files = split_files(tmp_path, """
    [split]
    server = "no-such-target"
    """)
    assert main(["bench", "--suite", str(files["suite"]), "--runs-dir", str(files["runs"]), "--quiet",
                 "--link", "none"]) == 2
    err = capsys.readouterr().err
    assert "split.server" in err and "no-such-target" in err
    assert not files["runs"].exists() or not any(files["runs"].iterdir())

    server = write(tmp_path / "server.toml", """
    [target]
    name = "torch-only"
    adapter = "cpu"
    backends = ["torch"]
    """)
    files = split_files(tmp_path, f"""
    [split]
    server = "{server}"
    """)
    assert main(["bench", "--suite", str(files["suite"]), "--runs-dir", str(files["runs"]), "--quiet",
                 "--link", "none"]) == 2
    err = capsys.readouterr().err
    assert "split.server" in err and "runs torch, not onnxruntime" in err

    files = split_files(tmp_path, variants="""
    [[variants]]
    name = "split-bad"
    family = "split"
    point = "no_such_tensor"
    """)
    assert main(["bench", "--suite", str(files["suite"]), "--runs-dir", str(files["runs"]), "--quiet",
                 "--link", "none"]) == 2
    err = capsys.readouterr().err
    assert str(files["workload"]) in err and "'point'" in err and "no_such_tensor" in err
    assert not files["runs"].exists() or not any(files["runs"].iterdir())


def test_splits_prints_where_a_user_model_can_be_cut(user_model, capsys):
    assert main(["splits", "--model", str(user_model["model"])]) == 0
    out = capsys.readouterr().out.splitlines()
    # a linear classifier over 8x8 digits: one cut, the flattened input (as large as the input: no bottleneck)
    assert "[1, 8, 8]: 256 bytes per sample" in out[0]
    cuts = [line.split() for line in out[3:] if line[:1].isdigit()]
    assert cuts == [["0", "view", "Reshape", "64", "256", "128", "64", "0", "0", "650"]]
    assert main(["splits"]) == 2
    assert "--model M.onnx or --workload W" in capsys.readouterr().err


def test_without_root_namespaces_and_a_quota_are_refused_before_anything_is_built(tmp_path, capsys, monkeypatch):
    files = split_files(tmp_path, """
    [split]
    device_cpu_quota = 0.5
    [[link]]
    rate_mbit = 10
    """)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["bench", "--suite", str(files["suite"]), "--runs-dir", str(files["runs"]), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "device_cpu_quota" in err and "root" in err
    files = split_files(tmp_path, """
    [[link]]
    rate_mbit = 10
    """)
    assert main(["bench", "--suite", str(files["suite"]), "--runs-dir", str(files["runs"]), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "need root" in err and "--link none" in err
    assert not files["runs"].exists() or not any(files["runs"].iterdir())


def test_what_cannot_apply_on_this_device_is_left_out_with_a_note_not_an_error(tmp_path):
    from harness.app.runner import BenchRequest, resolve
    from harness.app.split_runs import plan_split

    files = split_files(tmp_path, """
    [split]
    device_cpu_quota = 0.5
    [[link]]
    rate_mbit = 10
    """)
    run = resolve(BenchRequest(suite=str(files["suite"])))
    # a board as the device, no server address: the split jobs are left out, the local ones run
    setup = plan_split(run, device_is_local=False, server_is_local=True)
    assert setup.links == [] and setup.device_cpu_quota is None
    assert "device_cpu_quota = 0.5" in setup.notes[0] and "left out: the device cpu is a board" in setup.notes[0]
    assert "split jobs left out" in setup.notes[1] and "--server-address" in setup.notes[1]
    # with an address: once, over the real network, and the [[link]] sweep said not to apply
    run = resolve(BenchRequest(suite=str(files["suite"]), server_address="192.0.2.7"))
    setup = plan_split(run, device_is_local=False, server_is_local=True)
    assert [(link.name, link.kind) for link in setup.links] == [("network", "network")]
    assert setup.server_address == "192.0.2.7" and "real network to 192.0.2.7" in setup.notes[-1]
    # --link none: loopback, and no cgroup (it needs root)
    run = resolve(BenchRequest(suite=str(files["suite"]), link="none"))
    setup = plan_split(run, device_is_local=True, server_is_local=True)
    assert [link.name for link in setup.links] == ["loopback"] and setup.device_cpu_quota is None
    assert "--link none: device_cpu_quota = 0.5 left out" in setup.notes[0]
