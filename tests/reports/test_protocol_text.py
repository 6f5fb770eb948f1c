"""The reports say how a run's windows were ended: the fixed rule's count and length, or the statistical
rule's precision and ceiling."""

from __future__ import annotations

from harness.core.measurement import MeasurementProtocol
from reports.captions import protocol_text
from reports.run_facts import run_facts


def test_fixed_and_statistical_runs_are_described_by_their_own_rule():
    fixed = protocol_text(MeasurementProtocol(n_windows=5, window_min_s=10.0).to_dict())
    assert fixed == "5 timed windows of >= 10.0 s and >= 100 iterations each"
    statistical = protocol_text(MeasurementProtocol(stopping="statistical", median_ci_pct=0.5, max_windows=12,
                                                    max_timed_s=20.0).to_dict())
    assert "5 timed windows" not in statistical
    assert "+-0.5%" in statistical and "at most 12 windows or 20.0 s" in statistical and "at least 3" in statistical


def test_run_facts_name_the_statistical_rule():
    info = {"measurement_protocol": MeasurementProtocol(stopping="statistical").to_dict(), "device": {},
            "host": {}, "config": {}}
    facts = dict(run_facts(info))
    assert "99% confidence interval" in facts["protocol"] and "warm-up >= 10 it" in facts["protocol"]


def test_the_results_table_shows_each_rows_rule_and_interval_when_the_run_has_them():
    import pandas as pd

    from reports.render import table_cells

    rows = pd.DataFrame([{"variant": "fp32", "latency_p50_ms": 0.25, "latency_p50_ci_pct": 0.4321,
                          "stopping_rule": "statistical"},
                         {"variant": "int8", "latency_p50_ms": 0.2, "latency_p50_ci_pct": 1.5,
                          "stopping_rule": "ceiling"}])
    headers, body = table_cells(rows)
    rule, interval = headers.index("stopped by"), headers.index("p50 99% CI ±%")
    assert interval == headers.index("p50 ms") + 1
    assert [r[rule] for r in body] == ["statistical", "ceiling"]
    assert [r[interval] for r in body] == ["0.43", "1.50"]
    # a format-5 run has neither column: the table leaves them out rather than show empty cells
    headers, _ = table_cells(rows.drop(columns=["stopping_rule", "latency_p50_ci_pct"]))
    assert "stopped by" not in headers and "p50 99% CI ±%" not in headers


def test_the_energy_banner_names_the_emulated_runs_when_others_measured():
    import pandas as pd

    from reports.run_facts import energy_banner

    rows = pd.DataFrame({"run_id": ["pi-run", "pi-run", "desk-run", "cpu-run"],
                         "energy_source": ["emulated-um25c", "emulated-um25c", "um25c", "none"]})
    banner = energy_banner(rows)
    assert banner.startswith("Energy of pi-run is EMULATED (emulated-um25c)") and "desk-run" not in banner
    assert "measured (um25c)" in banner
    assert energy_banner(rows[rows.run_id == "pi-run"]).startswith("Energy is EMULATED (emulated-um25c)")
    assert energy_banner(rows[rows.run_id != "pi-run"]) == ""
    with_no_meter = energy_banner(rows[rows.run_id != "desk-run"])  # the other run measured nothing
    assert with_no_meter.startswith("Energy of pi-run is EMULATED") and "the other runs measured no energy" in \
        with_no_meter
