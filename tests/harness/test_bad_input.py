"""Every bad input gets one clear line naming the file, key or value, and a non-zero exit."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import TINY_PROTOCOL, tiny_workload_toml, write

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
    assert_one_line_error(code, err, "matrix.threads", "integers from 1 to 1024 or \"all\"")


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
    assert_one_line_error(code, err, "shape.npz", "[10, 3, 8, 8]", "['batch', 1, 8, 8]")


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


# --- every knob from every source, walked the way a fuzzer would: wrong type, nan, inf, negative, zero,
# empty, unknown key. Each must stop before anything is built, with one line naming where, key and value.

TARGET = """
[target]
name = "t"
adapter = "cpu"
backends = ["onnxruntime", "torch", "litert", "tensorrt", "finn"]
job_timeout_s = 900
[backends.onnxruntime]
allow_spinning = true
"""

BOARD = """
[target]
name = "b"
adapter = "{adapter}"
host = "board"
backends = ["onnxruntime"]
"""

SUITE = """
[suite]
name = "s"
workloads = ["{workload}"]""" + TINY_PROTOCOL + """[matrix]
backends = ["onnxruntime"]
threads = [1]
batch_sizes = [1]
"""

# (id, replace this, with that, fragments of the one-line error)
TARGET_CASES = [
    ("timeout-nan", "job_timeout_s = 900", "job_timeout_s = nan", ["target.job_timeout_s", "nan", "finite"]),
    ("timeout-inf", "job_timeout_s = 900", "job_timeout_s = inf", ["target.job_timeout_s", "inf", "finite"]),
    ("timeout-negative", "job_timeout_s = 900", "job_timeout_s = -5", ["target.job_timeout_s", "-5", ">= 1"]),
    ("timeout-zero", "job_timeout_s = 900", "job_timeout_s = 0", ["target.job_timeout_s", ">= 1"]),
    ("timeout-string", "job_timeout_s = 900", 'job_timeout_s = "900"', ["target.job_timeout_s", "expected float"]),
    ("timeout-bool", "job_timeout_s = 900", "job_timeout_s = true", ["target.job_timeout_s", "expected float"]),
    ("unknown-target-key", "job_timeout_s = 900", "job_timeout = 900",
     ["'target.job_timeout' is not a known key", "did you mean 'job_timeout_s'?"]),
    ("cpu-takes-no-board-keys", "job_timeout_s = 900", 'pin_cpus = "1"', ["'target.pin_cpus' is not a known key"]),
    ("empty-name", 'name = "t"', 'name = ""', ["target.name", "letters, digits"]),
    ("path-name", 'name = "t"', 'name = "../t"', ["target.name", "'../t'", "letters, digits"]),
    ("unknown-adapter", 'adapter = "cpu"', 'adapter = "cpuu"', ["target.adapter", "'cpuu'", "did you mean 'cpu'?"]),
    ("backends-empty", 'backends = ["onnxruntime", "torch", "litert", "tensorrt", "finn"]', "backends = []",
     ["target.backends", "non-empty"]),
    ("backends-not-strings", 'backends = ["onnxruntime", "torch", "litert", "tensorrt", "finn"]',
     "backends = [1]", ["target.backends", "1 is not a backend name"]),
    ("backends-twice", '"torch", "litert"', '"torch", "torch"', ["target.backends", "'torch' is listed twice"]),
    ("ort-level-unknown", "allow_spinning = true", 'graph_optimization_level = "max"',
     ["[backends.onnxruntime]", "'graph_optimization_level' = 'max'", "'disabled'", "'all'"]),
    ("ort-spinning-string", "allow_spinning = true", 'allow_spinning = "yes"',
     ["[backends.onnxruntime]", "'allow_spinning' = 'yes'", "true or false"]),
    ("ort-providers-empty", "allow_spinning = true", "providers = []",
     ["[backends.onnxruntime]", "'providers' = []", "non-empty list"]),
    ("ort-unknown-option", "allow_spinning = true", "allow_spining = true",
     ["[backends.onnxruntime]", "'allow_spining' is not a known option", "did you mean 'allow_spinning'?"]),
    ("litert-misspelt", "allow_spinning = true", "allow_spinning = true\n[backends.litert]\nuse_xnnpak = true",
     ["[backends.litert]", "'use_xnnpak'", "did you mean 'use_xnnpack'?"]),
    ("litert-xnnpack-int", "allow_spinning = true", "allow_spinning = true\n[backends.litert]\nuse_xnnpack = 1",
     ["[backends.litert]", "'use_xnnpack' = 1", "true or false"]),
    ("torch-device", "allow_spinning = true", 'allow_spinning = true\n[backends.torch]\ndevice = "gpu"',
     ["[backends.torch]", "'device' = 'gpu'", "'cuda'"]),
    ("tensorrt-precision", "allow_spinning = true",
     'allow_spinning = true\n[backends.tensorrt]\nprecision = "int8"', ["[backends.tensorrt]", "'int8'", "'fp16'"]),
    ("tensorrt-workspace-zero", "allow_spinning = true",
     "allow_spinning = true\n[backends.tensorrt]\nworkspace_mb = 0", ["'workspace_mb' = 0", "integer > 0"]),
    ("finn-timeout-nan", "allow_spinning = true", "allow_spinning = true\n[backends.finn]\ntimeout_s = nan",
     ["[backends.finn]", "'timeout_s' = nan", "finite number > 0"]),
    ("finn-dma-empty", "allow_spinning = true", 'allow_spinning = true\n[backends.finn]\ndma_in = ""',
     ["[backends.finn]", "'dma_in' = ''", "non-empty string"]),
    ("options-for-unlisted-backend", "allow_spinning = true", "allow_spinning = true\n[backends.dpu]\nx = 1",
     ["backends.dpu", "which [target] backends does not list"]),
    ("power-strict-string", "allow_spinning = true",
     'allow_spinning = true\n[power]\nsource = "emulated-ina219"\nstrict = "false"',
     ["[power]", "'strict' = 'false'", "true or false"]),
    ("power-idle-nan", "allow_spinning = true",
     'allow_spinning = true\n[power]\nsource = "emulated-ina219"\nidle_s = nan',
     ["[power]", "'idle_s' = nan", "from 0 to 3600"]),
    ("power-min-samples-negative", "allow_spinning = true",
     'allow_spinning = true\n[power]\nsource = "emulated-ina219"\nmin_samples = -3',
     ["[power]", "'min_samples' = -3", "integer >= 1"]),
    ("power-rate-inf", "allow_spinning = true",
     'allow_spinning = true\n[power]\nsource = "emulated-ina219"\nrate_hz = inf',
     ["[power]", "'rate_hz' = inf", "> 0"]),
    ("power-unknown-source", "allow_spinning = true", 'allow_spinning = true\n[power]\nsource = "ina220"',
     ["[power]", "unknown power source 'ina220'", "ina219"]),
]


@pytest.mark.parametrize("old,new,fragments", [c[1:] for c in TARGET_CASES], ids=[c[0] for c in TARGET_CASES])
def test_bad_target_file(capsys, tmp_path, tiny_files, old, new, fragments):
    assert old in TARGET
    target = write(tmp_path / "t.toml", TARGET.replace(old, new, 1))
    code, err = run_cli(capsys, "bench", "--target", str(target), "--suite", str(tiny_files["suite"]),
                        "--runs-dir", str(tmp_path / "runs"))
    assert_one_line_error(code, err, str(target), *fragments)
    assert not (tmp_path / "runs").exists()


BOARD_CASES = [
    ("rpi-misspelt-key", "rpi", 'pin_cpu = "2-3"', ["'target.pin_cpu' is not a known key", "did you mean 'pin_cpus'?"]),
    ("rpi-bad-cpu-list", "rpi", 'pin_cpus = "two"', ["target.pin_cpus", "'two'", "taskset"]),
    ("board-port-zero", "rpi", "port = 0", ["target.port", "0", ">= 1 and <= 65535"]),
    ("board-port-string", "pynq", 'port = "22"', ["target.port", "expected int"]),
    ("board-empty-python", "pynq", 'python = ""', ["target.python", "non-empty"]),
    ("jetson-lock-string", "jetson", 'lock_clocks = "yes"', ["target.lock_clocks", "expected bool"]),
    ("board-strictness", "rpi", 'strict_host_key_checking = "no"', ["target.strict_host_key_checking", "accept-new"]),
]


@pytest.mark.parametrize("adapter,extra,fragments", [c[1:] for c in BOARD_CASES], ids=[c[0] for c in BOARD_CASES])
def test_bad_board_key_is_refused_when_the_target_is_read(capsys, tmp_path, tiny_files, adapter, extra, fragments):
    """Board keys are checked when the file is read: no SSH connection is tried."""
    target = write(tmp_path / "b.toml", BOARD.format(adapter=adapter) + extra + "\n")
    code, err = run_cli(capsys, "bench", "--target", str(target), "--suite", str(tiny_files["suite"]),
                        "--runs-dir", str(tmp_path / "runs"))
    assert_one_line_error(code, err, str(target), *fragments)


SUITE_CASES = [
    ("window-nan", "window_min_s = 0.05", "window_min_s = nan", ["protocol.window_min_s", "nan", "finite"]),
    ("window-inf", "window_min_s = 0.05", "window_min_s = inf", ["protocol.window_min_s", "inf", "finite"]),
    ("window-negative", "window_min_s = 0.05", "window_min_s = -1.0", ["protocol.window_min_s", ">= 0"]),
    ("warmup-s-nan", "warmup_min_s = 0.01", "warmup_min_s = -nan", ["protocol.warmup_min_s", "nan"]),
    ("windows-zero", "n_windows = 2", "n_windows = 0", ["protocol.n_windows", "= 0", ">= 1"]),
    ("windows-bool", "n_windows = 2", "n_windows = true", ["protocol.n_windows", "expected int"]),
    ("iterations-float", "window_min_iterations = 20", "window_min_iterations = 1.5",
     ["protocol.window_min_iterations", "expected int"]),
    ("warmup-iterations-negative", "warmup_min_iterations = 3", "warmup_min_iterations = -3",
     ["protocol.warmup_min_iterations", ">= 0"]),
    ("protocol-unknown-key", "n_windows = 2", "n_window = 2", ["'protocol.n_window' is not a known key",
                                                               "did you mean 'n_windows'?"]),
    ("suite-backend-nowhere", 'backends = ["onnxruntime"]', 'backends = ["onnxrt"]',
     ["matrix.backends", "unknown backend 'onnxrt'", "did you mean 'onnxruntime'?"]),
    ("suite-backends-empty", 'backends = ["onnxruntime"]', "backends = []", ["matrix.backends", "non-empty"]),
    ("suite-backend-not-a-string", 'backends = ["onnxruntime"]', "backends = [3]", ["matrix.backends", "3"]),
    ("suite-backends-none-on-target", 'backends = ["onnxruntime"]', 'backends = ["tensorrt"]',
     ["matrix.backends", "offers none of them", "cpu.toml"]),
    ("batch-zero", "batch_sizes = [1]", "batch_sizes = [0]", ["matrix.batch_sizes", "integers from 1 to 65536"]),
    ("batch-negative", "batch_sizes = [1]", "batch_sizes = [-1]", ["matrix.batch_sizes", "integers from 1 to 65536"]),
    ("batch-empty", "batch_sizes = [1]", "batch_sizes = []", ["matrix.batch_sizes", "non-empty"]),
    ("batch-float", "batch_sizes = [1]", "batch_sizes = [1.0]", ["matrix.batch_sizes", "integers from 1 to 65536"]),
    ("threads-empty", "threads = [1]", "threads = []", ["matrix.threads", "non-empty"]),
    ("threads-word", "threads = [1]", 'threads = ["two"]', ["matrix.threads", "'two'", "\"all\""]),
    ("matrix-unknown-key", "threads = [1]", "thread = [1]", ["'matrix.thread' is not a known key",
                                                             "did you mean 'threads'?"]),
    ("suite-name-empty", 'name = "s"', 'name = ""', ["suite.name", "letters, digits"]),
    ("suite-name-space", 'name = "s"', 'name = "my suite"', ["suite.name", "'my suite'", "letters, digits"]),
    ("suite-workloads-empty", 'workloads = ["{workload}"]', "workloads = []", ["suite.workloads", "non-empty"]),
]


@pytest.mark.parametrize("old,new,fragments", [c[1:] for c in SUITE_CASES], ids=[c[0] for c in SUITE_CASES])
def test_bad_suite_file(capsys, tmp_path, tiny_files, old, new, fragments):
    assert old in SUITE
    suite = write(tmp_path / "s.toml", SUITE.replace(old, new, 1).replace("{workload}", str(tiny_files["workload"])))
    code, err = run_cli(capsys, "bench", "--suite", str(suite), "--runs-dir", str(tmp_path / "runs"))
    assert_one_line_error(code, err, str(suite), *fragments)
    assert not (tmp_path / "runs").exists()


WORKLOAD_CASES = [
    ("width-zero", "width = 8", "width = 0", ["model.params.width = 0", "integer from 1"]),
    ("width-negative", "width = 8", "width = -1", ["model.params.width = -1", "integer from 1"]),
    ("width-float", "width = 8", "width = 2.5", ["model.params.width = 2.5", "integer from 1"]),
    ("width-nan", "width = 8", "width = nan", ["model.params.width = nan", "integer from 1"]),
    ("width-bool", "width = 8", "width = true", ["model.params.width = True", "integer from 1"]),
    ("width-huge", "width = 8", "width = 1000000000", ["model.params.width = 1000000000", "4096"]),
    ("unknown-model-param", "width = 8", "widht = 8", ["'widht'", "did you mean 'width'?"]),
    ("variant-suite-nowhere", 'family = "baseline"', 'family = "baseline"\nsuites = ["ful"]',
     ["variants[0].suites", "unknown suite 'ful'", "did you mean 'full'?"]),
]


@pytest.mark.parametrize("old,new,fragments", [c[1:] for c in WORKLOAD_CASES], ids=[c[0] for c in WORKLOAD_CASES])
def test_bad_workload_file(capsys, tmp_path, old, new, fragments):
    text = tiny_workload_toml()
    assert old in text
    bad = write(tmp_path / "w.toml", text.replace(old, new, 1))
    code, err = run_cli(capsys, "bench", "--workload", str(bad), "--runs-dir", str(tmp_path / "runs"))
    assert_one_line_error(code, err, str(bad), *fragments)
    assert not (tmp_path / "runs").exists()


FLAG_CASES = [
    ("batch-size-zero", ["--batch-size", "0"], ["--batch-size", "'0'", "integers from 1 to"]),
    ("batch-size-negative", ["--batch-size=-1"], ["--batch-size", "'-1'", "integers from 1 to"]),
    ("batch-size-word", ["--batch-size", "big"], ["--batch-size", "'big'", "integers from 1 to"]),
    ("threads-zero", ["--threads", "0"], ["--threads 0", "or 'all'"]),
    ("threads-word", ["--threads", "many"], ["--threads many", "or 'all'"]),
    ("backend-nowhere", ["--backend", "onnxrt"], ["--backend onnxrt", "did you mean 'onnxruntime'?", "cpu.toml"]),
    ("misspelt-flag", ["--batchsize", "1"], ["unrecognized arguments: --batchsize"]),
    ("power-idle-word", ["--power", "emulated-ina219:idle_s=abc"],
     ["--power emulated-ina219:idle_s=abc", "'idle_s' = 'abc'", "number of seconds from 0 to 3600"]),
    ("power-idle-negative", ["--power", "emulated-ina219:idle_s=-1"], ["'idle_s' = -1", "from 0 to 3600"]),
    ("power-idle-huge", ["--power", "emulated-ina219:idle_s=1e308"], ["'idle_s' = 1e+308", "from 0 to 3600"]),
    ("threads-huge", ["--threads", "2147483648"], ["2147483648", "from 1 to 1024"]),
    ("batch-huge", ["--batch-size", "100000000"], ["100000000", "from 1 to 65536"]),
    ("power-idle-inf", ["--power", "emulated-ina219:idle_s=inf"], ["'idle_s' = inf", "from 0 to 3600"]),
    ("power-strict-quoted", ["--power", 'emulated-ina219:strict="false"'], ["'strict' = 'false'", "true or false"]),
    ("power-strict-word", ["--power", "emulated-ina219:strict=yes"], ["'strict' = 'yes'", "true or false"]),
    ("power-min-samples-negative", ["--power", "emulated-ina219:min_samples=-5"],
     ["'min_samples' = -5", "integer >= 1"]),
    ("power-min-samples-float", ["--power", "emulated-ina219:min_samples=2.5"], ["'min_samples' = 2.5"]),
    ("power-profile-unknown", ["--power", "emulated-ina219:profile=sawtooth"],
     ["'profile' = 'sawtooth'", "steps, cpu-load, constant:<watts>"]),
    ("power-profile-constant-word", ["--power", "emulated-ina219:profile=constant:abc"],
     ["'profile' = 'constant:abc'", "constant:<watts>"]),
    ("power-baud-word", ["--power", "emulated-um25c:baud=fast"], ["'baud' = 'fast'", "an integer > 0"]),
    ("power-baud-zero", ["--power", "emulated-um25c:baud=0"], ["'baud' = 0", "an integer > 0"]),
    ("power-baud-float", ["--power", "emulated-um25c:baud=9600.5"], ["'baud' = 9600.5", "an integer > 0"]),
    ("power-rate-nan", ["--power", "emulated-ina219:rate_hz=nan"], ["'rate_hz' = nan", "> 0"]),
    ("power-rate-zero", ["--power", "emulated-ina219:rate_hz=0"], ["'rate_hz' = 0", "> 0"]),
    ("power-fault-negative", ["--power", "emulated-ina219:garbage_every=-1"], ["'garbage_every' = -1", ">= 0"]),
    ("power-unknown-key", ["--power", "emulated-ina219:rate=5"],
     ["'rate' is not a key of power source 'emulated-ina219'", "did you mean 'rate_hz'?"]),
    ("power-not-key-value", ["--power", "emulated-ina219:idle_s"], ["'idle_s' is not key=value"]),
    ("power-key-twice", ["--power", "emulated-ina219:idle_s=1,idle_s=2"], ["'idle_s' is given twice"]),
    ("power-unknown-source", ["--power", "ina220:port=/dev/x"], ["unknown power source 'ina220'"]),
    ("power-empty-port", ["--power", "um25c:port="], ["'port' = ''", "non-empty string"]),
]


@pytest.mark.parametrize("flags,fragments", [c[1:] for c in FLAG_CASES], ids=[c[0] for c in FLAG_CASES])
def test_bad_flag(capsys, tmp_path, tiny_files, flags, fragments):
    code, err = run_cli(capsys, "bench", "--suite", str(tiny_files["suite"]), "--runs-dir",
                        str(tmp_path / "runs"), *flags)
    assert_one_line_error(code, err, *fragments)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("flags", [["--suite", "quick"], ["--backend", "onnxruntime"], ["--threads", "2"],
                                   ["--batch-size", "4"], ["--power", "emulated-ina219"], ["--target", "cpu"]],
                         ids=lambda flags: flags[0])
def test_resume_refuses_flags_it_would_ignore(capsys, tmp_path, flags):
    code, err = run_cli(capsys, "bench", "--resume", str(tmp_path / "run"), *flags)
    assert_one_line_error(code, err, f"--resume {tmp_path / 'run'} with {flags[0]}", "start a new run")


@pytest.mark.parametrize("flags,fragments", [
    (["--threshold", "nan"], ["--threshold nan", ">= 1"]),
    (["--threshold", "0.5"], ["--threshold 0.5", ">= 1"]),
    (["--alpha", "0"], ["--alpha 0.0", "> 0 and < 1"]),
    (["--alpha", "inf"], ["--alpha inf", "> 0 and < 1"]),
    (["--alpha", "x"], ["--alpha", "invalid float value: 'x'"]),
], ids=["threshold-nan", "threshold-below-1", "alpha-zero", "alpha-inf", "alpha-word"])
def test_bad_compare_flag(capsys, tmp_path, flags, fragments):
    code, err = run_cli(capsys, "compare", str(tmp_path / "a"), str(tmp_path / "b"), *flags)
    assert_one_line_error(code, err, *fragments)


def test_a_run_with_failed_jobs_exits_1_with_a_summary_line(capsys, tiny_files, monkeypatch):
    """Failed jobs are not 'exit 0': the run says how many failed and how to resume (skipped stays 0)."""
    from harness.core.errors import JobError
    from targets.cpu import CpuSession

    real_run = CpuSession.run

    def run(self, job, *args, **kwargs):
        if job.backend == "torch":
            raise JobError("the agent died")
        return real_run(self, job, *args, **kwargs)

    monkeypatch.setattr(CpuSession, "run", run)
    code = main(["bench", "--suite", str(tiny_files["suite"]), "--runs-dir", str(tiny_files["runs"]), "--quiet",
                 "--no-report"])
    err = capsys.readouterr().err
    assert code == 1
    summary = [line for line in err.splitlines() if line.startswith("edgebench: ")]
    assert len(summary) == 1 and "1 of 2 jobs failed (0 skipped)" in summary[0], err
    assert "the agent died" in summary[0] and "--resume" in summary[0]


def test_strict_power_failure_is_stored_failed_so_that_resume_measures_it_again(capsys, tiny_files):
    import csv

    from harness.core.rundir import RunStore

    runs = tiny_files["runs"]
    # the model trained first (cached), so that the meter's scripted death falls inside the first job
    assert main(["bench", "--suite", str(tiny_files["suite"]), "--runs-dir", str(runs.parent / "warm"),
                 "--quiet", "--no-report", "--backend", "onnxruntime"]) == 0
    code = main(["bench", "--suite", str(tiny_files["suite"]), "--runs-dir", str(runs), "--quiet", "--no-report",
                 "--power", "emulated-um25c:idle_s=0.2,silent_after_s=1.5,strict=true,rate_hz=20"])
    assert code == 3 and "strict mode" in capsys.readouterr().err
    run_dir = next(p for p in runs.iterdir() if p.is_dir() and not p.is_symlink())
    with open(run_dir / "results.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["status"] == "failed" and row["reason"].startswith("power (strict mode): ")
    assert float(row["latency_p50_ms"]) > 0 and float(row["accuracy"]) > 0.5  # the measured numbers kept
    assert row["job_id"] not in RunStore.open(run_dir).finished_job_ids()  # --resume runs it again


@pytest.mark.parametrize("text, fragments", [
    ('job_timeout_s = 1e300', ["target.job_timeout_s", "1e+300", "<= 1000000.0"]),
    ('job_timeout_s = 900\n[backends.onnxruntime]\ngraph_optimization_level = "all"\n'
     '[power]\nsource = "emulated-ina219"\nidle_s = 1e12', ["[power]", "'idle_s'", "from 0 to 3600"]),
])
def test_huge_numbers_are_refused_before_they_overflow_a_clock(capsys, tmp_path, text, fragments):
    target = write(tmp_path / "t.toml", f'[target]\nname = "t"\nadapter = "cpu"\nbackends = ["onnxruntime"]\n{text}\n')
    code, err = run_cli(capsys, "bench", "--target", str(target), "--runs-dir", str(tmp_path / "runs"))
    assert_one_line_error(code, err, *fragments)


def test_a_toml_file_that_is_not_utf8_is_one_line(capsys, tmp_path):
    target = tmp_path / "t.toml"
    target.write_bytes(b'[target]\nname = "caf\xe9"\n')
    code, err = run_cli(capsys, "bench", "--target", str(target), "--runs-dir", str(tmp_path / "runs"))
    assert_one_line_error(code, err, str(target), "not UTF-8")


def test_training_whose_loss_is_not_finite_stops_with_one_line():
    """A diverging optimiser (here a loss forced to NaN) must not cache a broken model as the reference."""
    import torch

    from harness.core.errors import ConfigError
    from workloads.training import TrainingSpec, train

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    x, y = np.random.default_rng(0).random((8, 1, 2, 2), dtype=np.float32), np.zeros(8, dtype=np.int64)
    with pytest.raises(ConfigError, match=r"training diverged: the loss is nan in epoch 1 .*lower learning_rate"):
        train(model, x, y, TrainingSpec(epochs=2, batch_size=4),
              loss_fn=lambda logits, labels, idx: logits.sum() * float("nan"))
