"""Reference models, their export and cost, and the build cache."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from helpers import tiny_workload_toml, write

from workloads.costs import model_cost
from workloads.datasets import DatasetSpec, prepare
from workloads.export import export_onnx
from workloads.models import ARCHS, build_model
from workloads.spec import find_workload, load_workload, workload_files


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_every_reference_arch_exports_to_onnx_with_a_dynamic_batch(arch, tmp_path):
    model = build_model(arch, 1, 10).eval()
    x = np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32)
    path = tmp_path / f"{arch}.onnx"
    export_onnx(model, x, path)  # raises if ONNX and PyTorch disagree
    session = ort.InferenceSession(str(path))
    for batch in (1, 3):
        got = session.run(None, {"input": x[:batch]})[0]
        np.testing.assert_allclose(got, model(torch.from_numpy(x[:batch])).detach().numpy(), atol=1e-4)


def test_resnet8_has_the_mlperf_tiny_cost_on_cifar_sized_input(tmp_path):
    """MLPerf Tiny's ResNet-8 on 3x32x32 is 25.3 MFLOPs (about 12.65 M MACs)."""
    model = build_model("resnet8", 3, 10).eval()
    path = tmp_path / "resnet8.onnx"
    export_onnx(model, np.zeros((2, 3, 32, 32), np.float32), path)
    cost = model_cost(path, (3, 32, 32))
    assert cost.macs == pytest.approx(12.65e6, rel=0.03)
    assert cost.model_bytes == path.stat().st_size


def test_macs_of_a_known_layer_stack(tmp_path):
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1, bias=False), torch.nn.ReLU(),
                                torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 10, bias=False)).eval()
    path = tmp_path / "m.onnx"
    export_onnx(model, np.zeros((2, 1, 8, 8), np.float32), path)
    cost = model_cost(path, (1, 8, 8))
    assert cost.macs == 4 * 9 * 64 + 256 * 10  # conv + linear; the ReLU is not a MAC
    assert cost.params == 4 * 9 + 256 * 10


def test_datasets_split_with_the_recorded_seed_and_are_cached():
    first = prepare(DatasetSpec("digits", eval_fraction=0.2, seed=3))
    again = prepare(DatasetSpec("digits", eval_fraction=0.2, seed=3))
    other = prepare(DatasetSpec("digits", eval_fraction=0.2, seed=4))
    assert first.eval_path == again.eval_path != other.eval_path
    x, y = first.load_eval()
    assert x.shape == (360, 1, 8, 8) and x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
    assert first.n_classes == 10 and np.bincount(y).min() >= 35  # stratified
    x_train, _ = first.load_train()
    assert len(x_train) + len(x) == 1797


def test_changing_the_training_config_retrains(tmp_path, monkeypatch):
    from workloads.build import build_base

    monkeypatch.setenv("EDGEBENCH_CACHE", str(tmp_path / "cache"))  # its own: other tests train these configs too
    a = build_base(load_workload(write(tmp_path / "a.toml", tiny_workload_toml(epochs=2))))
    b = build_base(load_workload(write(tmp_path / "b.toml", tiny_workload_toml(epochs=3))))
    assert a.onnx_path != b.onnx_path and a.was_trained and b.was_trained


def test_shipped_workloads_parse_and_the_quick_suite_names_them():
    files = workload_files()
    assert {"digits-cnn", "mnist-resnet8", "mnist-dscnn"} <= set(files)
    archs = {find_workload(name).model.arch for name in files}
    assert {"small_cnn", "resnet8", "ds_cnn"} <= archs


@pytest.mark.parametrize("arch", ["small_cnn", "resnet8", "ds_cnn"])
def test_a_models_device_source_stands_alone_on_a_python_3_8_board(arch, tmp_path):
    """The torch backend rebuilds a model from the source that travels with the artifact: it must parse as
    Python 3.8, import torch alone, and build the same network as the host's class."""
    import ast

    import torch

    from harness.core.plugins import load_source_file
    from workloads.models import build_model, device_spec

    spec, source = device_spec({"arch": arch, "in_channels": 1, "n_classes": 10, "params": {}})
    tree = ast.parse(source, feature_version=(3, 8))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "torch"}
    path = tmp_path / "model_def.py"
    path.write_text(source)
    rebuilt = getattr(load_source_file(str(path)), spec["class"])(**spec["kwargs"])
    host = build_model(arch, 1, 10)
    rebuilt.load_state_dict(host.state_dict())  # same parameter names and shapes
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(rebuilt.eval()(x), host.eval()(x))
