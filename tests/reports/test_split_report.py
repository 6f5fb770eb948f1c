"""The split-computing part of the report: crossovers computed on the measured bandwidth and interpolated in
1/bandwidth (checked against a hand computation), the section's tables, figures and captions, escaping,
and no section for a run without split jobs."""

from __future__ import annotations

import base64
import re

import pandas as pd
import pytest
from helpers import fake_run

from harness.core.schema import COLUMNS
from reports.crossover import crossover_points, crossover_table
from reports.report import write_report

# Three link settings, nominal 1 / 10 / 100 Mbit/s, each measured at 80 % of that (the median over its
# jobs: the rows' own probes scatter around it). Latencies are straight lines in 1/B (B measured, Mbit/s):
#   local (device, fp32):  20                      offload:  2 + 48 / B
#   split-a:                8 +  4 / B             split-b:  5 + 10 / B
# so on the measured bandwidths 0.8, 8 and 80:
#   split-a = split-b     at 8 + 4/B = 5 + 10/B                ->  B = 2
#   split-b = offload     at 5 + 10/B = 2 + 48/B               ->  B = 38 / 3 = 12.667
#   offload = local       at 2 + 48/B = 20                     ->  B = 8 / 3 (offload is not the fastest there)
# lowest: split-a on [0.8, 2), split-b on [2, 12.667), offload on [12.667, 80]; local never.
# (Interpolating in B instead would put the split-b / offload crossover at 37.5 Mbit/s; on the nominal
# rates at 15.8.)
NOMINAL_MBIT = (1.0, 10.0, 100.0)
MEASURED_MBIT = (0.8, 8.0, 80.0)
LOCAL_MS = 20.0
LINES = {"offload": ("offload", 2.0, 48.0), "split-a": ("split", 8.0, 4.0), "split-b": ("split", 5.0, 10.0)}
HOSTILE_TENSOR = "<img src=x onerror=alert(1)>"
SHAPING = "tbf {rate} Mbit/s both directions (kernel); delay 5 ms each way (data plane) <b>"

SPLIT_COLUMNS = ("strategy", "link", "split_point", "payload_dtype", "payload_bytes", "head_ms", "serialize_ms",
                 "transfer_ms", "tail_ms", "link_rate_mbit", "link_delay_ms", "link_measured_mbit", "link_rtt_ms",
                 "link_shaping", "device_cpu_quota", "head_macs", "tail_macs", "head_bytes", "input_bytes")

ANALYSIS = {"input_bytes": 1024, "input_bytes_uint8": 256, "candidates": [
    {"index": 0, "tensor": "conv1", "op": "Conv", "shape": [8, 16, 16], "payload_bytes_fp32": 8192,
     "payload_bytes_fp16": 4096, "payload_bytes_int8": 2048, "head_macs": 18432, "tail_macs": 81568,
     "head_params": 80, "natural_bottleneck": False},
    # a '$' in a user's tensor name would start matplotlib's mathtext
    {"index": 1, "tensor": "pool$1", "op": "MaxPool", "shape": [8, 4, 4], "payload_bytes_fp32": 512,
     "payload_bytes_fp16": 256, "payload_bytes_int8": 128, "head_macs": 18432, "tail_macs": 81568,
     "head_params": 80, "natural_bottleneck": True},
    {"index": 2, "tensor": HOSTILE_TENSOR, "op": "Relu", "shape": [16, 4, 4], "payload_bytes_fp32": 1024,
     "payload_bytes_fp16": 512, "payload_bytes_int8": 256, "head_macs": 36864, "tail_macs": 63136,
     "head_params": 1240, "natural_bottleneck": False},
]}


