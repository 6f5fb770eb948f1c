"""Bring your own model, held to real pretrained models that ship inside registry packages
(tests/fixtures/models/README.md says where each came from) and to a scikit-learn classifier converted with
skl2onnx: edgebench's accuracy equals a bare runtime's on the same data, or the run stops before any job
with one line that says what to add."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import FIXTURES, tiny_suite_toml, write

from harness.app.cli import main
from harness.core.quantization import dequantize, quantize

MODELS = FIXTURES / "models"


def suite_file(tmp_path: Path, backends: list[str], batch_sizes=(1,)) -> Path:
    return write(tmp_path / "suite.toml", tiny_suite_toml(backends, batch_sizes, name="byo"))


def bench(tmp_path: Path, *args: str, backends=("onnxruntime",), batch_sizes=(1,)) -> tuple[int, list[dict]]:
    runs = tmp_path / "runs"
    code = main(["bench", *args, "--suite", str(suite_file(tmp_path, list(backends), batch_sizes)),
                 "--runs-dir", str(runs), "--quiet", "--no-report"])
    results = sorted(runs.glob("*/results.csv")) if runs.exists() else []
    rows = list(csv.DictReader(open(results[-1]))) if results else []
    return code, rows


def one_line_error(capsys, *fragments: str, after_builds: bool = False) -> str:
    """The error, on one line; `after_builds`: after the lines of artifacts the build phase had made (each is
    said as it is ready), nothing else."""
    err = capsys.readouterr().err.strip()
    if after_builds:
        *built, err = err.splitlines() or [""]
        assert all(re.fullmatch(r"(built|cached) +\S.*: \d+\.\d s", line) for line in built), built
    assert err.startswith("edgebench: error: ") and "\n" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


# ---- a voice-activity detector with three inputs (silero-vad's ONNX) ----

def vad_data(path: Path, with_state: bool = True) -> Path:
    """Tones with a syllable envelope (labelled 1) and faint noise (0), 512 samples at 16 kHz each."""
    rng = np.random.default_rng(0)
    t = np.arange(512) / 16000
    tones = [0.3 * np.sin(2 * np.pi * (120 + 40 * k) * t) * (1 + np.sin(2 * np.pi * 4 * t)) for k in range(30)]
    x = np.concatenate([np.stack(tones), 0.01 * rng.standard_normal((30, 512))]).astype(np.float32)
    arrays = {"input": x, "sr": np.array(16000), "y": np.array([1] * 30 + [0] * 30)}
    if with_state:
        arrays["state"] = np.zeros((2, 1, 128), np.float32)
    np.savez(path, **arrays)
    return path


def bare_vad_accuracy(data: Path, threshold: float = 0.5) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(MODELS / "silero_vad_16k_op15.onnx"), providers=["CPUExecutionProvider"])
    with np.load(data) as d:
        hits = sum(int((session.run(["output"], {"input": d["input"][i:i + 1], "state": d["state"], "sr": d["sr"]}
                                    )[0][0, 0] >= threshold) == d["y"][i]) for i in range(len(d["y"])))
        return hits / len(d["y"])


def test_a_model_with_three_inputs_is_fed_by_name_and_scored_binary(tmp_path):
    data = vad_data(tmp_path / "vad.npz")
    code, rows = bench(tmp_path, "--model", str(MODELS / "silero_vad_16k_op15.onnx"), "--data", str(data),
                       "--metric", "binary", "--output", "output", "--threshold", "0.5")
    assert code == 0 and len(rows) == 1 and rows[0]["status"] == "ok", rows
    assert rows[0]["metric"] == "binary@0.5" and int(rows[0]["n_eval"]) == 60
    assert float(rows[0]["accuracy"]) == pytest.approx(bare_vad_accuracy(data), abs=1e-12)
    # the timed call fetches both outputs (the state too), as an application would; MACs: a reason
    assert rows[0]["macs"] == "" and "macs: onnx-tool" in rows[0]["notes"]


def test_the_same_from_a_workload_file(tmp_path):
    data = vad_data(tmp_path / "vad.npz")
    workload = write(tmp_path / "vad.toml", f"""
    [workload]
    name = "vad"
    [dataset]
    name = "npz"
    path = "vad.npz"
    [model]
    path = "{MODELS / 'silero_vad_16k_op15.onnx'}"
    output = "output"
    metric = "binary"
    threshold = 0.3
    [[variants]]
    name = "fp32"
    family = "baseline"
    """)
    code, rows = bench(tmp_path, "--workload", str(workload))
    assert code == 0 and rows[0]["metric"] == "binary@0.3" and rows[0]["precision"] == "fp32"
    assert float(rows[0]["accuracy"]) == pytest.approx(bare_vad_accuracy(data, threshold=0.3), abs=1e-12)


def test_a_missing_input_array_stops_before_any_job_naming_it(tmp_path, capsys):
    data = vad_data(tmp_path / "vad.npz", with_state=False)
    code, rows = bench(tmp_path, "--model", str(MODELS / "silero_vad_16k_op15.onnx"), "--data", str(data),
                       "--metric", "binary")
    assert code == 2 and rows == []
    one_line_error(capsys, f"{data}: no array for model input 'state' [2, batch, 128] float32",
                   "'input', 'state', 'sr'")


def test_inputs_fed_whole_keep_the_batch_they_were_given_for(tmp_path):
    """state [2, batch, 128] given as [2, 1, 128] was given for batch 1: at batch 4 the job is skipped,
    saying so, before the runtime is asked; a run that measured nothing exits non-zero."""
    data = vad_data(tmp_path / "vad.npz")
    code, rows = bench(tmp_path, "--model", str(MODELS / "silero_vad_16k_op15.onnx"), "--data", str(data),
                       "--metric", "binary", batch_sizes=(1, 4))
    assert code == 0 and [r["status"] for r in rows] == ["ok", "skipped"]
    assert rows[1]["reason"] == ("input 'state' was given for batch 1 (its axis 1 is the batch axis); batch_size 4 "
                                 "needs one of that batch")


# ---- scikit-learn through skl2onnx: an int64 label first, probabilities as a ZipMap ----

@pytest.fixture(scope="module")
def sklearn_model(tmp_path_factory) -> dict:
    pytest.importorskip("skl2onnx", reason="skl2onnx (the test extra) converts the scikit-learn model")
    from skl2onnx import to_onnx
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path_factory.mktemp("sklearn")
    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float32)
    classifier = LogisticRegression(max_iter=3000).fit(x[:1400], y[:1400])
    path = folder / "digits_lr.onnx"
    path.write_bytes(to_onnx(classifier, x[:1]).SerializeToString())
    np.savez(folder / "eval.npz", x=x[1400:], y=y[1400:])
    np.savez(folder / "calib.npz", x=x[:300])
    return {"model": path, "data": folder / "eval.npz", "calibration": folder / "calib.npz",
            "accuracy": classifier.score(x[1400:], y[1400:])}


def test_a_scikit_learn_label_output_is_never_argmaxed(tmp_path, sklearn_model):
    """Its first output is an int64 label: without a metric the accuracy is empty and says why (argmax of
    the label scored 0.100 for a 0.91 model), with metric = label it is scikit-learn's own score."""
    code, rows = bench(tmp_path, "--model", str(sklearn_model["model"]), "--data", str(sklearn_model["data"]))
    assert code == 0 and rows[0]["status"] == "ok"
    assert rows[0]["accuracy"] == "" and rows[0]["metric"] == "none"
    assert "no metric: output 'output_label' [?] int64 is not class scores" in rows[0]["notes"]
    assert 'metric = "label"' in rows[0]["notes"]

    code, rows = bench(tmp_path / "label", "--model", str(sklearn_model["model"]), "--data",
                       str(sklearn_model["data"]), "--metric", "label", batch_sizes=(1, 8))
    assert code == 0 and [r["status"] for r in rows] == ["ok", "ok"]  # a dynamic batch axis takes 8
    for row in rows:
        assert float(row["accuracy"]) == pytest.approx(sklearn_model["accuracy"], abs=1e-12)


