"""The Jetson's GPU backends. They run where an NVIDIA GPU is (the device machine, a Jetson) and are
skipped with the reason elsewhere; what needs no GPU is checked everywhere."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from helpers import tiny_workload_toml, write

from targets.backends.base import Unsupported
from targets.backends.tensorrt_backend import engine_key, is_qdq
from targets.backends.torch_backend import TorchBackend
from workloads.build import build_base, build_variants
from workloads.spec import load_workload

try:
    import torch
    HAS_CUDA = torch.cuda.is_available()
except ImportError:
    HAS_CUDA = False
needs_gpu = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU on this machine (run on the device "
                               "machine or a Jetson)")
needs_tensorrt = pytest.mark.skipif(not HAS_CUDA or importlib.util.find_spec("tensorrt") is None,
                                    reason="TensorRT and a CUDA GPU are not both present here")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    path = write(tmp_path_factory.mktemp("gpu") / "w.toml", tiny_workload_toml(name="tiny-gpu") + """
    [[variants]]
    name = "int8"
    family = "quantize"
    scheme = "ort-static"
    calibration_samples = 50
    """)
    base = build_base(load_workload(path))
    return base, build_variants(base)


def test_engine_cache_key_follows_model_precision_tensorrt_and_gpu():
    key = engine_key(b"model", "fp16", "10.3.0", "Orin")
    assert key == engine_key(b"model", "fp16", "10.3.0", "Orin")
    assert len({key, engine_key(b"model2", "fp16", "10.3.0", "Orin"), engine_key(b"model", "fp32", "10.3.0",
                "Orin"), engine_key(b"model", "fp16", "10.4.0", "Orin"),
                engine_key(b"model", "fp16", "10.3.0", "Xavier")}) == 5


def test_qdq_artifacts_are_recognised_for_explicit_int8(artifacts):
    _, built = artifacts
    with open(built["int8"].files["onnx"], "rb") as fh:
        assert is_qdq(fh.read())
    with open(built["fp32"].files["onnx"], "rb") as fh:
        assert not is_qdq(fh.read())


@pytest.mark.skipif(HAS_CUDA, reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_skip_with_the_reason(artifacts):
    _, built = artifacts
    with pytest.raises(Unsupported, match="torch sees no CUDA GPU"):
        TorchBackend(1, {"device": "cuda"}).load(built["fp32"].to_dict())


@needs_gpu
def test_torch_cuda_matches_the_cpu_and_times_copies_apart(artifacts):
    base, built = artifacts
    x, _ = base.data.load_eval()
    cpu, gpu = TorchBackend(1, {}), TorchBackend(1, {"device": "cuda"})
    cpu.load(built["fp32"].to_dict())
    gpu.load(built["fp32"].to_dict())
    assert np.allclose(cpu.predict(x[:64]), gpu.predict(x[:64]), atol=1e-3)
    call, args = gpu.runner(x[:1])
    call(*args)
    info = gpu.info()
    assert info["device"] == "cuda" and info["h2d_ms"] > 0 and info["d2h_ms"] > 0


@needs_tensorrt
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_engine_is_built_once_and_agrees_with_onnxruntime(artifacts, precision):
    from targets.backends.ort_backend import OrtBackend
    from targets.backends.tensorrt_backend import TensorRtBackend

    base, built = artifacts
    x, _ = base.data.load_eval()
    reference = OrtBackend(1, {})
    reference.load(built["fp32"].to_dict())
    first = TensorRtBackend(1, {"precision": precision})
    first.load(built["fp32"].to_dict())
    assert (reference.predict(x[:32]).argmax(1) == first.predict(x[:32]).argmax(1)).mean() >= 0.95
    again = TensorRtBackend(1, {"precision": precision})
    again.load(built["fp32"].to_dict())
    assert first.engine_built_s is not None and again.engine_built_s is None  # cached by hash


def _benchmark(name: str):
    """A script from benchmarks/ (not a package) as a module; its sibling imports resolve too."""
    import sys
    from pathlib import Path

    folder = str(Path(__file__).resolve().parents[2] / "benchmarks")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(name)


@pytest.mark.skipif(HAS_CUDA, reason="this machine has a GPU")
def test_the_gpu_benchmark_names_what_is_missing_and_measures_nothing(capsys, monkeypatch, tmp_path):
    gpu_path = _benchmark("gpu_path")
    monkeypatch.setattr("sys.argv", ["gpu_path.py", "--runs-dir", str(tmp_path / "runs")])
    assert gpu_path.main() == 2
    err = capsys.readouterr().err
    assert "a CUDA GPU that torch sees" in err and "Nothing was measured" in err
    assert not (tmp_path / "runs").exists()


def test_the_bare_loop_comparison_runs_on_onnxruntime(capsys):
    """benchmarks/harness_overhead.py, which gpu_path uses for TensorRT, at its smallest: both sides time
    the same model and both report a latency (no timing claim: this machine is shared)."""
    overhead = _benchmark("harness_overhead")
    r = overhead.measure("digits-cnn", "onnxruntime", {}, rounds=2, round_s=0.05)
    assert r["bare_p50_ms"] > 0 and r["harness_p50_ms"] > 0
    assert r["info"]["runtime"] == "onnxruntime"
