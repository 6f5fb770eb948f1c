"""Variant families: each test would catch a broken variant (accuracy, really int8, really sparser or
smaller, cached, clear errors)."""

from __future__ import annotations

import json

import onnx
import pytest
from helpers import tiny_workload_toml, user_workload_toml, write

from harness.core.errors import ConfigError
from workloads.build import build_base, build_variants
from workloads.spec import load_workload

VARIANTS = """
[[variants]]
name = "int8"
family = "quantize"
scheme = "ort-static"
calibration_samples = 100

[[variants]]
name = "int8-dynamic"
family = "quantize"
scheme = "ort-dynamic"

[[variants]]
name = "fp16"
family = "quantize"
scheme = "fp16"

[[variants]]
name = "sparse-80"
family = "prune"
method = "magnitude"
ratio = 0.8
fine_tune_epochs = 2

[[variants]]
name = "channels-50"
family = "prune"
method = "channel"
ratio = 0.5
fine_tune_epochs = 2

[[variants]]
name = "student-kd"
family = "distill"
student_arch = "small_cnn"
student_params = { width = 4 }
epochs = 3

[[variants]]
name = "student-ce"
family = "distill"
student_arch = "small_cnn"
student_params = { width = 4 }
alpha = 1.0
epochs = 3
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    path = write(tmp_path_factory.mktemp("variants") / "w.toml",
                 tiny_workload_toml(name="tiny-variants", epochs=6, width=16) + VARIANTS)
    base = build_base(load_workload(path))
    return base, build_variants(base)


def initializer_types(path: str) -> set[int]:
    return {t.data_type for t in onnx.load(path).graph.initializer}


def test_every_variant_keeps_accuracy_above_a_floor(built):
    base, artifacts = built
    assert base.host_accuracy > 0.9
    for name in ("int8", "int8-dynamic", "fp16", "sparse-80", "channels-50"):
        assert artifacts[name].host_accuracy > base.host_accuracy - 0.05, name
    for name in ("student-kd", "student-ce"):
        assert artifacts[name].host_accuracy > 0.5, name  # a 4-wide student after 3 epochs


def test_quantized_artifacts_really_are_quantized(built):
    _, artifacts = built
    int8 = artifacts["int8"]
    assert onnx.TensorProto.INT8 in initializer_types(int8.files["onnx"])
    ops = {n.op_type for n in onnx.load(int8.files["onnx"]).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert int8.precision == "int8" and int8.model_bytes < 0.5 * artifacts["fp32"].model_bytes
    assert int8.macs == artifacts["fp32"].macs  # the same work at a lower precision
    assert onnx.TensorProto.FLOAT16 in initializer_types(artifacts["fp16"].files["onnx"])
    assert "torch_state" not in int8.files  # eager PyTorch cannot run it: the job will be skipped


def test_pruned_artifacts_are_as_sparse_or_small_as_claimed(built):
    _, artifacts = built
    sparse = artifacts["sparse-80"]
    assert sparse.weight_sparsity >= 0.79
    assert sparse.macs == artifacts["fp32"].macs  # dense kernels: the same nominal work
    channels = artifacts["channels-50"]
    assert channels.params < 0.4 * artifacts["fp32"].params
    assert channels.macs < 0.4 * artifacts["fp32"].macs
    assert "torch_state" in sparse.files and "torch_state" not in channels.files


def test_students_are_smaller_than_their_teacher(built):
    _, artifacts = built
    kd, ce = artifacts["student-kd"], artifacts["student-ce"]
    assert kd.params == ce.params < artifacts["fp32"].params
    assert kd.torch_model["kwargs"]["width"] == 4


def test_cached_builds_are_not_rebuilt(built):
    base, artifacts = built
    again = build_variants(base)
    for name, artifact in artifacts.items():
        assert again[name].files == artifact.files
    import os
    mtimes = {n: os.path.getmtime(a.files["onnx"]) for n, a in artifacts.items()}
    assert {n: os.path.getmtime(a.files["onnx"]) for n, a in build_variants(base).items()} == mtimes


@pytest.mark.parametrize("variant, message", [
    ('family = "prune"\nmethod = "magnitude"\nratio = 1.0', "key 'variants[1] 'bad'.ratio' = 1.0: must be in [0, 1)"),
    ('family = "prune"\nmethod = "magnitude"\nratio = -0.1', "must be in [0, 1)"),
    ('family = "quantize"\nscheme = "int3"', "'variants[1] 'bad'.scheme' = 'int3'"),
    ('family = "quantize"\nscheme = "ort-static"\ncalibration = 5', "calibration' is not a known key"),
    ('family = "distill"\nstudent_arch = "small_cnn"\nalpha = 2.0', "must be in [0, 1]"),
    ('family = "quantise"', "did you mean 'quantize'"),
])
def test_bad_variant_parameters_name_the_file_and_key(tmp_path, variant, message):
    path = write(tmp_path / "bad.toml", tiny_workload_toml() + f'\n[[variants]]\nname = "bad"\n{variant}\n')
    with pytest.raises(ConfigError) as error:
        load_workload(path)
    assert str(path) in str(error.value) and message in str(error.value)


def test_retraining_families_refuse_a_users_onnx_model(user_model, tmp_path):
    path = write(tmp_path / "user.toml", user_workload_toml(user_model, """
    [[variants]]
    name = "pruned"
    family = "prune"
    method = "channel"
    ratio = 0.5
    """))
    with pytest.raises(ConfigError, match="'prune': this family needs the network's training graph"):
        load_workload(path)  # when the workload file is read, before anything is built


EXITS = """
[[variants]]
name = "exit"
family = "early_exit"
thresholds = [0.0, 1.0]
epochs = 2