def test_static_int8_of_a_users_model_calibrates_on_its_calibration_set(tmp_path, sklearn_model):
    code, rows = bench(tmp_path, "--model", str(sklearn_model["model"]), "--data", str(sklearn_model["data"]),
                       "--metric", "label", "--calibration", str(sklearn_model["calibration"]))
    assert code == 0
    by_variant = {r["variant"]: r for r in rows}
    assert by_variant["int8"]["family"] == "quantize"
    assert float(by_variant["int8"]["accuracy"]) == pytest.approx(sklearn_model["accuracy"], abs=0.03)
    # scikit-learn's LinearClassifier is no operator onnxruntime quantizes: the row says so
    assert "the quantizer left every operator in float" in by_variant["int8"]["notes"]
    assert by_variant["int8"]["precision"] == "fp32"  # what the built file holds, not what was asked


def test_a_qdq_model_given_as_the_model_is_int8_by_what_it_holds(tmp_path, user_model):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    class Samples(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"input": user_model["x"][i:i + 1]} for i in range(50)])

        def get_next(self):
            return next(self.items, None)

    qdq = tmp_path / "qdq.onnx"
    quantize_static(str(user_model["model"]), str(qdq), Samples(), quant_format=QuantFormat.QDQ)
    code, rows = bench(tmp_path, "--model", str(qdq), "--data", str(user_model["data"]))
    assert code == 0 and rows[0]["precision"] == "int8" and rows[0]["variant"] == "as-given"
    assert float(rows[0]["accuracy"]) > 0.8


