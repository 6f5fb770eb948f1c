"""Every bad input gets one clear line naming the file, key or value, and a non-zero exit."""

from __future__ import annotations

import numpy as np
from helpers import tiny_workload_toml, write

from harness.app.cli import main


def run_cli(capsys, *args) -> tuple[int, str]:
    code = main(list(args))
    err = capsys.readouterr().err.strip()
    return code, err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    assert err.startswith("edgebench: error: ")
    assert "\n" not in err and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


def test_unknown_target_suggests_the_closest(capsys, tmp_path):
    code, err = run_cli(capsys, "bench", "--target", "cpuu", "--runs-dir", str(tmp_path))
    assert_one_line_error(code, err, "unknown target 'cpuu'", "did you mean 'cpu'?")


def test_unknown_suite(capsys, tmp_path):
    code, err = run_cli(capsys, "bench", "--suite", "quik", "--runs-dir", str(tmp_path))
    assert_one_line_error(code, err, "unknown suite 'quik'", "did you mean 'quick'?")


def test_unknown_workload(capsys, tmp_path):
    code, err = run_cli(capsys, "bench", "--workload", "mnist-resnet9", "--runs-dir", str(tmp_path))
    assert_one_line_error(code, err, "unknown workload 'mnist-resnet9'", "mnist-resnet8")


def test_unknown_backend(capsys, tmp_path):
    code, err = run_cli(capsys, "bench", "--backend", "onnxrt", "--runs-dir", str(tmp_path))
    assert_one_line_error(code, err, "'onnxrt'", "did you mean 'onnxruntime'?", "cpu.toml")


def test_malformed_toml(capsys, tmp_path):
    bad = write(tmp_path / "bad.toml", "[workload\nname = 1\n")
    code, err = run_cli(capsys, "bench", "--workload", str(bad), "--runs-dir", str(tmp_path))
    assert_one_line_error(code, err, str(bad), "malformed TOML")


def test_misspelt_key_names_file_and_key(capsys, tmp_path):
    text = tiny_workload_toml().replace("epochs =", "epoch =")
    bad = write(tmp_path / "typo.toml", text)
    code, err = run_cli(capsys, "bench", "--workload", str(bad), "--runs-dir", str(tmp_path))
    assert_one_line_error(code, err, str(bad), "'training.epoch' is not a known key",
                          "did you mean 'epochs'?")


def test_unknown_model_arch(capsys, tmp_path):
    bad = write(tmp_path / "arch.toml", tiny_workload_toml().replace("small_cnn", "resnet88"))
    code, err = run_cli(capsys, "bench", "--workload", str(bad), "--runs-dir", str(tmp_path))
    assert_one_line_error(code, err, "model.arch", "'resnet88'", "resnet8")


def test_bad_thread_count_in_suite(capsys, tmp_path):
    suite = write(tmp_path / "s.toml", '[suite]\nworkloads = ["digits-cnn"]\n[matrix]\nthreads = [0]\n')
    code, err = run_cli(capsys, "bench", "--suite", str(suite), "--runs-dir", str(tmp_path))
    assert_one_line_error(code, err, "matrix.threads", "integers >= 1 or \"all\"")


def test_missing_model_file(capsys, tmp_path, user_model):
    code, err = run_cli(capsys, "bench", "--model", str(tmp_path / "nope.onnx"), "--data",
                        str(user_model["data"]), "--runs-dir", str(tmp_path / "runs"))
    assert_one_line_error(code, err, "nope.onnx", "not found")
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.iterdir()), "a bad input must stop before a run is created"


def test_corrupt_model_file(capsys, tmp_path, user_model):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(user_model["model"].read_bytes()[:200])
    code, err = run_cli(capsys, "bench", "--model", str(corrupt), "--data", str(user_model["data"]),
                        "--runs-dir", str(tmp_path / "runs"))
    assert_one_line_error(code, err, "corrupt.onnx", "not a valid ONNX model")


def test_npz_without_y(capsys, tmp_path, user_model):
    data = tmp_path / "noy.npz"
    np.savez(data, x=user_model["x"][:10], labels=user_model["y"][:10])
    code, err = run_cli(capsys, "bench", "--model", str(user_model["model"]), "--data", str(data),
                        "--runs-dir", str(tmp_path / "runs"))
    assert_one_line_error(code, err, "noy.npz", "missing array(s) y", "found: x, labels")


def test_npz_with_a_shape_the_model_cannot_take(capsys, tmp_path, user_model):
    data = tmp_path / "shape.npz"
    np.savez(data, x=np.zeros((10, 3, 8, 8), np.float32), y=np.zeros(10, np.int64))
    code, err = run_cli(capsys, "bench", "--model", str(user_model["model"]), "--data", str(data),
                        "--runs-dir", str(tmp_path / "runs"))
    assert_one_line_error(code, err, "shape.npz", "(3, 8, 8)", "['batch', 1, 8, 8]")


def test_labels_out_of_range(capsys, tmp_path, user_model):
    data = tmp_path / "labels.npz"
    np.savez(data, x=user_model["x"][:10], y=np.full(10, 12))
    code, err = run_cli(capsys, "bench", "--model", str(user_model["model"]), "--data", str(data),
                        "--runs-dir", str(tmp_path / "runs"))
    assert_one_line_error(code, err, "labels.npz", "label 12", "10 classes")


def test_unwritable_runs_dir(capsys, tmp_path, tiny_files):
    blocker = tmp_path / "afile"
    blocker.write_text("a file where the runs directory should be")
    code, err = run_cli(capsys, "bench", "--suite", str(tiny_files["suite"]), "--runs-dir", str(blocker))
    assert_one_line_error(code, err, str(blocker), "cannot write the run directory")
