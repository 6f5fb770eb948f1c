"""The parts of the board targets that need no board: FINN's data packing against FINN's documented
vectors, the FINN driver's control flow against a fake overlay, board probes against fake sysfs trees
and the tools' output formats, the agent bundle, and remote quoting."""

from __future__ import annotations

import importlib.util
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from targets.agent.board_facts import BoardIO, jetson_facts, parse_nvpmodel, parse_throttled, rpi_facts
from targets.backends.finn_backend import FinnBackend
from targets.fpga.packing import pack_innermost, unpack_innermost


# -- FINN packing: the examples in FINN's data_packing docstrings ------------------------------------
def test_packing_matches_finns_documented_vectors():
    # array2hexstring([1, 1, 1, 0], BINARY, 8) = "0x0e"; with reverse=True: "0x07"
    assert pack_innermost([1, 1, 1, 0], 1, reverse_inner=False, reverse_endian=False).tolist() == [0x0E]
    assert pack_innermost([1, 1, 1, 0], 1, reverse_inner=True, reverse_endian=False).tolist() == [0x07]
    # pack_innermost_dim_as_hex_string([[[3, 3], [3, 3]], [[1, 3], [3, 1]]], UINT2, 8) = [[0f, 0f], [07, 0d]]
    b = np.array([[[3, 3], [3, 3]], [[1, 3], [3, 1]]])
    assert pack_innermost(b, 2, reverse_inner=False, reverse_endian=False)[..., 0].tolist() == \
        [[0x0F, 0x0F], [0x07, 0x0D]]


def test_packing_round_trips_signed_bipolar_and_multi_byte_rows():
    rng = np.random.default_rng(0)
    x = rng.integers(-8, 8, (2, 3, 13))
    packed = pack_innermost(x, 4, "int")
    assert packed.shape == (2, 3, 7) and packed.dtype == np.uint8   # 52 bits -> 7 bytes
    assert np.array_equal(unpack_innermost(packed, 4, 13, "int"), x)
    bipolar = rng.choice([-1, 1], (5, 9))
    assert np.array_equal(unpack_innermost(pack_innermost(bipolar, 1, "bipolar"), 1, 9, "bipolar"), bipolar)
    # little-endian bytes, element 0 in the lowest bits: 0x0201 for UINT8 [1, 2]
    assert pack_innermost([1, 2], 8).tolist() == [1, 2]
    assert pack_innermost([1, 2], 8, reverse_endian=False).tolist() == [2, 1]
    with pytest.raises(ValueError, match="outside uint2"):
        pack_innermost([4], 2)


# -- the FINN driver's control flow against a fake overlay ------------------------------------------
class FakeBuffer(np.ndarray):
    device_address = 0x1_2345_6000

    def flush(self):
        self.flushed = True

    def invalidate(self):
        self.invalidated = True


class FakeDma:
    def __init__(self, accelerator, role):
        self.accelerator, self.role, self.registers = accelerator, role, {}

    def write(self, offset, value):
        self.registers[offset] = value
        if offset == 0x00 and value == 1:
            self.accelerator.started.append(self.role)

    def read(self, offset):
        return 0x2 if self.accelerator.run_if_ready() else 0x0


class FakeAccelerator:
    """Stands in for a FINN overlay: unpacks the input bytes, 'classifies' by the brightest pixel's row,
    and packs the answer, so the test checks the data path end to end."""

    def __init__(self):
        self.started, self.buffers = [], []
        self.idma0, self.odma0 = FakeDma(self, "in"), FakeDma(self, "out")

    def allocate(self, shape, dtype):
        buf = np.zeros(shape, dtype).view(FakeBuffer)
        self.buffers.append(buf)
        return buf

    def run_if_ready(self):
        if self.started[-2:] != ["out", "in"]:  # FINN starts the output DMA first
            return False
        ibuf, obuf = self.buffers
        pixels = unpack_innermost(np.asarray(ibuf), 8, 1).reshape(-1, 8, 8)
        obuf[...] = pack_innermost(pixels.max(axis=2).argmax(axis=1).reshape(-1, 1, 1), 8)
        return True


