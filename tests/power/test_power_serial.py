"""Serial meters through a pty: the emulators speak the real wire formats at the meters' pace and the
readers take the same code path as with hardware. Faults: bad ports, garbage, silence, unplugging."""

from __future__ import annotations

import os
import time

import pytest
import serial

from harness.core.errors import ConfigError
from harness.core.measurement import Window
from power.emulators.base import Faults
from power.emulators.ina219 import Ina219Emulator
from power.emulators.rdtech import RdtechEmulator
from power.energy import window_energy_j
from power.ina219 import Ina219Source
from power.monitor import PowerMonitor
from power.rdtech import RdtechSource
from power.registry import parse_cli, power_spec
from power.source import clock_ns, open_serial


def record_window(source, seconds: float, settle_s: float = 0.3) -> tuple[int, int]:
    source.check()
    source.start()
    time.sleep(settle_s)
    start = clock_ns()
    time.sleep(seconds)
    end = clock_ns()
    time.sleep(settle_s)
    source.stop()
    return start, end


def exact_energy(emulator, start: int, end: int) -> float:
    return emulator.profile.energy_j(emulator.profile_time_s(start), emulator.profile_time_s(end))


def test_ina219_bridge_at_1khz_measures_a_known_profile_within_1_percent():
    emulator = Ina219Emulator(rate_hz=1000).start()
    source = Ina219Source(emulator.port)
    start, end = record_window(source, 3.0)
    trace = source.trace.between(start, end)
    assert 2900 <= len(trace) <= 3100 and source.dropped_frames == 0
    assert window_energy_j(trace, start, end) == pytest.approx(exact_energy(emulator, start, end), rel=0.01)


def test_ina219_device_clock_wrapping_mid_run_keeps_time_monotonic():
    emulator = Ina219Emulator(rate_hz=1000, micros_start=(1 << 32) - 500_000).start()  # wraps after 0.5 s
    source = Ina219Source(emulator.port)
    start, end = record_window(source, 1.0)
    t = source.trace.between(start, end).t_ns
    steps = (t[1:] - t[:-1]) / 1e6
    assert steps.min() > 0.9 and steps.max() < 1.1  # 1 ms apart, no jump at the wrap


def test_garbage_lines_are_dropped_and_counted():
    emulator = Ina219Emulator(rate_hz=1000, faults=Faults(garbage_every=100)).start()
    source = Ina219Source(emulator.port)
    start, end = record_window(source, 1.0)
    assert source.dropped_frames >= 10
    assert window_energy_j(source.trace.between(start, end), start, end) == pytest.approx(
        exact_energy(emulator, start, end), rel=0.01)


def test_adafruit_example_output_is_read_and_stamped_on_arrival():
    emulator = Ina219Emulator(profile="constant:1.25", adafruit=True).start()
    source = Ina219Source(emulator.port)
    record_window(source, 2.5, settle_s=0.1)
    samples = source.trace.between(0, 2**62)
    assert 1 <= len(samples) <= 2 and source.dropped_frames == 0  # one block every 2 s
    assert samples.power_w[0] == pytest.approx(1.25, abs=0.01)
    assert samples.voltage_v[0] == pytest.approx(5.0, abs=0.02)


@pytest.mark.parametrize("model", ["UM24C", "UM25C", "UM34C"])
def test_rdtech_polling_reads_every_model(model):
    emulator = RdtechEmulator(model, baud=115200).start()
    source = RdtechSource(model, emulator.port, 115200, rate_hz=10)
    start, end = record_window(source, 2.0)
    trace = source.trace.between(start, end)
    assert 18 <= len(trace) <= 23 and source.dropped_frames == 0
    assert window_energy_j(trace, start, end) == pytest.approx(exact_energy(emulator, start, end), rel=0.05)


def test_rdtech_bad_checksums_and_garbage_resynchronise():
    emulator = RdtechEmulator("UM34C", baud=115200, faults=Faults(garbage_every=4, bad_checksum_every=5)).start()
    source = RdtechSource("UM34C", emulator.port, 115200, rate_hz=20)
    record_window(source, 1.5)
    assert source.dropped_frames >= 5
    assert len(source.trace) >= 15  # the good frames still arrive
    assert all(4.9 < v < 5.1 for v in source.trace.between(0, 2**62).voltage_v)