def split_rows(backend: str = "onnxruntime", batch_size: int = 1, delay_ms: float = 5.0) -> list[dict]:
    """Rows as the runner writes them (values, not text): a local baseline, then offload, split-a and
    split-b at each link setting, with stage times that add up to the end-to-end latency."""
    key = {"status": "ok", "workload": "w", "target": "cpu", "backend": backend, "precision": "fp32",
           "threads": 1, "batch_size": batch_size, "device_cpu_quota": 0.25, "reason": "",
           "finished_at": "2026-11-24T10:00:00+00:00"}
    rows = [{**key, "job_id": f"w__fp32__{backend}__t1__b{batch_size}", "variant": "fp32", "family": "baseline",
             "strategy": "local", "link": "", "latency_p50_ms": LOCAL_MS, "accuracy": 0.95}]
    for nominal, measured in zip(NOMINAL_MBIT, MEASURED_MBIT):
        link = f"{nominal:g}mbit-{delay_ms:g}ms"
        for jitter, (variant, (strategy, fixed_ms, per_mbit_ms)) in zip((0.99, 1.0, 1.01), LINES.items()):
            e2e = fixed_ms + per_mbit_ms / measured
            payload = {"offload": 1024, "split-a": 512, "split-b": 128}[variant]
            rows.append({**key, "job_id": f"w__{variant}__{backend}__t1__b{batch_size}__{link}", "variant": variant,
                         "family": strategy, "strategy": strategy, "link": link,
                         "split_point": {"offload": "input", "split-a": "pool$1", "split-b": HOSTILE_TENSOR}[variant],
                         "payload_dtype": "int8" if variant == "split-b" else "fp32",
                         "payload_bytes": payload * batch_size, "input_bytes": 1024,
                         "head_ms": 0.0 if strategy == "offload" else fixed_ms * 0.6, "serialize_ms": 0.01,
                         "transfer_ms": per_mbit_ms / measured, "tail_ms": fixed_ms * 0.4 - 0.01,
                         "latency_p50_ms": e2e, "accuracy": 0.94 if variant == "split-b" else 0.95,
                         "link_rate_mbit": nominal, "link_delay_ms": delay_ms,
                         "link_measured_mbit": measured * jitter, "link_rtt_ms": 2 * delay_ms + 0.1,
                         "link_shaping": SHAPING.format(rate=f"{nominal:g}")})
    return rows


def test_crossovers_match_a_hand_computation_on_the_measured_bandwidth():
    table = crossover_table(pd.DataFrame(split_rows()), by="strategy")
    by = table.set_index("strategy")
    assert list(table["strategy"]) == ["split", "offload", "local"]
    assert by.loc["split", "variant"] == "split-a, split-b"   # the fastest split variants, slowest link first
    assert by.loc["split", "from_mbit"] == pytest.approx(0.8) and by.loc["split", "from_edge"]
    assert by.loc["split", "to_mbit"] == pytest.approx(38 / 3) and not by.loc["split", "to_edge"]
    assert by.loc["offload", "from_mbit"] == pytest.approx(38 / 3)
    assert by.loc["offload", "to_mbit"] == pytest.approx(80) and by.loc["offload", "to_edge"]
    assert pd.isna(by.loc["local", "from_mbit"])
    # savings at the measured settings in the range: split at 0.8 and 8, offload at 80
    # split vs local: 1 - (8 + 4/0.8)/20 = 35 %, 1 - (5 + 10/8)/20 = 68.75 %  -> 68.75 at 8
    # split vs offload: 1 - 13/62 = 79.03 % at 0.8, 1 - 6.25/8 = 21.9 % at 8  -> 79.03 at 0.8
    assert by.loc["split", "vs_local_pct"] == pytest.approx(68.75)
    assert by.loc["split", "vs_local_at_mbit"] == pytest.approx(8)
    assert by.loc["split", "vs_offload_pct"] == pytest.approx((1 - 13 / 62) * 100)
    assert by.loc["split", "vs_offload_at_mbit"] == pytest.approx(0.8)
    assert by.loc["offload", "vs_local_pct"] == pytest.approx((1 - 2.6 / 20) * 100)
    assert pd.isna(by.loc["offload", "vs_offload_pct"])
    assert by.loc["split", "local_variant"] == "fp32" and by.loc["split", "local_ms"] == LOCAL_MS

    variants = crossover_table(pd.DataFrame(split_rows()), by="variant").set_index("variant")
    assert variants.loc["split-a", "to_mbit"] == pytest.approx(2)
    assert variants.loc["split-b", "from_mbit"] == pytest.approx(2)
    assert variants.loc["split-b", "to_mbit"] == pytest.approx(38 / 3)
    # split-a's own range holds only the 0.8 setting: 1 - 13/20 = 35 % less than local
    assert variants.loc["split-a", "vs_local_pct"] == pytest.approx(35)
    assert crossover_points(crossover_table(pd.DataFrame(split_rows()), by="variant")) == pytest.approx([2, 38 / 3])


