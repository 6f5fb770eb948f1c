"""The target registry (entry points, so a separate package can add a target) and target files."""

from __future__ import annotations

import pytest
from helpers import write

from harness.core.errors import ConfigError
from targets.registry import adapters, load_adapter
from targets.spec import find_target


def test_cpu_is_registered_through_its_entry_point():
    from targets.cpu import CpuTarget

    assert load_adapter("cpu") is CpuTarget


def test_a_separate_package_adds_a_target_by_entry_point(tmp_path, monkeypatch):
    """An installed distribution declares `[edgebench.targets] myboard = ...`: no edgebench change."""
    write(tmp_path / "myboard_plugin.py", """
    from targets.cpu import CpuTarget

    class MyBoard(CpuTarget):
        pass
    """)
    write(tmp_path / "myboard_plugin-1.0.dist-info" / "METADATA",
          "Metadata-Version: 2.1\nName: myboard-plugin\nVersion: 1.0\n")
    write(tmp_path / "myboard_plugin-1.0.dist-info" / "entry_points.txt",
          "[edgebench.targets]\nmyboard = myboard_plugin:MyBoard\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "myboard" in adapters()
    assert load_adapter("myboard").__name__ == "MyBoard"
    board = write(tmp_path / "board.toml", '[target]\nname = "bench-board"\nadapter = "myboard"\n')
    assert find_target(str(board)).adapter == "myboard"


def test_unknown_adapter_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown target adapter 'cpux'.*did you mean 'cpu'"):
        load_adapter("cpux", "board.toml")


def test_target_file_rejects_unknown_backend_and_stray_options(tmp_path):
    bad = write(tmp_path / "t.toml", '[target]\nbackends = ["onnxruntime", "tensorflow"]\n')
    with pytest.raises(ConfigError, match="unknown backend 'tensorflow'"):
        find_target(str(bad))
    stray = write(tmp_path / "u.toml", '[target]\nbackends = ["onnxruntime"]\n[backends.torch]\n')
    with pytest.raises(ConfigError, match="which \\[target\\] backends does not list"):
        find_target(str(stray))


def test_the_agent_stops_mid_job_when_its_host_goes_away(tiny_files, tmp_path):
    """Ctrl-C on the host or a dropped SSH link closes the agent's stdin: it must not go on measuring
    (on a board it would load the CPU under the next run)."""
    import time

    from harness.core.jobs import Job
    from harness.core.measurement import MeasurementProtocol
    from targets.agent.wire import Progress
    from targets.agent_driver import job_request
    from targets.cpu import LocalAgent
    from workloads.build import build_base, build_variants
    from workloads.spec import load_workload

    base = build_base(load_workload(tiny_files["workload"]))
    artifact = build_variants(base)["fp32"]
    job = Job("tiny-digits", "fp32", "baseline", "fp32", "cpu", "onnxruntime", 1, 1)
    long_protocol = MeasurementProtocol(warmup_min_iterations=1, warmup_min_s=0.0, n_windows=5, window_min_s=10.0,
                                     window_min_iterations=1)
    with LocalAgent(1) as agent:
        agent.client.hello()
        agent.client.send(job_request(job, artifact.to_dict(), long_protocol, {}, str(tmp_path / "lat.npy")))
        phases = (m.phase for m in agent.client.messages(60) if isinstance(m, Progress))
        while next(phases) != "warmup":  # the job is now in its 50 s of timing
            pass
        agent.process.stdin.close()
        started = time.monotonic()
        agent.process.wait(timeout=10)
        assert time.monotonic() - started < 5 and agent.process.returncode == 0