def test_finn_backend_folds_packs_runs_the_iodmas_and_unpacks():
    accelerator = FakeAccelerator()
    backend = FinnBackend(1, {}, overlay_factory=lambda bitfile: accelerator, allocate=accelerator.allocate)
    params = {"idt": "UINT8", "odt": "UINT8", "ishape_normal": [1, 8, 8, 1], "ishape_folded": [1, 8, 8, 1, 1],
              "oshape_normal": [1, 1], "oshape_folded": [1, 1, 1], "input_scale": 255.0, "bitfile": "a.bit"}
    backend.load({"files": {"bitfile": "a.bit"}, "variant_params": params})
    x = np.zeros((1, 1, 8, 8), np.float32)
    x[0, 0, 5, 2] = 1.0  # brightest pixel in row 5
    assert backend.predict(x).tolist() == [[5.0]]
    assert accelerator.started == ["out", "in"]
    assert accelerator.odma0.registers[0x10] == FakeBuffer.device_address & 0xFFFFFFFF
    assert accelerator.odma0.registers[0x14] == FakeBuffer.device_address >> 32
    assert accelerator.idma0.registers[0x1C] == 1  # the batch
    call, args = backend.runner(x)
    call(*args)
    assert accelerator.started == ["out", "in", "out", "in"]


def test_finn_backend_names_missing_driver_settings():
    backend = FinnBackend(1, {}, overlay_factory=lambda b: None, allocate=None)
    with pytest.raises(ValueError, match="lacks driver settings: .*oshape_folded"):
        backend.load({"files": {"bitfile": "a.bit"}, "variant_params": {"idt": "UINT8", "odt": "UINT8",
                      "ishape_normal": [1], "ishape_folded": [1], "oshape_normal": [1]}})


# -- board probes: fake sysfs trees and the tools' output formats -----------------------------------
class RecordedIO(BoardIO):
    def __init__(self, root, outputs):
        super().__init__(str(root))
        self.outputs = outputs

    def command(self, argv):
        return self.outputs.get(" ".join(argv))


def fake_sysfs(root, model):
    for cpu, (gov, cur) in enumerate([("ondemand", 1500000), ("performance", 2400000)]):
        folder = root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq"
        folder.mkdir(parents=True)
        (folder / "scaling_governor").write_text(gov + "\n")
        (folder / "scaling_cur_freq").write_text(f"{cur}\n")
        (folder / "scaling_max_freq").write_text("2400000\n")
    zone = root / "sys/class/thermal/thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "temp").write_text("48312\n")
    (zone / "type").write_text("cpu-thermal\n")
    (root / "proc/device-tree").mkdir(parents=True)
    (root / "proc/device-tree/model").write_bytes(model.encode() + b"\x00")


def test_rpi_facts_from_a_fake_sysfs_and_vcgencmd(tmp_path):
    fake_sysfs(tmp_path, "Raspberry Pi 5 Model B Rev 1.0")
    facts = rpi_facts(RecordedIO(tmp_path, {"vcgencmd get_throttled": "throttled=0x50005",
                                            "vcgencmd measure_temp": "temp=48.3'C",
                                            "vcgencmd measure_clock arm": "frequency(0)=2400033792"}))
    assert facts["model"] == "Raspberry Pi 5 Model B Rev 1.0"
    assert facts["cpufreq"]["cpu1"] == {"governor": "performance", "cur_khz": 2400000, "max_khz": 2400000}
    assert facts["temperatures_c"] == {"cpu-thermal": 48.312}
    assert facts["throttled"]["flags"] == ["under-voltage now", "throttled now", "under-voltage occurred",
                                           "throttling occurred"]
    assert facts["soc_temp_c"] == 48.3 and facts["arm_hz"] == 2400033792


