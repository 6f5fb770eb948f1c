"""Every parser against the real captures in tests/fixtures/power-samples (provenance in its README)."""

from __future__ import annotations

import json

import pytest
from helpers import FIXTURES

from power import ina219, rdtech, rpi_pmic, tegrastats

SAMPLES = FIXTURES / "power-samples"


def lines(name: str) -> list[str]:
    return [line for line in (SAMPLES / name).read_text().splitlines() if line and not line.startswith("#")]


# --- RDTech ---------------------------------------------------------------------------------------------

def test_real_um34c_frame_decodes_to_the_published_values():
    frame = bytes.fromhex((SAMPLES / "um34c_response_130B.hex").read_text().strip())
    expected = json.loads((SAMPLES / "um34c_response_130B.decoded.json").read_text())
    assert rdtech.frame_ok(frame) and rdtech.um34c_checksum(frame) == 0x68 == frame[129]
    reading = rdtech.decode(frame)
    assert reading.model == "UM34C"
    assert reading.voltage_v == pytest.approx(expected["volts"])
    assert reading.current_a == pytest.approx(expected["amps"])
    assert reading.power_w == pytest.approx(expected["watts"])
    assert reading.temperature_c == expected["temp_c"]
    assert reading.resistance_ohm == pytest.approx(35.2)
    assert reading.charging_mode == "DCP1.5A"


@pytest.mark.parametrize("model", ["UM24C", "UM25C", "UM34C"])
def test_frames_round_trip_at_each_models_resolution(model):
    # the rdumtool UM25C readout: 5.062 V, 0.1146 A (UM25C resolution; the others round to theirs)
    reading = rdtech.decode(rdtech.encode(model, 5.062, 0.1146))
    volt_step, amp_step = rdtech.SCALES[model]
    assert reading.voltage_v == pytest.approx(round(5.062 / volt_step) * volt_step)
    assert reading.current_a == pytest.approx(round(0.1146 / amp_step) * amp_step)


def test_scanner_resynchronises_and_counts_what_it_drops():
    frame = bytes.fromhex((SAMPLES / "um34c_response_130B.hex").read_text().strip())
    corrupt = bytearray(frame)
    corrupt[129] ^= 0xFF
    stream = b"\x00\xffnoise" + frame + frame[:60] + frame + bytes(corrupt) + frame
    scanner = rdtech.FrameScanner()
    found = scanner.feed(stream[:100]) + scanner.feed(stream[100:])
    assert found == [frame, frame, frame]
    assert scanner.dropped == 3  # the noise, the short frame, the bad checksum


def test_um25c_end_marker_is_checked():
    frame = bytearray(rdtech.encode("UM25C", 5.0, 0.5))
    assert rdtech.frame_ok(bytes(frame))
    frame[128] = 0
    assert not rdtech.frame_ok(bytes(frame))


# --- tegrastats ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, total_w", [
    ("tegrastats_agx_xavier_jp42_gtop_pr7.txt", 7.632),          # GPU+CPU+SOC+CV+VDDRQ+SYS5V, no VDD_IN
    ("tegrastats_tx2_txutils_issue3.txt", 3.140),                # VDD_IN
    ("tegrastats_orin_nano8gb_jp6_jetson_stats_issue624.txt", 17.946),  # VDD_IN 17946mW/15710mW
    ("tegrastats_agx_orin64_jetson_exporter_issue14.txt", 7.056),  # sum of rails, NC skipped
    ("tegrastats_agx_orin_jp7_jetson_stats_test06.txt", 13.907),  # three values per rail: the first
])
def test_tegrastats_captures(name, total_w):
    assert tegrastats.parse_total_w(lines(name)[0]) == pytest.approx(total_w)


def test_tegrastats_rails_ignore_memory_and_engine_fields():
    rails = tegrastats.parse_rails_mw(lines("tegrastats_agx_xavier_jp42_gtop_pr7.txt")[0])
    assert rails == {"GPU": 463, "CPU": 618, "SOC": 2936, "CV": 0, "VDDRQ": 309, "SYS5V": 3306}