def test_the_meters_pace_is_the_baud_rate():
    emulator = RdtechEmulator("UM25C", baud=9600).start()
    port = open_serial(emulator.port, 9600)
    sent = time.monotonic()
    port.write(b"\xf0")
    data = b""
    while len(data) < 130 and time.monotonic() - sent < 2:
        data += port.read(130 - len(data))
    assert len(data) == 130 and time.monotonic() - sent >= 130 * 10 / 9600  # 135 ms at 9600 baud


def test_a_port_that_does_not_exist_or_is_busy_is_named():
    with pytest.raises(ConfigError, match="/dev/ttyNOPE0: it does not exist.*rfcomm bind"):
        open_serial("/dev/ttyNOPE0", 9600)
    emulator = RdtechEmulator("UM25C").start()
    holder = serial.Serial(emulator.port, 9600, exclusive=True)
    with pytest.raises(ConfigError, match=f"{emulator.port}: it is busy"):
        open_serial(emulator.port, 9600)
    holder.close()


def monitor_for(source, idle_s: float = 0.3) -> PowerMonitor:
    monitor = PowerMonitor.__new__(PowerMonitor)
    monitor.spec = power_spec({"source": "none", "idle_s": idle_s}, "test")
    monitor.source = source
    monitor.idle_power_w = None
    monitor._dropped_seen = 0
    return monitor


def windows_now(n: int, seconds: float) -> list[Window]:
    windows = []
    for _ in range(n):
        start = clock_ns()
        time.sleep(seconds)
        windows.append(Window(start, clock_ns(), 100))
    return windows


def test_a_meter_that_goes_silent_mid_window_invalidates_that_job(tmp_path):
    emulator = RdtechEmulator("UM25C", baud=115200, faults=Faults(silent_after_s=1.5)).start()
    monitor = monitor_for(RdtechSource("UM25C", emulator.port, 115200, rate_hz=20), idle_s=0.2)
    monitor.check()
    monitor.start()
    columns, reasons, _ = monitor.job_columns(windows_now(2, 1.0), 1, tmp_path / "trace.npz")
    monitor.stop()
    assert any("meter silent or unplugged" in r for r in reasons), reasons
    assert any("stopped answering polls" in r for r in reasons)
    assert columns["energy_source"] == "um25c" and columns["power_samples"] > 0
    assert (tmp_path / "trace.npz").exists()


def test_an_unplugged_meter_is_a_fault_and_earlier_windows_stay_valid(tmp_path):
    emulator = Ina219Emulator(rate_hz=1000, faults=Faults(unplug_after_s=2.0)).start()
    monitor = monitor_for(Ina219Source(emulator.port), idle_s=0.2)
    monitor.check()
    monitor.start()
    before, reasons_before, _ = monitor.job_columns(windows_now(2, 0.4), 1, tmp_path / "a.npz")
    after, reasons_after, _ = monitor.job_columns(windows_now(2, 0.6), 1, tmp_path / "b.npz")
    monitor.stop()
    assert reasons_before == [] and before["energy_per_inference_mj"] > 0
    assert any("meter silent or unplugged" in r for r in reasons_after), reasons_after
    assert any("serial port" in r and "lost" in r for r in reasons_after), reasons_after


def test_power_specs_are_validated_with_clear_errors():
    with pytest.raises(ConfigError, match="unknown power source 'um25'.*did you mean 'um25c'"):
        parse_cli("um25")
    with pytest.raises(ConfigError, match="'um25c' needs port"):
        parse_cli("um25c")
    with pytest.raises(ConfigError, match="'bauds' is not a key.*did you mean 'baud'"):
        parse_cli("um25c:port=/dev/x,bauds=9600")
    spec = parse_cli("um25c:port=/dev/rfcomm0,baud=115200,rate_hz=5,strict=true")
    assert spec.options == {"port": "/dev/rfcomm0", "baud": 115200, "rate_hz": 5.0} and spec.strict


@pytest.mark.skipif(not hasattr(os, "fork") or os.geteuid() != 0, reason="drops privileges from root")
def test_a_port_the_user_may_not_read_says_which_group_to_join():
    """A forked child drops to 'nobody' and opens a root-only pty: the error names the port and the fix."""
    master, slave = os.openpty()
    port = os.ttyname(slave)
    os.chmod(port, 0o600)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: everything it needs is imported already
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            open_serial(port, 9600)
            message = "opened"
        except ConfigError as exc:
            message = str(exc)
        os.write(write_end, message.encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    message = os.read(read_end, 4096).decode()
    os.close(master)
    os.close(slave)
    assert message == f"power: serial port {port}: it is not readable: add your user to the 'dialout' group " \
                      f"(then log in again)"