def test_crossovers_compare_only_rows_of_one_backend_batch_size_and_delay():
    """A far faster backend, a batch of 4 and another link delay are other comparisons: they change
    nothing in the first one, and a local row serves every delay of its kind but no other batch size."""
    fast = [{**r, "latency_p50_ms": r["latency_p50_ms"] / 100} for r in split_rows(backend="torch")]
    batch4 = [r for r in split_rows(batch_size=4) if r["strategy"] != "local"]
    delay20 = [{**r, "latency_p50_ms": r["latency_p50_ms"] + 30} for r in split_rows(delay_ms=20.0)
               if r["strategy"] != "local"]
    failed = [{**split_rows()[1], "status": "failed", "latency_p50_ms": 0.001, "job_id": "x"}]
    table = crossover_table(pd.DataFrame(split_rows() + fast + batch4 + delay20 + failed), by="strategy")
    alone = crossover_table(pd.DataFrame(split_rows()), by="strategy")
    first = table[(table["backend"] == "onnxruntime") & (table["batch_size"] == 1) & (table["link_delay_ms"] == 5)]
    pd.testing.assert_frame_equal(first.reset_index(drop=True), alone)
    # 30 ms more at a 20 ms delay: every linked strategy is slower than local (20 ms) everywhere
    slow = table[(table["backend"] == "onnxruntime") & (table["batch_size"] == 1) & (table["link_delay_ms"] == 20)]
    assert slow.set_index("strategy").loc["local", "from_mbit"] == pytest.approx(0.8)
    assert slow.set_index("strategy").loc["local", "to_mbit"] == pytest.approx(80)
    # batch 4 has no local row: no local contender and no saving against it
    batch = table[table["batch_size"] == 4]
    assert "local" not in set(batch["strategy"]) and batch["vs_local_pct"].isna().all()


def test_local_computing_is_the_unsplit_model_not_a_compressed_variant():
    """An int8 model on the device is faster than everything here, but it is another model: the local
    contender is the baseline (what split and offload run, cut or not)."""
    int8 = {**split_rows()[0], "variant": "int8", "family": "quantize", "precision": "int8",
            "latency_p50_ms": 1.0, "job_id": "w__int8__onnxruntime__t1__b1"}
    with_int8 = crossover_table(pd.DataFrame(split_rows() + [int8]), by="variant")
    pd.testing.assert_frame_equal(with_int8, crossover_table(pd.DataFrame(split_rows()), by="variant"))
    # without a baseline, every local row is local computing: int8 wins at every bandwidth
    alone = crossover_table(pd.DataFrame(split_rows()[1:] + [int8]), by="strategy").set_index("strategy")
    assert alone.loc["local", "variant"] == "int8" and alone.loc["local", "from_edge"] and alone.loc["local", "to_edge"]


def split_run(tmp_path) -> tuple:
    from harness.core.rundir import RunStore

    store = RunStore.create(tmp_path / "runs", "split", {"run_id": "split", "split_analysis": {"w": ANALYSIS}})
    for row in split_rows():
        store.append({c: v for c, v in row.items() if c in COLUMNS})
    store.close()
    return write_report(store.dir)


def split_section(html: str) -> str:
    start = html.index("<h2>Split computing</h2>")
    return html[start:html.index("<h2>", start + 1)]