def test_tegrastats_emulator_templates_of_every_generation():
    totals = [tegrastats.parse_total_w(line) for line in lines("tegrastats_emulator_template_lines.txt")]
    assert totals == pytest.approx([None, 1.038, 6.928, None, 0.933, 14.025, None, 1.383, 6.926, 7.009,
                                    0.933, 14.025])


def test_tegrastats_unverified_lines_parse_too():
    got = [tegrastats.parse_total_w(line) for line in lines("tegrastats_orin_UNVERIFIED_provenance.txt")]
    assert got[0] == pytest.approx(5.704) and got[-1] == pytest.approx(2.545)
    assert pytest.approx(5.079) in got  # the multi-line Xavier README excerpt's rail line


# --- Raspberry Pi 5 PMIC -------------------------------------------------------------------------------

def test_rpi5_pmic_capture_pairs_rails_by_name():
    rails = rpi_pmic.parse_pmic((SAMPLES / "rpi5_pmic_read_adc_zeus_test_rpi.txt").read_text())
    assert len(rails) == 12 and "EXT5V" not in rails and "BATT" not in rails
    assert rails["VDD_CORE"][2] * 1000 == pytest.approx(6.22421 * 0.861733 * 1000)
    assert sum(w for _, _, w in rails.values()) == pytest.approx(7.2398, abs=1e-4)


# --- INA219 -------------------------------------------------------------------------------------------

def test_real_space_separated_ina219_line():
    line = [x for x in lines("ina219_samples.txt") if x[0].isdigit()][0]
    assert ina219.parse_space_separated(line) == (5.080, 0.3911, 1.987)


def test_adafruit_example_blocks():
    parser = ina219.AdafruitBlockParser()
    capture = ["Bus Voltage:   1.81 V", "Shunt Voltage: 0.19 mV", "Load Voltage:  1.81 V",
               "Current:       1.90 mA", ""]  # capture (C): no Power line
    results = [parser.feed(line) for line in capture]
    assert results[:-1] == [None] * 4
    assert results[-1] == pytest.approx((1.81, 0.0019, 1.81 * 0.0019))
    block = ["Bus Voltage:   5.00 V", "Shunt Voltage: 25.00 mV", "Load Voltage:  5.03 V",
             "Current:       250.00 mA", "Power:         1250.00 mW", ""]
    assert [parser.feed(line) for line in block][-1] == pytest.approx((5.00, 0.25, 1.25))


@pytest.mark.parametrize("register, volts", [(0xFA00, 32.0), (0x7D00, 16.0), (0x2592, 4.808), (0x8, 0.004),
                                             (0x0, 0.0)])
def test_bus_register_fixtures(register, volts):
    assert ina219.bus_voltage_v(register) == pytest.approx(volts)


def test_shunt_register_and_flag_fixtures():
    assert ina219.shunt_voltage_v(0x7D0) * 1000 == pytest.approx(20.0)
    assert ina219.shunt_voltage_v(-0xFA0) * 1000 == pytest.approx(-40.0)
    assert ina219.shunt_voltage_v(0x10000 - 0xFA0) * 1000 == pytest.approx(-40.0)
    assert ina219.bus_overflow(0xFA1) and not ina219.bus_overflow(0xFA0)
    assert ina219.conversion_ready(0xA) and not ina219.conversion_ready(0x8)


def test_bridge_lines_and_clock_mapping():
    assert ina219.parse_bridge_line("1000123,10010,1530") == (1000123, 10010, 1530)
    for junk in ("", "#mark,3,100", "12x,zz", "1,2", "1,2,3,4", "-5,1,1"):
        assert ina219.parse_bridge_line(junk) is None
    clock = ina219.ClockMapper()
    # device microseconds wrap at 2^32; arrival delays vary, the smallest bounds the offset
    wrapped = [clock.unwrap(us) for us in (4294967000, 4294967290, 5, 300)]
    assert wrapped == [4294967000, 4294967290, 4294967301, 4294967596]
    for device_us, delay_ns in zip(wrapped, (900_000, 50_000, 400_000, 70_000)):
        clock.observe(device_us, 10**12 + device_us * 1000 + delay_ns)
    assert clock.to_host_ns(wrapped[-1]) == 10**12 + wrapped[-1] * 1000 + 50_000
