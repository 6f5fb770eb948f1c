"""A user's .tflite model benchmarked on a Raspberry Pi that has the legacy runtime: the "board" is a real
sshd on 127.0.0.1 running the shipped agent on the Python 3.8 board environment, which has tflite-runtime
(numpy 1.24). Its accuracy must equal a bare tflite_runtime loop run in that same interpreter."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import FIXTURES, PROJECT_ROOT, tiny_suite_toml, tiny_workload_toml, write
from sshd import SSHD, start_board

from harness.app.cli import main

MODELS = FIXTURES / "models"
BOARD_PY38 = PROJECT_ROOT / ".venv-boards" / "py3.8" / "bin" / "python"
N_SAMPLES = 40

pytestmark = pytest.mark.skipif(not os.path.exists(SSHD), reason="OpenSSH server not installed "
                                "(apt-get install openssh-server; .ci/run does)")

# What a Raspberry Pi application does with tflite_runtime, written without the harness: the float sample
# quantized with the input's (scale, zero point) as harness/core/quantization.py does (data already in the
# input's dtype is fed as is), one invoke per sample, argmax of the first output, dequantized.
BARE_TFLITE = r"""
import json, sys
import numpy as np
from tflite_runtime.interpreter import Interpreter

model, data = sys.argv[1], sys.argv[2]
interpreter = Interpreter(model_path=model, num_threads=1)
interpreter.allocate_tensors()
inp = interpreter.get_input_details()[0]
out = interpreter.get_output_details()[0]
with np.load(data) as npz:
    x, y = npz["x"], npz["y"]
dtype = np.dtype(inp["dtype"])
if x.dtype != dtype:
    if np.issubdtype(dtype, np.floating):
        x = np.ascontiguousarray(x, dtype=dtype)
    else:
        scale, zero_point = inp["quantization"]
        info = np.iinfo(dtype)
        x = np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)
predictions = []
for sample in x:
    interpreter.set_tensor(inp["index"], sample[None])
    interpreter.invoke()
    scores = interpreter.get_tensor(out["index"])
    scale, zero_point = out["quantization"]
    if not np.issubdtype(scores.dtype, np.floating) and scale != 0:
        scores = (scores.astype(np.float32) - zero_point) * scale
    predictions.append(int(np.argmax(scores[0])))