def test_jetson_facts_and_missing_tools(tmp_path):
    fake_sysfs(tmp_path, "NVIDIA Jetson AGX Orin Developer Kit")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nv_tegra_release").write_text(
        "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64\n")
    gpu = tmp_path / "sys/class/devfreq/17000000.gpu"
    gpu.mkdir(parents=True)
    (gpu / "cur_freq").write_text("1300500000\n")
    (gpu / "max_freq").write_text("1300500000\n")
    facts = jetson_facts(RecordedIO(tmp_path, {"nvpmodel -q": "NV Power Mode: MAXN\n0"}))
    assert facts["l4t"] == "36.4.3" and facts["nvpmodel"] == {"name": "MAXN", "id": 0}
    assert facts["gpu_devfreq"]["17000000.gpu"]["cur_hz"] == 1300500000
    bare = jetson_facts(RecordedIO(tmp_path / "nothing", {}))  # not a Jetson: facts missing, no error
    assert bare["nvpmodel"] is None and bare["l4t"] is None and bare["cpufreq"] == {}
    assert parse_throttled("garbage") is None and parse_nvpmodel("") is None


# -- the agent bundle and remote quoting ------------------------------------------------------------
def test_agent_bundle_is_deterministic_and_self_contained(tmp_path):
    import subprocess
    import sys

    from targets.bundle import build_bundle, bundle_name

    first, second = build_bundle(), build_bundle()
    assert first == second and bundle_name(first) == bundle_name(second)
    path = tmp_path / bundle_name(first)
    path.write_bytes(first)
    assert "targets/agent/loop.py" in zipfile.ZipFile(path).namelist()
    # run from an empty directory with no PYTHONPATH: everything the agent imports is inside
    done = subprocess.run([sys.executable, "-I", str(path), "--board", "rpi", "--smoke",
                           "onnxruntime,litert,tflite-runtime,tensorrt"], input=b"", cwd=tmp_path,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    hello = json.loads(done.stdout.splitlines()[0])
    assert hello["type"] == "hello" and hello["facts"]["agent"].startswith(str(path))
    smoke = hello["facts"]["smoke"]  # one real inference per runtime, from the models inside the bundle
    assert smoke["onnxruntime"]["ok"] and "CPUExecutionProvider" in smoke["onnxruntime"]["providers"]
    assert smoke["litert"]["ok"]
    assert not smoke["tensorrt"]["ok"] and "not installed" in smoke["tensorrt"]["reason"]
    if importlib.util.find_spec("tflite_runtime") is None:
        assert not smoke["tflite-runtime"]["ok"]


def test_remote_arguments_are_quoted_for_the_remote_shell():
    from targets.ssh import SshLink, SshSettings

    link = SshLink(SshSettings(host="board"), "t.toml")
    command = link.command(["python3", "-c", "print(1); import os", "a b; rm -rf /", "~/venv/bin/python"])
    assert command[-1] == "python3 -c 'print(1); import os' 'a b; rm -rf /' ~/venv/bin/python"
    assert "StrictHostKeyChecking=yes" in command and "BatchMode=yes" in command


class FakeTensor:
    def __init__(self, dims, fix_point):
        self.dims, self.fix_point = dims, fix_point

    def get_attr(self, name):
        assert name == "fix_point"
        return self.fix_point


class FakeDpuRunner:
    """A DPU 'model' that outputs the sum of each input row at fix point 2."""

    def __init__(self):
        self.jobs = []

    def get_input_tensors(self):
        return [FakeTensor((1, 8, 8, 1), 6)]

    def get_output_tensors(self):
        return [FakeTensor((1, 8), 2)]

    def execute_async(self, inputs, outputs):
        assert inputs[0].dtype == np.int8 and inputs[0].shape == (1, 8, 8, 1)
        outputs[0][...] = np.clip(inputs[0].astype(np.int32).sum(axis=(2, 3)) // 16, -128, 127)
        self.jobs.append(len(self.jobs))
        return self.jobs[-1]

    def wait(self, job):
        assert job == self.jobs[-1]


def test_dpu_backend_quantizes_at_the_fix_point_and_runs_the_vart_runner():
    from targets.backends.dpu_backend import DpuBackend

    loaded = []

    class Overlay:
        runner = FakeDpuRunner()

        def __init__(self, bitfile):
            loaded.append(bitfile)

        def load_model(self, xmodel):
            loaded.append(xmodel)

    backend = DpuBackend(1, {}, overlay_factory=Overlay)
    backend.load({"files": {"bitfile": "dpu.bit", "xmodel": "m.xmodel", "qonnx": "m.onnx"}})
    assert loaded == ["dpu.bit", "m.xmodel"] and backend.fixed_batch == 1
    x = np.zeros((1, 1, 8, 8), np.float32)
    x[0, 0, 3, :] = 0.5                          # 0.5 * 2**6 = 32 per pixel, 8 pixels in row 3
    assert backend.quantize(x)[0, 3, 0, 0] == 32 and backend.quantize(x * 10).max() == 127
    out = backend.predict(x)
    assert out[0, 3] == pytest.approx(16 * 0.25)  # 256 // 16 = 16 at fix point 2
    call, args = backend.runner(x)
    call(*args)
    assert len(Overlay.runner.jobs) == 2


@pytest.mark.parametrize("text, message", [
    ('host = "pi"\nhots = "x"', "'target.hots' is not a known key"),
    ('user = "pi"', "key 'target.host' is required"),
    ('host = "pi"\nstrict_host_key_checking = "no"', "accepted: yes, accept-new"),
    ('host = "pi"\npin_cpus = "2;reboot"', "a CPU list as taskset takes it"),
])
def test_board_target_files_name_the_bad_key(tmp_path, text, message):
    from harness.core.errors import ConfigError
    from targets.rpi import RpiTarget
    from targets.spec import find_target

    path = tmp_path / "board.toml"
    path.write_text(f'[target]\nadapter = "rpi"\nbackends = ["onnxruntime"]\n{text}\n')
    with pytest.raises(ConfigError) as error:
        RpiTarget(find_target(str(path))).open()
    assert str(path) in str(error.value) and message in str(error.value)


def test_clock_map_finds_a_boards_offset_within_its_uncertainty():
    """A 'board' whose clock runs 5 s ahead, answering after an uneven delay: the shortest round trip
    bounds the error, and board windows land on the host's clock."""
    import time

    from harness.app.rows import add_energy
    from harness.core.measurement import Window
    from targets.agent.wire import ClockReply
    from targets.agent_driver import ClockMap
    from targets.base import Measurement

    ahead_ns = 5_000_000_000

    class Board:
        def __init__(self):
            self.delays = iter([0.004, 0.0005, 0.003] * 6)

        def send(self, message):
            self.pending = message

        def messages(self, timeout_s):
            time.sleep(next(self.delays) / 2)
            t = time.monotonic_ns() + ahead_ns
            time.sleep(0.0002)
            yield ClockReply(t)

    clock = ClockMap.measure(Board(), pings=6)
    assert abs(clock.offset_ns - ahead_ns) <= clock.uncertainty_ns
    assert clock.uncertainty_ns < 2_000_000  # the 0.5 ms pings win

    class Monitor:
        def job_columns(self, windows, batch_size, path):
            self.windows = windows
            return {"energy_source": "meter"}, [], []

    class Store:
        dir = Path("/nonexistent")

    board_windows = [Window(ahead_ns + 1_000, ahead_ns + 2_000_000_000, 10)]
    m = Measurement(1.0, 1, 1, np.zeros(10, np.int64), board_windows, 0, 0.0, 1.0, {},
                    clock_offset_ns=clock.offset_ns, clock_uncertainty_ns=clock.uncertainty_ns)
    monitor, row = Monitor(), {}
    from harness.core.jobs import Job
    add_energy(row, monitor, Job("w", "v", "baseline", "fp32", "rpi", "onnxruntime", 1, 1), m, Store())
    assert abs(monitor.windows[0].start_ns - 1_000) <= clock.uncertainty_ns  # on the host's clock now
    assert "clock mapping uncertain" not in row.get("warnings", "")
    m.clock_uncertainty_ns = 50_000_000  # a slow link: 50 ms on a 2 s window
    add_energy(row, monitor, Job("w", "v", "baseline", "fp32", "rpi", "onnxruntime", 1, 1), m, Store())
    assert "clock mapping uncertain by 50.00 ms" in row["warnings"]