def sklearn_workload(sklearn_model: dict, model_keys: str, variants: str) -> str:
    """A workload file for the scikit-learn model: its fp32 baseline, then `variants`."""
    return f"""
    [workload]
    name = "lr"
    [dataset]
    name = "npz"
    path = "{sklearn_model['data']}"
    [model]
    path = "{sklearn_model['model']}"
    {model_keys}
    [[variants]]
    name = "fp32"
    family = "baseline"
    """ + variants


def test_without_calibration_static_int8_asks_for_it(tmp_path, sklearn_model, capsys):
    workload = write(tmp_path / "w.toml", sklearn_workload(sklearn_model, 'metric = "label"', """
    [[variants]]
    name = "int8"
    family = "quantize"
    scheme = "ort-static"
    """))
    code = main(["bench", "--workload", str(workload), "--suite", str(suite_file(tmp_path, ["onnxruntime"])),
                 "--runs-dir", str(tmp_path / "runs"), "--quiet", "--no-report"])
    assert code == 2
    one_line_error(capsys, f"{workload}: family 'quantize' (static int8) calibrates on data",
                   '[dataset] calibration = "calib.npz" (or --calibration)', after_builds=True)


@pytest.mark.parametrize("family", ["prune", "distill", "early_exit", "qat", "bottleneck"])
def test_families_that_need_the_training_graph_say_so_naming_the_key(tmp_path, sklearn_model, capsys, family):
    workload = write(tmp_path / "w.toml", sklearn_workload(sklearn_model, "", f"""
    [[variants]]
    name = "v"
    family = "{family}"
    """))
    code = main(["bench", "--workload", str(workload), "--runs-dir", str(tmp_path / "runs"), "--quiet"])
    assert code == 2
    one_line_error(capsys, f"key 'variants[1].family' = '{family}': this family needs the network's training "
                           f"graph ([model] arch = ...); a user's model takes baseline, quantize")


# ---- .tflite as people have them: int8 input, NHWC, several outputs ----

def bare_litert_accuracy(model: Path, x: np.ndarray, y: np.ndarray, output: int = 0,
                         threshold: float | None = None) -> float:
    from ai_edge_litert.interpreter import Interpreter

    from harness.core.tflite_io import tensors

    interpreter = Interpreter(model_path=str(model), num_threads=1)
    interpreter.allocate_tensors()
    source, sink = tensors(interpreter, "inputs")[0], tensors(interpreter, "outputs")[output]
    hits = 0
    for i in range(len(x)):
        sample = x[i:i + 1] if x.dtype == source["dtype"] else quantize(x[i:i + 1], source["dtype"],
                                                                       *source["quantization"])
        interpreter.set_tensor(source["index"], sample)
        interpreter.invoke()
        scores = dequantize(interpreter.get_tensor(sink["index"]), *sink["quantization"])
        predicted = scores.argmax() if threshold is None else int(scores.reshape(-1)[0] >= threshold)
        hits += int(predicted == y[i])
    return hits / len(x)


