"""One plug-in mechanism for the four kinds (targets, backends, power sources, variant families): entry
points, so a separate distribution adds any of them. tests/plugin_dist is such a distribution; it is
installed into a temporary directory and a whole run uses one of each of its plug-ins."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
from helpers import TESTS_DIR, TINY_PROTOCOL, tiny_workload_toml, write

from harness.core.errors import ConfigError

DEMO = "edgebench-plugin-demo 0.1"


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory) -> Path:
    """tests/plugin_dist installed (pip, no network) into a directory of its own."""
    tmp = tmp_path_factory.mktemp("plugin")
    source = shutil.copytree(TESTS_DIR / "plugin_dist", tmp / "src")  # the build writes next to its sources
    site = tmp / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(source)], check=True, capture_output=True)
    assert (site / "edgebench_demo_plugin.py").exists()
    return site


def edgebench(args: list[str], site: Path, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m harness ...` in a fresh process that sees the plug-in distribution (and so does the cpu
    target's agent, which inherits the environment)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_run_uses_a_plugin_target_backend_power_source_and_variant_family(demo_site, tmp_path):
    workload = write(tmp_path / "tiny.toml", tiny_workload_toml() + """
    [[variants]]
    name = "fp16"
    family = "demo-fp16"
    """)
    suite = write(tmp_path / "suite.toml", f"""
    [suite]
    name = "tiny"
    workloads = ["{workload}"]
    {TINY_PROTOCOL}
    [matrix]
    backends = ["demo-ort"]
    threads = [1]
    batch_sizes = [1]
    """)
    target = write(tmp_path / "demo.toml", """
    [target]
    name = "demo"
    adapter = "demo-cpu"
    backends = ["demo-ort"]
    [power]
    source = "emulated-cpu-load"
    rate_hz = 50.0
    idle_s = 0.2
    """)
    runs = tmp_path / "runs"
    done = edgebench(["bench", "--target", str(target), "--suite", str(suite), "--runs-dir", str(runs),
                      "--quiet"], demo_site, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = (runs / "latest").resolve()
    with open(run_dir / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["variant"], r["family"], r["precision"], r["backend"], r["status"]) for r in rows] == [
        ("fp32", "baseline", "fp32", "demo-ort", "ok"), ("fp16", "demo-fp16", "fp16", "demo-ort", "ok")]
    for row in rows:
        assert float(row["accuracy"]) > 0.85  # the fp16 artifact runs the same trained network
        assert json.loads(row["backend_info"])["plugin"] == "edgebench-plugin-demo"
        # the plug-in's power source, labelled emulated (it models power from CPU load; not a meter)
        assert row["energy_source"] == "emulated-cpu-load"
        assert float(row["energy_per_inference_mj"]) > 0 and int(row["power_samples"]) >= 20
    assert int(rows[1]["model_bytes"]) < int(rows[0]["model_bytes"])  # fp16 weights: a real new artifact
    info = json.loads((run_dir / "run.json").read_text())
    assert info["device"]["adapter_plugin"] == "edgebench-plugin-demo"  # the plug-in target ran the jobs
    assert info["power"][0]["emulated"] is True
    assert "Energy is EMULATED (emulated-cpu-load)" in (run_dir / "report.html").read_text()


def test_list_says_which_distribution_each_plugin_came_from(demo_site, tmp_path):
    done = edgebench(["list"], demo_site, tmp_path)
    assert done.returncode == 0, done.stderr
    sections, kind = {}, None
    for line in done.stdout.splitlines():
        if line.startswith("  "):
            name, origin = line.split()[0], " ".join(line.split()[1:3])
            sections[kind][name] = origin
        else:
            kind = line.split(":")[0]
            sections[kind] = {}
    assert sections["adapters"]["demo-cpu"] == DEMO and sections["adapters"]["cpu"] == "edgebench 0.1.0"
    assert sections["backends"]["demo-ort"] == DEMO and sections["backends"]["onnxruntime"] == "edgebench 0.1.0"
    assert sections["power"]["emulated-cpu-load"] == DEMO and sections["power"]["um25c"] == "edgebench 0.1.0"
    assert sections["families"]["demo-fp16"] == DEMO and sections["families"]["quantize"] == "edgebench 0.1.0"


# --- in-process: broken and conflicting plug-ins, the board side ------------------------------------------

def fake_distribution(root: Path, name: str, entry_points: str, module: str = "", code: str = "") -> None:
    """An installed distribution as importlib.metadata sees it: a .dist-info folder (and its module)."""
    info = root / f"{name.replace('-', '_')}-0.2.dist-info"
    write(info / "METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.2\n")
    write(info / "entry_points.txt", entry_points)
    if module:
        write(root / f"{module}.py", code)


BROKEN = """
[edgebench.targets]
broken = broken_plugin:Target
[edgebench.backends]
broken = broken_plugin:Backend
[edgebench.power_sources]
broken = broken_plugin:Source
[edgebench.variants]
broken = broken_plugin
"""


def _load_adapter(name):
    from targets.registry import load_adapter
    return load_adapter(name, "t.toml")


def _backend_ref(name):
    from targets.backends import backend_ref
    return backend_ref(name, "t.toml")


def _power_spec(name):
    from power.registry import power_spec
    return power_spec({"source": name}, "t.toml: [power]")


def _family(name):
    from workloads.variants import load_family
    return load_family(name, "t.toml")


@pytest.mark.parametrize("load, kind", [(_load_adapter, "target adapter"), (_backend_ref, "backend"),
                                        (_power_spec, "power source"), (_family, "variant family")])
def test_a_plugin_that_fails_to_import_is_named_with_its_distribution(tmp_path, monkeypatch, load, kind):
    fake_distribution(tmp_path, "edgebench-broken", BROKEN, "broken_plugin", "import no_such_runtime_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError) as caught:
        load("broken")
    message = str(caught.value)
    assert message.startswith("t.toml")
    assert f"{kind} 'broken'" in message and "from edgebench-broken 0.2" in message
    assert "failed to import: ModuleNotFoundError: No module named 'no_such_runtime_xyz'" in message


@pytest.mark.parametrize("load, kind, close", [(_load_adapter, "target adapter", "cpu"),
                                               (_backend_ref, "backend", "onnxruntime"),
                                               (_power_spec, "power source", "um25c"),
                                               (_family, "variant family", "quantize")])
def test_unknown_names_list_the_known_ones(load, kind, close):
    with pytest.raises(ConfigError, match=f"t.toml.*unknown {kind} '{close}x'.*did you mean '{close}'"):
        load(close + "x")


def test_two_distributions_declaring_one_name_is_an_error_naming_both(tmp_path, monkeypatch):
    from targets.backends import backend_ref

    for dist in ("edgebench-one", "edgebench-two"):
        fake_distribution(tmp_path / dist, dist,
                          "[edgebench.backends]\ntwin = targets.backends.ort_backend:OrtBackend\n")
        monkeypatch.syspath_prepend(str(tmp_path / dist))
    with pytest.raises(ConfigError, match="backend 'twin' .*from edgebench-.* 0.2.* also declared by "
                                          "edgebench-.* 0.2; uninstall one"):
        backend_ref("twin")


def test_a_plugin_power_source_must_have_the_source_shape(tmp_path, monkeypatch):
    fake_distribution(tmp_path, "edgebench-odd", "[edgebench.power_sources]\nodd = odd_plugin:Odd\n"
                      "slow = odd_plugin:NoRate\n", "odd_plugin", """
    from power.polling import PollingSource

    class Odd:
        pass

    class NoRate(PollingSource):
        DEFAULTS = {"port": None}
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="power source 'odd' .*from edgebench-odd 0.2.* is not a power source: "
                                          "it needs DEFAULTS"):
        _power_spec("odd")
    with pytest.raises(ConfigError, match="power source 'slow' .*DEFAULTS has no 'rate_hz'"):
        _power_spec("slow")


