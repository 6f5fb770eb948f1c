"""A user's Keras/SavedModel converted to .tflite (fp32, dynamic-range, full-integer int8) and to ONNX: the
outputs match Keras', int8 is really int8 and stays accurate, and the input and output names agree across
all formats so one .npz feeds them all."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow's first import: no C++ info lines
tf = pytest.importorskip("tensorflow", reason="TensorFlow is an optional extra (edgebench[tensorflow])")
keras = pytest.importorskip("keras", reason="Keras comes with TensorFlow (edgebench[tensorflow])")
ort = pytest.importorskip("onnxruntime")
litert = pytest.importorskip("ai_edge_litert.interpreter", reason="LiteRT runs the converted .tflite files")

from harness.core.errors import ConfigError  # noqa: E402
from workloads.tf_models import is_tf_model, tf_input_names, tf_output_names, tf_to_onnx, tf_to_tflite  # noqa: E402

FORMATS = ("keras", "h5", "saved_model")


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[..., None]  # NHWC
    y = data.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    return x[:1400], y[:1400], x[1400:], y[1400:]


@pytest.fixture(scope="module")
def cnn(digits, tmp_path_factory):
    """A small CNN trained for three epochs on the digits, saved in all three formats."""
    x_train, y_train, _, _ = digits
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1), name="image"),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),  # 18k weights: dynamic-range quantizes tensors over 1k
        keras.layers.Dense(10, name="logits"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train, y_train, epochs=3, batch_size=32, verbose=0)
    return model, _saved(model, tmp_path_factory.mktemp("cnn"))


@pytest.fixture(scope="module")
def two_inputs(tmp_path_factory):
    """A functional model with two inputs and two outputs, named out of alphabetical order."""
    keras.utils.set_random_seed(1)
    zeta = keras.Input((6,), name="zeta")
    alpha = keras.Input((4, 2), name="alpha")
    joined = keras.layers.Concatenate()([zeta, keras.layers.Flatten()(alpha)])
    hidden = keras.layers.Dense(16, activation="relu")(joined)
    model = keras.Model([zeta, alpha], [keras.layers.Dense(3, name="score")(hidden),
                                        keras.layers.Dense(1, activation="sigmoid", name="aux")(hidden)])
    return model, _saved(model, tmp_path_factory.mktemp("two"))


def _saved(model, folder) -> dict:
    model.save(folder / "model.keras")
    model.save(folder / "model.h5")
    model.export(str(folder / "saved"), verbose=False)
    return {"keras": folder / "model.keras", "h5": folder / "model.h5", "saved_model": folder / "saved"}


def _run_tflite(path, feed: dict) -> dict:
    """Sample by sample through the signature runner (batch fixed at 1), quantizing int8 inputs."""
    interpreter = litert.Interpreter(model_path=str(path))
    runner = interpreter.get_signature_runner()
    inputs, outputs = runner.get_input_details(), runner.get_output_details()
    results = {name: [] for name in outputs}
    for i in range(len(next(iter(feed.values())))):
        given = {}
        for name, detail in inputs.items():
            sample = feed[name][i:i + 1]
            if detail["dtype"] == np.int8:
                scale, zero = detail["quantization"]
                sample = np.clip(np.round(sample / scale) + zero, -128, 127).astype(np.int8)
            given[name] = sample
        for name, value in runner(**given).items():
            scale, zero = outputs[name]["quantization"]
            results[name].append((value.astype(np.float32) - zero) * scale if scale else value)
    return {name: np.concatenate(values) for name, values in results.items()}


def _run_onnx(path, feed: dict) -> dict:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(None, feed)))


def _keras_outputs(model, feed: dict, names: list[str]) -> dict:
    produced = model.predict([feed[tensor.name] for tensor in model.inputs], verbose=0)
    return dict(zip(names, produced if isinstance(produced, list) else [produced]))


def test_model_files_are_recognized(cnn, tmp_path):
    _, paths = cnn
    assert all(is_tf_model(path) for path in paths.values())
    assert is_tf_model(tmp_path / "missing.keras")  # by name, so that it gets this module's error
    assert not is_tf_model(tmp_path)  # a directory without saved_model.pb
    assert not is_tf_model(tmp_path / "model.onnx")


@pytest.mark.parametrize("fmt", FORMATS)
def test_cnn_fp32_tflite_and_onnx_match_keras(cnn, digits, tmp_path, fmt):
    model, paths = cnn
    x_eval = digits[2][:50]
    expected_output = "output_0" if fmt == "saved_model" else "logits"  # model.export numbers its outputs
    assert tf_input_names(paths[fmt]) == ["image"]
    assert tf_output_names(paths[fmt]) == [expected_output]
    reference = model.predict(x_eval, verbose=0)

    tf_to_tflite(paths[fmt], tmp_path / "fp32.tflite", "none")
    interpreter = litert.Interpreter(model_path=str(tmp_path / "fp32.tflite"))
    assert interpreter.get_signature_list() == {"serving_default": {"inputs": ["image"],
                                                                    "outputs": [expected_output]}}
    # the tensors themselves carry TensorFlow's names; only the signature has the model's
    assert interpreter.get_input_details()[0]["name"] == "serving_default_image:0"
    assert list(interpreter.get_input_details()[0]["shape"]) == [1, 8, 8, 1]  # batch fixed at 1
    np.testing.assert_allclose(_run_tflite(tmp_path / "fp32.tflite", {"image": x_eval})[expected_output],
                               reference, rtol=1e-4, atol=1e-4)

    tf_to_onnx(paths[fmt], tmp_path / "model.onnx")
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape) for i in session.get_inputs()] == [("image", ["batch", 8, 8, 1])]
    assert [o.name for o in session.get_outputs()] == [expected_output]
    np.testing.assert_allclose(_run_onnx(tmp_path / "model.onnx", {"image": x_eval})[expected_output],
                               reference, rtol=1e-4, atol=1e-4)


def test_cnn_int8_is_integer_and_accurate_and_dynamic_is_smaller(cnn, digits, tmp_path):
    model, paths = cnn
    x_train, _, x_eval, y_eval = digits
    keras_accuracy = float((model.predict(x_eval, verbose=0).argmax(axis=1) == y_eval).mean())
    assert keras_accuracy > 0.85  # really trained

    tf_to_tflite(paths["keras"], tmp_path / "int8.tflite", "int8", calibration={"image": x_train})
    interpreter = litert.Interpreter(model_path=str(tmp_path / "int8.tflite"))
    assert [d["dtype"] for d in interpreter.get_input_details()] == [np.int8]
    assert [d["dtype"] for d in interpreter.get_output_details()] == [np.int8]
    logits = _run_tflite(tmp_path / "int8.tflite", {"image": x_eval})["logits"]
    assert abs(float((logits.argmax(axis=1) == y_eval).mean()) - keras_accuracy) <= 0.03

    tf_to_tflite(paths["keras"], tmp_path / "fp32.tflite", "none")
    tf_to_tflite(paths["keras"], tmp_path / "dynamic.tflite", "dynamic")
    assert (tmp_path / "dynamic.tflite").stat().st_size < 0.5 * (tmp_path / "fp32.tflite").stat().st_size


@pytest.mark.parametrize("fmt", ["keras", "saved_model"])
def test_two_inputs_convert_with_names_lined_up(two_inputs, tmp_path, fmt):
    model, paths = two_inputs
    rng = np.random.default_rng(0)
    feed = {"zeta": rng.normal(size=(40, 6)).astype(np.float32),
            "alpha": rng.normal(size=(40, 4, 2)).astype(np.float32)}
    # Keras keeps its own order and output names; a SavedModel signature has sorted keys and numbered outputs
    inputs, outputs = (["zeta", "alpha"], ["score", "aux"]) if fmt == "keras" else (["alpha", "zeta"],
                                                                                     ["output_0", "output_1"])
    assert tf_input_names(paths[fmt]) == inputs
    assert tf_output_names(paths[fmt]) == outputs
    reference = _keras_outputs(model, feed, outputs)

    tf_to_onnx(paths[fmt], tmp_path / "model.onnx")
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == inputs
    assert [o.name for o in session.get_outputs()] == outputs
    converted = _run_onnx(tmp_path / "model.onnx", feed)
    for name in outputs:
        np.testing.assert_allclose(converted[name], reference[name], rtol=1e-4, atol=1e-5)

    tf_to_tflite(paths[fmt], tmp_path / "fp32.tflite", "none")
    signature = litert.Interpreter(model_path=str(tmp_path / "fp32.tflite")).get_signature_list()["serving_default"]
    assert sorted(signature["inputs"]) == sorted(inputs) and sorted(signature["outputs"]) == sorted(outputs)
    converted = _run_tflite(tmp_path / "fp32.tflite", feed)
    for name in outputs:
        np.testing.assert_allclose(converted[name], reference[name], rtol=1e-4, atol=1e-5)

    # full-integer with a representative dataset that feeds both inputs
    tf_to_tflite(paths[fmt], tmp_path / "int8.tflite", "int8", calibration=feed)
    interpreter = litert.Interpreter(model_path=str(tmp_path / "int8.tflite"))
    assert {d["dtype"] for d in interpreter.get_input_details() + interpreter.get_output_details()} == {np.int8}
    converted = _run_tflite(tmp_path / "int8.tflite", feed)
    for name in outputs:
        np.testing.assert_allclose(converted[name], reference[name], atol=0.15)


def test_int8_checks_its_calibration_data(two_inputs, tmp_path):
    _, paths = two_inputs
    with pytest.raises(ConfigError, match="needs calibration data"):
        tf_to_tflite(paths["keras"], tmp_path / "int8.tflite", "int8")
    with pytest.raises(ConfigError, match="no array for input.*alpha"):
        tf_to_tflite(paths["keras"], tmp_path / "int8.tflite", "int8", calibration={"zeta": np.zeros((4, 6))})
    with pytest.raises(ConfigError, match="quantization \"int4\""):
        tf_to_tflite(paths["keras"], tmp_path / "int4.tflite", "int4")


def test_missing_and_non_model_files_name_the_path(tmp_path):
    missing = tmp_path / "missing.keras"
    with pytest.raises(ConfigError, match="missing.keras: no such file"):
        tf_input_names(missing)
    garbage = tmp_path / "garbage.h5"
    garbage.write_text("not a model\n")
    with pytest.raises(ConfigError, match="garbage.h5: not a Keras model"):
        tf_to_onnx(garbage, tmp_path / "out.onnx")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="empty: not a SavedModel directory"):
        tf_to_tflite(tmp_path / "empty", tmp_path / "out.tflite", "none")
    other = tmp_path / "model.pt"
    other.write_bytes(b"\0")
    with pytest.raises(ConfigError, match="model.pt: not a TensorFlow model"):
        tf_input_names(other)