def image_data(path: Path, shape: tuple, n_classes: int, key: str = "x", dtype=np.float32) -> Path:
    rng = np.random.default_rng(1)
    if np.issubdtype(dtype, np.integer):
        x = rng.integers(-128, 128, size=(24, *shape)).astype(dtype)
    else:
        x = rng.random((24, *shape)).astype(dtype)
    np.savez(path, **{key: x, "y": rng.integers(0, n_classes, 24)})
    return path


@pytest.mark.parametrize("model, shape, classes, dtype", [
    ("cifar10_resnet_int8.tflite", (32, 32, 3), 10, np.float32),    # int8 input, floats quantized by edgebench
    ("micro_speech_int8.tflite", (49, 40, 1), 4, np.int8),           # int8 input given already quantized
    ("visual_wake_words.tflite", (96, 96, 3), 2, np.float32),        # NHWC float MobileNet
])
def test_a_tflite_model_scores_as_a_bare_litert_loop(tmp_path, model, shape, classes, dtype):
    pytest.importorskip("ai_edge_litert", reason="LiteRT (the tflite extra) runs .tflite on this machine")
    data = image_data(tmp_path / "eval.npz", shape, classes, dtype=dtype)
    code, rows = bench(tmp_path, "--model", str(MODELS / model), "--data", str(data),
                       backends=("onnxruntime", "litert"))
    by_backend = {r["backend"]: r for r in rows}
    assert code == 0 and by_backend["litert"]["status"] == "ok"
    assert by_backend["onnxruntime"]["status"] == "skipped"  # a .tflite: honest, not converted behind the back
    assert int(by_backend["litert"]["macs"]) > 0 and int(by_backend["litert"]["params"]) > 0  # LiteRT's op list
    with np.load(data) as d:
        expected = bare_litert_accuracy(MODELS / model, d["x"], d["y"])
    assert float(by_backend["litert"]["accuracy"]) == pytest.approx(expected, abs=1e-12)
    assert by_backend["litert"]["precision"] == "int8" if "int8" in model else "fp32"


def test_a_stateful_wake_word_model_with_a_uint8_score_is_scored_binary(tmp_path):
    """microWakeWord: int8 audio features in, a quantized uint8 probability out, state kept between calls
    (so the accuracy pass goes sample by sample in order, as the bare loop does)."""
    pytest.importorskip("ai_edge_litert", reason="LiteRT (the tflite extra) runs .tflite on this machine")
    model = MODELS / "hey_jarvis.tflite"
    data = image_data(tmp_path / "eval.npz", (3, 40), 2, dtype=np.int8)
    code, rows = bench(tmp_path, "--model", str(model), "--data", str(data), backends=("litert",))
    assert code == 0 and rows[0]["metric"] == "none" and 'set metric = "binary"' in rows[0]["notes"]
    code, rows = bench(tmp_path / "binary", "--model", str(model), "--data", str(data), "--metric", "binary",
                       "--threshold", "0.1", backends=("litert",))
    assert code == 0 and rows[0]["metric"] == "binary@0.1"
    with np.load(data) as d:
        expected = bare_litert_accuracy(model, d["x"], d["y"], threshold=0.1)
    assert float(rows[0]["accuracy"]) == pytest.approx(expected, abs=1e-12)


def test_a_detector_has_no_metric_and_an_unfitting_one_is_refused(tmp_path, capsys):
    pytest.importorskip("ai_edge_litert", reason="LiteRT (the tflite extra) runs .tflite on this machine")
    model = MODELS / "face_detection_short_range.tflite"
    data = image_data(tmp_path / "eval.npz", (128, 128, 3), 2)
    code, rows = bench(tmp_path, "--model", str(model), "--data", str(data), backends=("litert",))
    assert code == 0 and rows[0]["status"] == "ok" and rows[0]["accuracy"] == ""
    assert "output 'regressors' [1, 896, 16] float32 is not class scores" in rows[0]["notes"]
    capsys.readouterr()
    code, rows = bench(tmp_path / "top1", "--model", str(model), "--data", str(data), "--metric", "top1",
                       backends=("litert",))
    assert code == 2 and rows == []
    one_line_error(capsys, "metric \"top1\" does not fit output 'regressors' [1, 896, 16]",
                   "'regressors', 'classificators'")
    code, rows = bench(tmp_path / "unknown", "--model", str(model), "--data", str(data), "--output", "boxes",
                       backends=("litert",))
    assert code == 2
    one_line_error(capsys, "output 'boxes' is not an output of the model; accepted: 'regressors', 'classificators'")