def test_a_plugin_target_or_backend_must_subclass_its_kind(tmp_path, monkeypatch):
    """A BoardSession registered as a target (an easy slip) or a backend that is no Backend is named in
    a one-line error, not a traceback from deep in the run."""
    from targets.backends import backend_ref
    from targets.registry import load_adapter

    fake_distribution(tmp_path, "edgebench-slip", "[edgebench.targets]\nslip = slip_plugin:SlipSession\n"
                      "[edgebench.backends]\nslip = slip_plugin:NotABackend\n", "slip_plugin", """
    from targets.board import BoardSession

    class SlipSession(BoardSession):
        board_kind = "slip"

    class NotABackend:
        pass
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="target adapter 'slip' .*edgebench-slip.* is not a targets.base.Target "
                                          "subclass"):
        load_adapter("slip", "t.toml")
    with pytest.raises(ConfigError, match="backend 'slip' .*is not a targets.backends.base.Backend subclass"):
        backend_ref("slip")


def test_an_emulated_plugin_source_is_labelled_so_in_its_rows(tmp_path, monkeypatch):
    """Reports and rows tell emulation by the energy_source name: an emulated source gets the prefix."""
    from power.spec import make_source

    fake_distribution(tmp_path, "edgebench-fake", "[edgebench.power_sources]\nsine = fake_plugin:Sine\n",
                      "fake_plugin", """
    from power.polling import PollingSource

    class Sine(PollingSource):
        emulated = True
        DEFAULTS = {"rate_hz": 10.0}

        def read(self):
            return float("nan"), float("nan"), 1.0
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert make_source(_power_spec("sine")).name == "emulated-sine"


def test_a_board_side_agent_creates_the_source_from_the_spec_without_entry_points(monkeypatch):
    """The host resolves the source's import reference into the spec; a board has no package metadata."""
    import power.registry
    from power.hwmon import HwmonSource
    from power.registry import power_spec
    from power.spec import PowerSpec, make_source

    spec = power_spec({"source": "hwmon", "rate_hz": 10, "root": "/nonexistent"}, "t.toml: [power]")
    assert (spec.source_ref, spec.on_device) == ("power.hwmon:HwmonSource", True)
    assert power_spec({"source": "um25c", "port": "/dev/x"}, "w").on_device is False

    def no_metadata(group):
        raise AssertionError("a board-side agent read entry points")

    monkeypatch.setattr(power.registry, "registry", no_metadata)
    monkeypatch.setattr(power.registry, "find", no_metadata)
    source = make_source(PowerSpec(**asdict(spec)))  # as the agent gets it: a dict over the wire
    assert isinstance(source, HwmonSource) and source.rate_hz == 10.0 and source.root == "/nonexistent"


def test_the_registries_keep_their_public_names():
    from power.registry import board_side_refs, names
    from targets.backends import BACKENDS, backend_ref
    from workloads.variants import FAMILIES
    from workloads.variants.fingerprint import family_code

    assert BACKENDS["onnxruntime"] == backend_ref("onnxruntime") == "targets.backends.ort_backend:OrtBackend"
    assert "onnxruntime" in BACKENDS and "nope" not in BACKENDS
    assert names()[0] == "none" and {"um25c", "emulated-ina219", "emulated-um34c"} <= set(names())
    assert set(board_side_refs()) == {"power.tegrastats:TegrastatsSource", "power.ina3221:Ina3221Source",
                                      "power.hwmon:HwmonSource", "power.rapl:RaplSource",
                                      "power.rpi_pmic:RpiPmicSource", "power.pynq_pmbus:PynqPmbusSource"}
    assert {"baseline", "quantize", "early_exit"} <= set(FAMILIES) and "nope" not in FAMILIES
    assert FAMILIES["baseline"].precision({}) == "fp32"
    assert "def build(" in family_code("quantize")