def test_the_report_shows_the_split_section_with_tables_figures_and_captions(tmp_path):
    html_path, md_path = split_run(tmp_path)
    html, md = html_path.read_text(), md_path.read_text()
    section = split_section(html)
    figures = re.findall(r'<figure aria-label="[^"]+"><img src="data:image/png;base64,([^"]+)" alt="([^"]+)">'
                         r'<figcaption>([^<]+)</figcaption></figure>', section)
    assert [alt for _, alt, _ in figures] == [
        "w: where the time goes (onnxruntime t1 b1)", "w: latency vs bandwidth (onnxruntime t1 b1)",
        "w: accuracy vs payload", "w: split analysis"]
    for data, _, _ in figures:
        assert base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n")
    captions = [caption for _, _, caption in figures]
    # measured with what: medians, the link's shaping (escaped) and the emulated device speed
    assert "Median per inference" in captions[0] and "emulated device speed" in captions[0]
    assert "0.25 CPU core(s)" in captions[1] and "tbf 10 Mbit/s both directions" in captions[1]
    assert "&lt;b&gt;" in captions[1] and "<b>" not in section
    # the crossover table, as the hand computation says (formatted)
    assert "<td>split-a, split-b</td><td>0.8 (edge: lowest measured)</td><td>12.7</td>" \
           "<td>68.8</td><td>8</td><td>79.0</td><td>0.8</td>" in section
    assert "<td>offload</td><td>offload</td><td>12.7</td><td>80 (edge: highest measured)</td>" in section
    assert "<td>local</td><td>fp32</td><td>never the lowest</td>" in section
    # a tensor name from a user's model, shown in the stage and analysis tables, is escaped
    assert HOSTILE_TENSOR not in html and "&lt;img src=x onerror=alert(1)&gt;" in section
    # report.md: the same tables and the captions
    assert "| 1 | pool$1 | MaxPool | [8, 4, 4] | 512 | 128 | 18,432 | 81,568 | True |" in md
    assert "## Split computing" in md and "| split | split-a, split-b | 0.8 (edge: lowest measured) | 12.7 |" in md
    assert "*w: accuracy vs payload* (in report.html)" in md
    # ... and a Markdown viewer shows the user's tensor name instead of rendering it as HTML
    assert re.search(r"(?<!\\)<img", md) is None
    assert "| split-b | split | 1mbit-5ms | \\<img src=x onerror=alert(1)> |" in md
    # the stage table: one row per split job, told apart by its link
    assert [md.count(f"| split-b | split | {link} | ") for link in ("1mbit-5ms", "10mbit-5ms", "100mbit-5ms")] \
        == [1, 1, 1]


def test_a_split_job_is_labelled_with_its_link_in_the_other_figures():
    from reports.plots import label

    rows = split_rows()
    assert label(rows[0]) == "fp32 onnxruntime t1"
    assert label(rows[1]) == "offload onnxruntime t1 @1mbit-5ms"


def test_a_run_with_only_a_split_analysis_shows_the_analysis(tmp_path):
    """No split job ran (a local suite of a model with an analysis); onnx-tool could not count its MACs."""
    from harness.core.rundir import RunStore

    analysis = {**ANALYSIS, "candidates": [{**c, "head_macs": None, "tail_macs": None}
                                           for c in ANALYSIS["candidates"]]}
    store = RunStore.create(tmp_path / "runs", "a", {"run_id": "a", "split_analysis": {"w": analysis}})
    store.append({c: v for c, v in split_rows()[0].items() if c in COLUMNS})
    store.close()
    html_path, md_path = write_report(store.dir)
    section = split_section(html_path.read_text())
    assert section.count("<figure ") == 1 and 'alt="w: split analysis"' in section
    assert "Crossover" not in section and "Split analysis: candidate cuts" in section
    assert "| 1 | pool$1 | MaxPool | [8, 4, 4] | 512 | 128 |  |  | True |" in md_path.read_text()


def test_a_run_without_split_jobs_has_no_split_section(tmp_path):
    run = fake_run(tmp_path / "runs" / "r", 1.0, 0.9, seed=0)
    html_path, md_path = write_report(run)
    assert "Split computing" not in html_path.read_text()
    assert "Split computing" not in md_path.read_text()
    html = html_path.read_text()
    assert html.count("<figure ") == html.count("<figcaption>") > 0  # every figure says what it shows


def test_the_schema_holds_every_split_column():
    assert [c for c in SPLIT_COLUMNS if c not in COLUMNS] == []