def test_a_run_that_measured_nothing_exits_non_zero(tmp_path, capsys):
    data = image_data(tmp_path / "eval.npz", (96, 96, 3), 2)
    code, rows = bench(tmp_path, "--model", str(MODELS / "visual_wake_words.tflite"), "--data", str(data),
                       backends=("onnxruntime",))
    assert code == 1 and [r["status"] for r in rows] == ["skipped"]
    assert "no job of 1 measured anything" in capsys.readouterr().err


def test_a_file_in_no_known_format_is_one_line(tmp_path, capsys):
    junk = write(tmp_path / "model.pt", "not a model")
    data = image_data(tmp_path / "eval.npz", (4,), 2)
    code, _ = bench(tmp_path, "--model", str(junk), "--data", str(data))
    assert code == 2
    one_line_error(capsys, "unknown format; accepted: an .onnx or .tflite file, a Keras .keras / .h5 file, or a "
                           "SavedModel directory")


def test_integers_for_a_quantized_input_must_be_its_own(tmp_path, capsys):
    """uint8 images 0..255 cast to the int8 input would wrap around: refused, floats or int8 accepted."""
    data = image_data(tmp_path / "eval.npz", (32, 32, 3), 10, dtype=np.uint8)
    code, _ = bench(tmp_path, "--model", str(MODELS / "cifar10_resnet_int8.tflite"), "--data", str(data),
                    backends=("litert",))
    assert code == 2
    one_line_error(capsys, f"{data}: 'x' has dtype uint8; the model's input 'input_1_int8' [batch, 32, 32, 3] int8 "
                           f"is quantized: accepted: floats")


def test_a_dynamic_batch_tflite_runs_at_any_batch_size(tmp_path):
    pytest.importorskip("ai_edge_litert", reason="LiteRT (the tflite extra) runs .tflite on this machine")
    model = MODELS / "kws_dscnn.tflite"  # shape_signature [-1, 50, 10, 1]
    data = image_data(tmp_path / "eval.npz", (50, 10, 1), 12)
    code, rows = bench(tmp_path, "--model", str(model), "--data", str(data), backends=("litert",),
                       batch_sizes=(1, 4))
    assert code == 0 and [r["status"] for r in rows] == ["ok", "ok"]
    with np.load(data) as d:
        expected = bare_litert_accuracy(model, d["x"], d["y"])
    assert [float(r["accuracy"]) for r in rows] == pytest.approx([expected, expected], abs=1e-6)


@pytest.mark.parametrize("flags, says", [
    (["--threshold", "nan"], "argument --threshold: 'nan': accepted: a finite number"),
    (["--threshold", "0.4"], 'threshold = 0.4 applies to metric "binary" only, and no metric is set'),
    (["--calibration", "calib.npz"], "a .tflite is run as given, not quantized again"),
])
def test_flags_that_cannot_apply_are_one_line(tmp_path, capsys, flags, says):
    data = image_data(tmp_path / "eval.npz", (50, 10, 1), 12)
    np.savez(tmp_path / "calib.npz", x=np.zeros((4, 50, 10, 1), np.float32))
    flags = [str(tmp_path / f) if f.endswith(".npz") else f for f in flags]
    code, rows = bench(tmp_path, "--model", str(MODELS / "kws_dscnn.tflite"), "--data", str(data), *flags,
                       backends=("litert",))
    assert code == 2 and rows == []
    err = capsys.readouterr().err.strip()
    assert says in err and "\n" not in err, err


def test_a_changed_model_or_data_file_is_not_resumed(tmp_path, sklearn_model, capsys):
    data = tmp_path / "eval.npz"
    data.write_bytes(sklearn_model["data"].read_bytes())
    code, _ = bench(tmp_path, "--model", str(sklearn_model["model"]), "--data", str(data), "--metric", "label")
    assert code == 0
    with np.load(data) as d:
        np.savez(data, x=d["x"][:100], y=d["y"][:100])  # other samples under the same name
    run = next((tmp_path / "runs").iterdir())
    assert main(["bench", "--resume", str(run), "--quiet", "--no-report"]) == 2
    assert "model and data files) changed since this run started" in capsys.readouterr().err
