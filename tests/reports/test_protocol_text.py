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
