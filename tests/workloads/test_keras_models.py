"""A Keras model and a SavedModel through `edgebench bench --model`: converted on the host with TensorFlow's
own tools, they come out as ONNX rows (tf2onnx; onnxruntime, and its static int8) beside fp32 and
full-integer int8 .tflite rows (TensorFlow's TFLite converter; LiteRT), each scored on the device."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
from helpers import tiny_suite_toml, write

from harness.app.cli import main

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
keras = pytest.importorskip("keras", reason="TensorFlow/Keras is the tensorflow extra (pip install "
                                            "'edgebench[tensorflow]'); make installs it for the tests")
pytest.importorskip("ai_edge_litert", reason="LiteRT (the tflite extra) runs the .tflite rows")


@pytest.fixture(scope="module")
def keras_model(tmp_path_factory) -> dict:
    """A small CNN trained on the 8x8 digits (NHWC), saved as .keras and as a SavedModel, with its own
    accuracy on the evaluation split, and evaluation and calibration sets."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[..., None]
    y = data.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1), name="image"),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(10, name="logits"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:1400], y[:1400], epochs=3, batch_size=32, verbose=0)
    folder = tmp_path_factory.mktemp("keras")
    model.save(folder / "digits.keras")
    model.export(str(folder / "digits_saved_model"), verbose=False)
    np.savez(folder / "eval.npz", image=x[1400:], y=y[1400:])
    np.savez(folder / "calib.npz", image=x[:200])
    predicted = model.predict(x[1400:], verbose=0).argmax(axis=1)
    return {"dir": folder, "accuracy": float((predicted == y[1400:]).mean())}


def rows_of(runs: Path) -> dict:
    results = sorted(runs.glob("*/results.csv"))
    return {(r["variant"], r["backend"]): r for r in csv.DictReader(open(results[-1]))}


@pytest.mark.parametrize("model", ["digits.keras", "digits_saved_model"])
def test_a_tensorflow_model_comes_out_as_onnx_and_tflite_rows(tmp_path, keras_model, model):
    folder = keras_model["dir"]
    suite = write(tmp_path / "suite.toml", tiny_suite_toml(["onnxruntime", "litert"], name="byo"))
    code = main(["bench", "--model", str(folder / model), "--data", str(folder / "eval.npz"), "--calibration",
                 str(folder / "calib.npz"), "--suite", str(suite), "--runs-dir", str(tmp_path / "runs"), "--quiet",
                 "--no-report"])
    rows = rows_of(tmp_path / "runs")
    assert code == 0  # the ONNX variants cannot run in LiteRT, nor the .tflite ones in onnxruntime: skipped
    ran = {key: row for key, row in rows.items() if row["status"] == "ok"}
    assert set(ran) == {("as-given", "onnxruntime"), ("int8", "onnxruntime"), ("tflite-fp32", "litert"),
                        ("tflite-int8", "litert")}, {k: r["reason"] for k, r in rows.items()}
    assert {k: r["precision"] for k, r in ran.items()} == {
        ("as-given", "onnxruntime"): "fp32", ("int8", "onnxruntime"): "int8",
        ("tflite-fp32", "litert"): "fp32", ("tflite-int8", "litert"): "int8"}
    accuracy = {key: float(row["accuracy"]) for key, row in ran.items()}
    # the same network in ONNX and fp32 .tflite scores as Keras itself (a sample may flip on rounding)
    assert accuracy[("as-given", "onnxruntime")] == pytest.approx(keras_model["accuracy"], abs=1 / 397 + 1e-9)
    assert accuracy[("tflite-fp32", "litert")] == pytest.approx(keras_model["accuracy"], abs=1 / 397 + 1e-9)
    for key in (("int8", "onnxruntime"), ("tflite-int8", "litert")):
        assert abs(accuracy[key] - keras_model["accuracy"]) < 0.04, (key, accuracy)
    info = ran[("tflite-int8", "litert")]["backend_info"]
    assert '"input_dtype": "int8"' in info  # full-integer: the float images are quantized before timing


def test_a_real_keras_h5_from_a_package_scores_as_keras(tmp_path):
    """rock_paper_scissors.h5 (Silicon Labs' MLTK wheel, tests/fixtures/models/README.md): a legacy tf.keras
    model; its ONNX form (tf2onnx) scores exactly as Keras' own predict on the same images."""
    model_path = Path(__file__).resolve().parents[1] / "fixtures" / "models" / "rock_paper_scissors.h5"
    rng = np.random.default_rng(3)
    x = rng.random((40, 96, 96, 1)).astype(np.float32)
    model = keras.models.load_model(model_path, compile=False)
    predicted = model.predict(x, verbose=0).argmax(axis=1)
    y = np.where(rng.random(40) < 0.5, predicted, rng.integers(0, 3, 40))  # labels the model partly gets right
    np.savez(tmp_path / "eval.npz", x=x, y=y)
    suite = write(tmp_path / "suite.toml", tiny_suite_toml(["onnxruntime"], name="byo"))
    code = main(["bench", "--model", str(model_path), "--data", str(tmp_path / "eval.npz"), "--suite", str(suite),
                 "--runs-dir", str(tmp_path / "runs"), "--quiet", "--no-report"])
    rows = rows_of(tmp_path / "runs")
    assert code == 0 and rows[("as-given", "onnxruntime")]["status"] == "ok"
    assert float(rows[("as-given", "onnxruntime")]["accuracy"]) == pytest.approx((predicted == y).mean(), abs=1e-12)
    # without a calibration set its .tflite int8 is dynamic-range: int8 weights, float input
    assert rows[("tflite-int8", "onnxruntime")]["status"] == "skipped"