[[variants]]
name = "calls"
family = "early_exit"
thresholds = [0.0]
epochs = 2
one_call = false

[[variants]]
name = "predicted"
family = "early_exit"
thresholds = [1.0]
epochs = 2
predictor = true

[[variants]]
name = "lite"
family = "early_exit"
thresholds = [0.0, 1.0]
epochs = 2
tflite = true
"""


def test_early_exit_really_skips_stage_two_on_easy_samples(tiny_files, tmp_path):
    """Threshold 0: every sample leaves at the exit (stage 2 never runs); 1: none does (the worst case)."""
    import csv

    from harness.app.cli import main

    workload = write(tmp_path / "ee.toml", tiny_workload_toml(name="tiny-exit", epochs=4, width=8) + EXITS)
    suite = tiny_files["suite"]
    suite.write_text(suite.read_text().replace(str(tiny_files["workload"]), str(workload))
                     .replace('["onnxruntime", "torch"]', '["onnxruntime", "torch", "litert"]'))
    runs = tmp_path / "runs"
    assert main(["bench", "--suite", str(suite), "--runs-dir", str(runs), "--quiet"]) == 0
    run_dir = next(p for p in runs.iterdir() if p.is_dir() and not p.is_symlink())
    with open(run_dir / "results.csv", newline="") as fh:
        rows = {(r["variant"], r["backend"]): r for r in csv.DictReader(fh)}
    everyone, nobody = rows[("exit-t0", "onnxruntime")], rows[("exit-t1", "onnxruntime")]
    assert float(everyone["exit_rate"]) == 1.0 and float(nobody["exit_rate"]) == 0.0
    # expected MACs follow the exits: stage 1 alone vs both stages (the worst case, = macs)
    assert float(nobody["expected_macs"]) == float(nobody["macs"])
    assert float(everyone["expected_macs"]) < float(nobody["macs"])
    # the final classifier is at least as good as the exit alone
    assert float(nobody["accuracy"]) >= float(everyone["accuracy"]) - 0.02
    assert rows[("exit-t0", "torch")]["status"] == "skipped"
    for variant in ("exit-t0", "calls-t0", "predicted-t1"):  # torch runs no ONNX graph: one reason for all
        assert "torch does neither" in rows[(variant, "torch")]["reason"]
    # onnxruntime branches inside the graph: one call; the same network as two calls answers the same
    two_calls = rows[("calls-t0", "onnxruntime")]
    assert (everyone["exit_path"], nobody["exit_path"], two_calls["exit_path"]) == ("one-call", "one-call",
                                                                                    "two-stage")
    assert (two_calls["accuracy"], two_calls["exit_rate"]) == (everyone["accuracy"], everyone["exit_rate"])
    # nobody would leave at threshold 1: the predictor sends everybody past the head, which nobody pays
    predicted = rows[("predicted-t1", "onnxruntime")]
    assert predicted["exit_path"] == "one-call+predictor" and float(predicted["exit_skip_rate"]) == 1.0
    assert float(predicted["expected_macs"]) < float(nobody["expected_macs"])
    assert predicted["accuracy"] == nobody["accuracy"]
    assert everyone["exit_skip_rate"] == ""
    # LiteRT runs the .tflite stages as two calls: the same network, the same answers and exits
    for threshold, ort in (("t0", everyone), ("t1", nobody)):
        lite = rows[(f"lite-{threshold}", "litert")]
        assert (lite["status"], lite["exit_path"]) == ("ok", "two-stage"), lite["reason"]
        assert (lite["accuracy"], lite["exit_rate"]) == (ort["accuracy"], ort["exit_rate"])
        assert lite["expected_macs"] == ort["expected_macs"]
        # the files LiteRT loads: the two .tflite stages, not the ONNX parts
        assert json.loads(lite["backend_info"])["stage_format"] == "tflite"
        assert lite["model_bytes"] != ort["model_bytes"]
    assert "with tflite = true" in rows[("exit-t0", "litert")]["reason"]
    html = (run_dir / "report.html").read_text()
    assert 'aria-label="tiny-exit: early exits exit (onnxruntime, one-call)"' in html
    assert 'aria-label="tiny-exit: early exits calls (onnxruntime, two-stage)"' in html


def test_staged_runtime_counts_exits_and_runs_stage_two_only_when_needed():
    import numpy as np

    from targets.agent.early_exit import TwoStageExit

    class Stage:
        def __init__(self, outputs):
            self.calls, self.rows, self.make = 0, 0, outputs

        def outputs(self, x):
            self.calls += 1
            self.rows += len(x)
            return self.make(x)

    sure = np.array([[10.0, 0, 0]], np.float32)   # confidence ~1
    unsure = np.array([[0.1, 0, 0]], np.float32)  # confidence ~0.36
    stage1 = Stage(lambda x: [x * 2, np.where(x[:, :1] > 0, sure, unsure)])
    stage2 = Stage(lambda f: [np.ones((len(f), 3), np.float32)])
    model = TwoStageExit(stage1, stage2, "confidence", 0.9)
    x = np.array([[1.0], [-1.0], [1.0], [-1.0]], np.float32)
    logits = model.predict(x)
    assert model.exit_rate == 0.5 and stage2.rows == 2  # only the two unsure samples went on
    assert np.allclose(logits[1], 1.0) and np.allclose(logits[0], sure[0])
    call, args = model.runner(x)
    before = stage2.calls
    for _ in range(4):
        call(*args)
    assert stage1.calls == 5 and stage2.calls - before == 2


def test_an_empty_threshold_sweep_is_a_clear_error(tmp_path):
    path = write(tmp_path / "w.toml", tiny_workload_toml() + EXITS.replace("[0.0, 1.0]", "[]"))
    with pytest.raises(ConfigError, match="thresholds' = \\[\\]: a non-empty list"):
        load_workload(path)


@pytest.mark.parametrize("keys, named", [("predictor = true\none_call = false", "predictor"),
                                         ("predictor = true\ntflite = true", "tflite")])
def test_an_exit_predictor_with_a_path_that_cannot_run_it_is_refused(tmp_path, keys, named):
    path = write(tmp_path / "w.toml", tiny_workload_toml(name="tiny-exit-keys") + """
    [[variants]]
    name = "exit"
    family = "early_exit"
    thresholds = [0.9]
""" + "\n".join("    " + k for k in keys.split("\n")) + "\n")
    with pytest.raises(ConfigError, match=rf"exit'\.{named}' = true"):
        load_workload(path)
