"""A report over several runs: three real runs on this machine's CPU, each through a target file of its own
(onnxruntime, torch, and onnxruntime on 2 threads standing in for three targets), and its numbers checked
against the rows: Pareto membership, ratios against each target's fp32, best within the budget. It is
rendered in headless Chromium. Plus `runs`, `history` and the plots' labels and tooltips."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import synthetic_run, tiny_workload_toml, write

from harness.app.cli import main
from harness.core.errors import ConfigError
from reports.cross_report import write_cross_report
from reports.cross_run import best_within_budget, fronts, load_runs, with_ratios
from reports.pareto import pareto_mask

TARGETS = {"cpu-ort": ("onnxruntime", 1), "cpu-torch": ("torch", 1), "cpu-ort-2t": ("onnxruntime", 2)}


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("cross")
    workload = write(root / "tiny.toml", tiny_workload_toml() + """
    [[variants]]
    name = "int8"
    family = "quantize"
    scheme = "ort-static"
    [[variants]]
    name = "channels-50"
    family = "prune"
    method = "channel"
    ratio = 0.5
    """)
    runs = []
    for name, (backend, threads) in TARGETS.items():
        target = write(root / f"{name}.toml", f"""
        [target]
        name = "{name}"
        adapter = "cpu"
        backends = ["{backend}"]
        """)
        suite = write(root / f"suite-{name}.toml", f"""
        [suite]
        name = "tiny"
        workloads = ["{workload}"]
        [protocol]
        warmup_min_iterations = 3
        warmup_min_s = 0.01
        n_windows = 2
        window_min_s = 0.1
        window_min_iterations = 20
        [matrix]
        backends = ["{backend}"]
        threads = [{threads}]
        batch_sizes = [1]
        """)
        assert main(["bench", "--target", str(target), "--suite", str(suite), "--runs-dir", str(root / "runs"),
                     "--quiet", "--no-report"]) == 0
        runs.append((root / "runs" / "latest").resolve())
    return runs


def ok_rows(run: Path) -> list[dict]:
    with open(run / "results.csv", newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["status"] == "ok"]


def test_cross_report_numbers_are_the_rows(three_runs, tmp_path):
    runs = load_runs(three_runs)
    assert list(runs.infos) == list(TARGETS) and runs.shared_workloads == ["tiny-digits"]
    rows = with_ratios(runs.rows)
    for run, name in zip(three_runs, TARGETS):
        measured = {r["variant"]: r for r in ok_rows(run)}
        mine = rows[rows["series"] == name].set_index("variant")
        assert set(mine.index) == set(measured)
        fp32 = float(measured["fp32"]["latency_p50_ms"])
        for variant, row in measured.items():
            # speed-up: the target's own fp32 p50 over the variant's, from the CSV text itself
            assert mine.loc[variant, "speedup"] == pytest.approx(fp32 / float(row["latency_p50_ms"]), rel=1e-9)
            assert mine.loc[variant, "reference_variant"] == "fp32"
        # the front per target is the one computed from that run's rows alone
        variants = list(measured)
        cost = np.array([float(measured[v]["latency_p50_ms"]) for v in variants])
        accuracy = np.array([float(measured[v]["accuracy"]) for v in variants])
        expected = {v for v, on in zip(variants, pareto_mask(cost, accuracy)) if on}
        front = fronts(runs.rows, "latency_p50_ms")
        assert set(front[front["series"] == name]["variant"]) == expected
        # best within 1 point: the fastest of those within 1 point of the target's fp32 accuracy
        within = [v for v in variants if float(measured[v]["accuracy"]) >= float(measured["fp32"]["accuracy"]) - 0.01]
        fastest = min(within, key=lambda v: float(measured[v]["latency_p50_ms"]))
        best = best_within_budget(runs.rows, 1.0).set_index("series").loc[name]
        assert best["fastest_variant"] == fastest
        assert best["fastest_latency_p50_ms"] == pytest.approx(float(measured[fastest]["latency_p50_ms"]))
        # a budget of 100 points admits every variant: the fastest overall
        anything = best_within_budget(runs.rows, 100.0).set_index("series").loc[name]
        assert anything["fastest_variant"] == min(variants, key=lambda v: float(measured[v]["latency_p50_ms"]))

    html, md = write_cross_report(three_runs, tmp_path / "out")
    text = md.read_text()
    assert "| variant | cpu-ort · onnxruntime | cpu-torch · torch | cpu-ort-2t · onnxruntime |" in text
    int8 = rows[(rows["series"] == "cpu-ort") & (rows["variant"] == "int8")].iloc[0]
    assert f"| int8 | {int8['speedup']:.2f}x |" in text
    assert "## Per-target facts" in text and "| target | cpu-ort | cpu-torch | cpu-ort-2t |" in text


def test_cross_report_renders_in_chromium_with_tooltips(three_runs, tmp_path):
    from browser import render

    html, _ = write_cross_report(three_runs, tmp_path / "out")
    page = render(html, tmp_path / "cross.png")
    assert page.problems() == []
    assert page.n_svgs >= 3 and page.screenshot.stat().st_size > 10_000
    # every plotted job names its target and itself in a tooltip
    assert any(t.startswith("cpu-torch: tiny-digits/fp32 torch t1 b1: latency p50 (ms)") for t in page.svg_titles)
    assert any(t.startswith("cpu-ort-2t: tiny-digits/int8 onnxruntime t2 b1") for t in page.svg_titles)
    # torch skips the ORT-quantized and the pruned model: they are said not to be shared
    assert "Best variant per target" in page.text and "tiny-digits/int8: only in cpu-ort, cpu-ort-2t" in page.text


def test_runs_of_different_workloads_combine_on_what_they_share(tmp_path):
    job = dict(family="baseline", precision="fp32", backend="onnxruntime", p50_ms=1.0, accuracy=0.9)
    a = synthetic_run(tmp_path / "runs" / "a", "pi", [dict(job, workload="w1", variant="fp32"),
                                                     dict(job, workload="w2", variant="fp32")])
    b = synthetic_run(tmp_path / "runs" / "b", "pi", [dict(job, workload="w1", variant="fp32")], seed=1)
    runs = load_runs([a, b])
    # two runs of one target are told apart by their run ids
    assert list(runs.infos) == ["pi (a)", "pi (b)"]
    assert runs.shared_workloads == ["w1"] and runs.not_shared == ["workload w2: only in pi (a)"]
    # a shell's runs/*: runs/latest is b again, read once
    assert list(load_runs([a, b, tmp_path / "runs" / "latest"]).infos) == ["pi (a)", "pi (b)"]
    # two copies of one run are two series, named apart
    copy = Path(shutil.copytree(b, tmp_path / "elsewhere" / "b"))
    assert list(load_runs([b, copy]).infos) == ["pi (runs/b)", "pi (elsewhere/b)"]
    # a workload two of three runs measured is compared between them, whatever the third did
    c = synthetic_run(tmp_path / "runs" / "c", "jetson", [dict(job, workload="w2", variant="fp32")], seed=2)
    three = load_runs([a, b, c])
    assert three.shared_workloads == ["w1", "w2"] and "workload w2: only in pi (a), jetson" in three.not_shared
    with pytest.raises(ConfigError, match="cannot write a report there"):
        write_cross_report([a, b], a / "results.csv")


def test_runs_lists_every_run(three_runs, tmp_path, capsys):
    root = tmp_path / "runs"
    for run in three_runs:
        shutil.copytree(run, root / run.name)
    (root / "not-a-run").mkdir()
    assert main(["runs", str(root)]) == 0
    out = capsys.readouterr().out
    for name in TARGETS:
        assert f"| {name} | tiny |" in out
    assert "not-a-run" not in out


def test_history_marks_a_real_slowdown_and_not_the_noise(tmp_path):
    runs = []
    for i in range(5):
        jobs = [dict(workload="w", variant=v, family="baseline" if v == "fp32" else "quantize", precision="fp32",
                     backend="onnxruntime", accuracy=0.9, p50_ms=1.5 if (v == "int8" and i >= 3) else 1.0)
                for v in ("fp32", "int8")]
        runs.append(synthetic_run(tmp_path / "runs" / f"r{i}", "cpu", jobs, seed=i,
                                  info={"started_at": f"2026-11-0{i + 1}T00:00:00Z"}))
    out = tmp_path / "history"
    # as a shell's runs/* gives them: runs/latest (a link to r4) and a report's directory too
    assert (tmp_path / "runs" / "latest").resolve() == runs[-1].resolve()
    (tmp_path / "runs" / "cross-0123").mkdir()
    assert main(["history", *map(str, sorted((tmp_path / "runs").iterdir(), reverse=True)), "--metric",
                 "latency_p50_ms", "--out", str(out), "--fail-on-regression"]) == 0  # r4 did not regress
    text = (out / "history.md").read_text()
    assert "5 jobs" not in text and "2 jobs over 5 runs" in text and "cross-0123" in text
    changes = text.split("## Significant changes")[1].split("## Jobs")[0]
    # one step: r2 -> r3 of int8 (given in reverse, ordered by start time); 2% noise never counts
    assert changes.count("| regression |") == 1 and "| cpu: w__int8__onnxruntime__t1__b1 | r2 | r3 |" in changes
    assert "Mann-Whitney U" in changes
    assert main(["history", str(runs[0]), "--metric", "not_a_column"]) == 2
    # a regression already recovered from does not fail CI: only one into a job's newest run
    assert main(["history", *map(str, runs[:4]), "--out", str(out), "--fail-on-regression"]) == 1
    faster = synthetic_run(tmp_path / "runs" / "r5", "cpu", [dict(j, p50_ms=1.0) for j in jobs], seed=5,
                           info={"started_at": "2026-11-09T00:00:00Z"})
    assert main(["history", *map(str, runs), str(faster), "--out", str(out), "--fail-on-regression"]) == 0


def test_history_of_accuracy_counts_points_and_knows_which_way_is_better(tmp_path):
    runs = []
    for i, (fp32, int8) in enumerate([(0.98, 0.89), (0.90, 0.85)]):  # fp32 -8 points; int8's delta +4
        jobs = [dict(workload="w", variant="fp32", family="baseline", precision="fp32", backend="onnxruntime",
                     p50_ms=1.0, accuracy=fp32),
                dict(workload="w", variant="int8", family="quantize", precision="int8", backend="onnxruntime",
                     p50_ms=1.0, accuracy=int8)]
        runs.append(synthetic_run(tmp_path / "runs" / f"r{i}", "cpu", jobs, seed=i,
                                  info={"started_at": f"2026-11-0{i + 1}T00:00:00Z"}))
    from reports.history import load_history

    accuracy = load_history(runs, "accuracy").changes.set_index("job")["verdict"].to_dict()
    assert accuracy == {"cpu: w__fp32__onnxruntime__t1__b1": "regression",
                        "cpu: w__int8__onnxruntime__t1__b1": "regression"}
    delta = load_history(runs, "accuracy_delta").changes.set_index("job")["verdict"].to_dict()
    assert delta == {"cpu: w__int8__onnxruntime__t1__b1": "improvement"}  # -0.09 -> -0.05


def test_pareto_labels_never_overlap_and_every_point_has_a_tooltip():
    import matplotlib.pyplot as plt

    from reports.plots import draw_tradeoff, palette_for, tradeoff_plot

    rng = np.random.default_rng(0)
    n = 40  # crowded: every point on one front, close together
    cost = np.sort(rng.uniform(1.0, 1.2, n))
    points = pd.DataFrame({"latency_p50_ms": cost, "accuracy": 0.9 + np.linspace(0, 0.001, n),
                           "variant": [f"variant-{i}" for i in range(n)], "family": "prune",
                           "backend": "onnxruntime", "threads": 1.0, "link": ""})
    assert pareto_mask(points["latency_p50_ms"], points["accuracy"]).all()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    texts = draw_tradeoff(ax, points, "latency_p50_ms", "backend", None, pareto_mask(points["latency_p50_ms"],
                          points["accuracy"]), palette_for(points["backend"]), lambda r: r["variant"])
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in texts]
    assert texts and all(not a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    plt.close(fig)
    figure = tradeoff_plot(points.assign(variant=points["variant"].where(points.index > 0, "<b>&x")),
                           "latency_p50_ms", "latency p50 (ms)", "t", "c", hue="backend")
    assert figure.svg.count("<title>") == n and "&lt;b&gt;&amp;x" in figure.svg and "<b>" not in figure.svg


def test_budget_must_be_a_number_of_points(three_runs, capsys):
    assert main(["report", *map(str, three_runs), "--budget-points", "nan"]) == 2
    assert "--budget-points nan" in capsys.readouterr().err
