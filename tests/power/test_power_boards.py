"""Board sources read through their seams: fake sysfs trees and fake commands that print real captures."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import FIXTURES

from harness.core.errors import ConfigError
from power.hwmon import HwmonSource
from power.ina3221 import Ina3221Source, read_rails
from power.rapl import RaplSource, energy_delta_uj
from power.rpi_pmic import RpiPmicSource
from power.tegrastats import TegrastatsSource

SAMPLES = FIXTURES / "power-samples"


def files(root: Path, entries: dict) -> None:
    for relative, value in entries.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{value}\n")


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def record(source, seconds: float) -> np.ndarray:
    source.check()
    source.start()
    time.sleep(seconds)
    source.stop()
    return np.asarray(source.trace.between(0, 2**62).power_w)


def test_ina3221_jetpack4_iio_tree(tmp_path):
    device = "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0/"
    files(tmp_path, {device + "rail_name_0": "POM_5V_IN", device + "in_voltage0_input": 5000,
                     device + "in_current0_input": 600, device + "in_power0_input": 3000,
                     device + "rail_name_1": "POM_5V_GPU", device + "in_voltage1_input": 5000,
                     device + "in_current1_input": 100, device + "in_power1_input": 500,
                     device + "rail_name_2": "NC", device + "in_voltage2_input": 0,
                     device + "in_current2_input": 0, device + "in_power2_input": 0})
    assert read_rails(str(tmp_path)) == {"POM_5V_IN": (5.0, 0.6, 3.0), "POM_5V_GPU": (5.0, 0.1, 0.5)}
    source = Ina3221Source(rate_hz=50, root=str(tmp_path))
    assert source.read() == (5.0, 0.6, 3.0)  # the total is the module input rail


def test_ina3221_jetpack5_hwmon_tree_sums_rails_without_a_total(tmp_path):
    device = "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3/"
    files(tmp_path, {device + "in1_label": "VDD_GPU_SOC", device + "in1_input": 5000, device + "curr1_input": 400,
                     device + "in2_label": "VDD_CPU_CV", device + "in2_input": 5000, device + "curr2_input": 100,
                     device + "in3_label": "NC", device + "in3_input": 0, device + "curr3_input": 0})
    watts = record(Ina3221Source(rate_hz=50, root=str(tmp_path)), 0.3)
    assert len(watts) >= 5 and np.allclose(watts, 2.5)


def test_hwmon_ina2xx(tmp_path):
    files(tmp_path, {"sys/class/hwmon/hwmon0/name": "k10temp", "sys/class/hwmon/hwmon1/name": "ina226",
                     "sys/class/hwmon/hwmon1/in1_input": 12000, "sys/class/hwmon/hwmon1/curr1_input": 250,
                     "sys/class/hwmon/hwmon1/power1_input": 3000000})
    assert HwmonSource(root=str(tmp_path)).read() == (12.0, 0.25, 3.0)


def test_missing_sysfs_device_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no ina2xx hwmon device"):
        HwmonSource(root=str(tmp_path)).check()
    with pytest.raises(ConfigError, match="no INA3221"):
        Ina3221Source(root=str(tmp_path)).check()


def test_rapl_counter_wraps_around():
    assert energy_delta_uj(100, 300, 1000) == 200
    assert energy_delta_uj(900, 50, 1000) == 150


def test_rapl_power_from_counter_differences(tmp_path):
    domain = tmp_path / "sys/class/powercap/intel-rapl/intel-rapl:0"
    files(tmp_path, {"sys/class/powercap/intel-rapl/intel-rapl:0/max_energy_range_uj": 262143328850,
                     "sys/class/powercap/intel-rapl/intel-rapl:0:0/energy_uj": 5,  # nested: not summed
                     "sys/class/powercap/intel-rapl/intel-rapl:0/energy_uj": 262143000000})
    source = RaplSource(root=str(tmp_path))
    assert np.isnan(source.read()[2])  # the first read starts the counter
    t0 = source.last[0]
    (domain / "energy_uj").write_text("671150\n")  # wrapped: 328850 + 671150 uJ = 1.0 J
    watts = source.read()[2]
    elapsed_s = (source.last[0] - t0) / 1e9
    assert watts == pytest.approx(1.0 / elapsed_s)


def test_rpi5_pmic_through_a_fake_vcgencmd(tmp_path):
    fake = script(tmp_path / "vcgencmd", f"cat {SAMPLES / 'rpi5_pmic_read_adc_zeus_test_rpi.txt'}\n")
    watts = record(RpiPmicSource(rate_hz=20, command=str(fake)), 0.5)
    assert len(watts) >= 3 and np.allclose(watts, 7.2398, atol=1e-4)


def test_tegrastats_source_reads_a_streaming_tool(tmp_path):
    line = (SAMPLES / "tegrastats_orin_nano8gb_jp6_jetson_stats_issue624.txt").read_text().strip()
    fake = script(tmp_path / "tegrastats", f'while true; do echo "{line}"; sleep 0.05; done\n')
    watts = record(TegrastatsSource(rate_hz=20, command=str(fake)), 0.6)
    assert len(watts) >= 5 and np.allclose(watts, 17.946)


def test_missing_tegrastats_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="tegrastats ships with JetPack"):
        TegrastatsSource(command=str(tmp_path / "nope")).check()


def test_pynq_pmbus_sums_the_chosen_rails_through_pynqs_sensor_api():
    from types import SimpleNamespace

    from harness.core.errors import ConfigError
    from power.pynq_pmbus import PynqPmbusSource

    def rail(watts):
        return SimpleNamespace(power=SimpleNamespace(value=watts) if watts is not None else None)

    rails = {"PSINT_FP": rail(0.75), "PSINT_LP": rail(0.25), "VCCAUX": rail(None), "12V": rail(6.5)}
    every = record(PynqPmbusSource(rate_hz=20, get_rails=lambda: rails), 0.3)
    assert len(every) >= 3 and np.allclose(every, 7.5)
    chosen = PynqPmbusSource(rate_hz=20, rails="PSINT_FP, PSINT_LP", get_rails=lambda: rails)
    assert chosen.read()[2] == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="no rail.*VCCINT; the board has 12V"):
        PynqPmbusSource(rails="VCCINT", get_rails=lambda: rails).check()