print(json.dumps({"accuracy": float(np.mean(np.asarray(predictions) == y)), "predictions": predictions}))
"""


def tflite_board_python() -> Path:
    if not BOARD_PY38.exists():
        pytest.skip("no Python 3.8 board environment here (`make test` builds .venv-boards/py3.8 where a "
                    "python3.8 exists)")
    probe = subprocess.run([str(BOARD_PY38), "-c", "import tflite_runtime.interpreter"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("tflite-runtime is not installed in .venv-boards/py3.8 (`make test` installs it there)")
    return BOARD_PY38


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    python = tflite_board_python()
    board = start_board(tmp_path_factory.mktemp("board"))
    board.python = str(python)  # a Raspberry Pi with Python 3.8, numpy 1.24 and tflite-runtime
    yield board
    board.stop()


def bench_model(board, tmp_path: Path, model: Path, data: Path) -> dict:
    """`edgebench bench --model --data` on the board with tflite-runtime: the one row of the run."""
    target = write(tmp_path / "rpi.toml", board.target_toml("rpi", ["tflite-runtime"]))
    suite = write(tmp_path / "suite.toml", tiny_suite_toml(["tflite-runtime"], name="tiny-tflite"))
    runs = tmp_path / "runs"
    code = main(["bench", "--model", str(model), "--data", str(data), "--target", str(target),
                 "--suite", str(suite), "--runs-dir", str(runs), "--backend", "tflite-runtime", "--quiet"])
    assert code == 0
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir() and not p.is_symlink()]
    with open(run_dir / "results.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    return row


def eval_set(path: Path, kind: str) -> Path:
    """40 fixed samples and labels: float MFCC-sized features (kws_dscnn), float values in the int8 range, or the
    same already as int8 (micro_speech_int8, an int8 input with scale 1, zero point 0)."""
    rng = np.random.default_rng(12)
    if kind == "float":
        x = rng.normal(0.0, 50.0, (N_SAMPLES, 50, 10, 1)).astype(np.float32)  # MFCC-sized values
        y = rng.integers(0, 12, N_SAMPLES)
    else:
        x = rng.uniform(-128.0, 127.0, (N_SAMPLES, 49, 40, 1)).astype(np.float32)
        if kind == "int8":
            x = np.round(x).astype(np.int8)
        y = rng.integers(0, 4, N_SAMPLES)
    np.savez(path, x=x, y=y)
    return path


@pytest.mark.parametrize("model, kind", [
    ("kws_dscnn.tflite", "float"),
    ("micro_speech_int8.tflite", "float-in-int8-range"),
    ("micro_speech_int8.tflite", "int8"),
], ids=["kws_dscnn-float", "micro_speech-float-data", "micro_speech-int8-data"])
def test_tflite_runtime_on_the_board_scores_as_a_bare_interpreter_does(board, tmp_path, model, kind):
    data = eval_set(tmp_path / "eval.npz", kind)
    row = bench_model(board, tmp_path, MODELS / model, data)  # metric: top1 by default
    assert row["status"] == "ok", row["reason"]
    assert row["backend"] == "tflite-runtime" and row["metric"] == "top1"
    info = json.loads(row["backend_info"])
    assert info["runtime"] == "tflite-runtime" and info["version"]
    assert info["input_dtype"] == ("float32" if kind == "float" else "int8")
    bare = subprocess.run([str(board.python), "-c", BARE_TFLITE, str(MODELS / model), str(data)],
                          capture_output=True, text=True, check=True)
    expected = json.loads(bare.stdout)
    assert len(set(expected["predictions"])) > 1  # the data moves the model: the check can tell runs apart
    assert float(row["accuracy"]) == expected["accuracy"]  # same runtime, same data: exactly


def test_a_model_without_a_metric_is_timed_and_says_why_accuracy_is_empty(board, tmp_path):
    rng = np.random.default_rng(3)
    data = tmp_path / "eval.npz"
    np.savez(data, input=rng.uniform(-1.0, 1.0, (4, 128, 128, 3)).astype(np.float32))  # no labels
    row = bench_model(board, tmp_path, MODELS / "face_detection_short_range.tflite", data)
    assert row["status"] == "ok", row["reason"]
    assert json.loads(row["backend_info"])["runtime"] == "tflite-runtime"
    assert row["accuracy"] == "" and row["metric"] == "none"
    assert "no metric" in row["notes"] and "regressors" in row["notes"] and "not class scores" in row["notes"]
    assert float(row["latency_p50_ms"]) > 0


def test_an_early_exit_runs_its_tflite_stages_on_the_board(board, tmp_path):
    """`tflite = true`: both stages are staged to the board and run there as two tflite-runtime calls;
    threshold 0 sends every sample out at the exit, 1 none (so stage 1's outputs reach the rule intact)."""
    workload = write(tmp_path / "exit.toml", tiny_workload_toml(name="tiny-board-exit", epochs=2) + """
    [[variants]]
    name = "lite"
    family = "early_exit"
    thresholds = [0.0, 1.0]
    epochs = 1
    tflite = true
    """)
    target = write(tmp_path / "rpi.toml", board.target_toml("rpi", ["tflite-runtime"]))
    suite = write(tmp_path / "suite.toml", tiny_suite_toml(["tflite-runtime"], workloads=[str(workload)],
                                                          name="tiny-board-exit"))
    runs = tmp_path / "runs"
    assert main(["bench", "--target", str(target), "--suite", str(suite), "--runs-dir", str(runs), "--quiet",
                 "--no-report"]) == 0
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir() and not p.is_symlink()]
    with open(run_dir / "results.csv", newline="") as fh:
        rows = {r["variant"]: r for r in csv.DictReader(fh)}
    everyone, nobody = rows["lite-t0"], rows["lite-t1"]
    for row in (everyone, nobody):
        assert (row["status"], row["exit_path"]) == ("ok", "two-stage"), row["reason"]
        assert json.loads(row["backend_info"])["runtime"] == "tflite-runtime"
        assert float(row["accuracy"]) > 0.5  # ten digits: far above chance
    assert (float(everyone["exit_rate"]), float(nobody["exit_rate"])) == (1.0, 0.0)
    assert float(everyone["expected_macs"]) < float(nobody["expected_macs"])
