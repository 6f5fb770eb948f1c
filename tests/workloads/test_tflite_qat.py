"""TFLite (LiteRT) and low-bit QAT (brevitas -> QONNX) variants: really int8 / really low-bit, accurate,
and run by the device's backends through the agent."""

from __future__ import annotations

import csv
import importlib.util

import numpy as np
import onnx
import pytest
from helpers import tiny_workload_toml, write
from onnx import numpy_helper

from harness.core.errors import ConfigError
from targets.backends.base import Unsupported
from targets.backends.litert_backend import LiteRtBackend, TfliteRuntimeBackend
from workloads.build import build_base, build_variants
from workloads.spec import load_workload

VARIANTS = """
[[variants]]
name = "tflite-fp32"
family = "tflite"

[[variants]]
name = "tflite-int8"
family = "tflite"
quantization = "int8"
calibration_samples = 100

[[variants]]
name = "w4a4"
family = "qat"
weight_bits = 4
activation_bits = 4
epochs = 2

[[variants]]
name = "w1a4"
family = "qat"
weight_bits = 1
activation_bits = 4
epochs = 6
lr_scale = 1.0
"""


@pytest.fixture(scope="module")
def workload_file(tmp_path_factory):
    return write(tmp_path_factory.mktemp("lowbit") / "w.toml",
                 tiny_workload_toml(name="tiny-lowbit", epochs=6, width=16) + VARIANTS)


@pytest.fixture(scope="module")
def built(workload_file):
    base = build_base(load_workload(workload_file))
    return base, build_variants(base)


def litert(path: str) -> LiteRtBackend:
    backend = LiteRtBackend(1, {})
    backend.load({"files": {"tflite": path}})
    return backend


def test_tflite_artifacts_keep_accuracy_and_int8_is_full_integer(built):
    base, artifacts = built
    fp32, int8 = artifacts["tflite-fp32"], artifacts["tflite-int8"]
    assert abs(fp32.host_accuracy - base.host_accuracy) <= 0.01  # the same network, converted
    assert int8.host_accuracy > base.host_accuracy - 0.05
    assert (fp32.precision, int8.precision) == ("fp32", "int8")
    assert int8.model_bytes < 0.5 * fp32.model_bytes
    assert fp32.macs == int8.macs == artifacts["fp32"].macs
    interpreter = litert(int8.files["tflite"]).interpreter
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8
    kinds = {np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}
    assert "int8" in kinds and "float32" not in kinds  # no float tensor left anywhere in the graph


def test_litert_backend_quantizes_the_input_with_the_models_scale(built):
    _, artifacts = built
    backend = litert(artifacts["tflite-int8"].files["tflite"])
    scale, zero_point = backend._inputs[0]["quantization"]
    x = np.array([0.0, scale * 3, 1e6, -1e6], np.float32)
    assert backend._quantized([x])[0].tolist() == [zero_point, zero_point + 3, 127, -128]
    # data already in the input's integer type is the user's quantization: fed as it is
    given = np.array([1, 2, 3], np.int8)
    assert backend._quantized([given])[0] is given


def test_qat_weights_take_only_as_many_values_as_their_bits_allow(built):
    _, artifacts = built
    for name, bits, levels in (("w4a4", 4, 16), ("w1a4", 1, 2)):
        artifact = artifacts[name]
        assert artifact.precision == f"w{bits}a4"
        model = onnx.load(artifact.files["onnx"])
        weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        convs = [weights[n.input[1]] for n in model.graph.node if n.op_type == "Conv"]
        assert len(convs) == 3
        for w in convs:
            assert max(len(np.unique(channel)) for channel in w) <= levels, name
        qonnx_ops = {n.op_type for n in onnx.load(artifact.files["qonnx"]).graph.node}
        assert ("BipolarQuant" if bits == 1 else "Quant") in qonnx_ops
        assert artifact.host_accuracy > 0.8, name


def test_qat_onnx_artifact_is_the_qonnx_functions_twin(built):
    from workloads.variants.qat import reference_agreement

    base, artifacts = built
    x, _ = base.data.load_eval()
    artifact = artifacts["w1a4"]
    assert reference_agreement(artifact.files["qonnx"], artifact.files["onnx"], x[:32]) >= 0.99


def test_litert_jobs_run_through_the_agent_and_other_formats_are_skipped(built, workload_file, tiny_files,
                                                                           tmp_path):
    from harness.app.cli import main

    suite = tiny_files["suite"]
    suite.write_text(suite.read_text().replace(str(tiny_files["workload"]), str(workload_file))
                     .replace('["onnxruntime", "torch"]', '["onnxruntime", "litert", "tflite-runtime"]'))
    runs = tmp_path / "runs"
    assert main(["bench", "--suite", str(suite), "--runs-dir", str(runs), "--quiet", "--no-report"]) == 0
    run_dir = next(p for p in runs.iterdir() if p.is_dir() and not p.is_symlink())
    with open(run_dir / "results.csv", newline="") as fh:
        rows = {(r["variant"], r["backend"]): r for r in csv.DictReader(fh)}
    _, artifacts = built
    for name in ("tflite-fp32", "tflite-int8"):
        row = rows[(name, "litert")]
        assert row["status"] == "ok" and float(row["latency_p50_ms"]) > 0
        assert float(row["accuracy"]) == pytest.approx(artifacts[name].host_accuracy, abs=0.005)
        assert rows[(name, "onnxruntime")]["status"] == "skipped"
        # against the ONNX baseline it was converted from (LiteRT cannot run that one)
        assert float(row["accuracy_delta"]) == pytest.approx(
            float(row["accuracy"]) - float(rows[("fp32", "onnxruntime")]["accuracy"]))
    assert rows[("w4a4", "onnxruntime")]["status"] == "ok"
    assert '"qdq_fusion": false' in rows[("w4a4", "onnxruntime")]["backend_info"]  # the artifact's option
    assert '"xnnpack": true' in rows[("tflite-int8", "litert")]["backend_info"]
    assert "runs .tflite files" in rows[("fp32", "litert")]["reason"]
    if importlib.util.find_spec("tflite_runtime") is None:
        assert "pip install tflite-runtime" in rows[("tflite-fp32", "tflite-runtime")]["reason"]


def test_a_missing_runtime_is_a_skip_that_says_what_to_install(built):
    if importlib.util.find_spec("tflite_runtime") is not None:
        pytest.skip("tflite-runtime is installed here")
    _, artifacts = built
    with pytest.raises(Unsupported, match="tflite-runtime is not installed on this device.*pip install"):
        TfliteRuntimeBackend(1, {}).load({"files": {"tflite": artifacts["tflite-fp32"].files["tflite"]}})


@pytest.mark.parametrize("variant, message", [
    ('family = "tflite"\nquantization = "int4"', "'variants[1] 'bad'.quantization' = 'int4'"),
    ('family = "qat"\nweight_bits = 9', "= 9: low-bit training takes 1 (binary)"),
    ('family = "qat"\nweight_bits = 0', "weight_bits"),
    ('family = "qat"', "weight_bits"),
])
def test_bad_lowbit_parameters_name_the_file_and_key(tmp_path, variant, message):
    path = write(tmp_path / "bad.toml", tiny_workload_toml() + f'\n[[variants]]\nname = "bad"\n{variant}\n')
    with pytest.raises(ConfigError) as error:
        load_workload(path)
    assert str(path) in str(error.value) and message in str(error.value)
