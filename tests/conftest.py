"""Shared fixtures: a private cache, and a tiny workload and suite so that a whole run takes seconds."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import TINY_PROTOCOL, tiny_workload_toml, write


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Every test shares one throw-away cache (trained tiny models are reused between tests)."""
    import os

    path = tmp_path_factory.mktemp("cache")
    old = os.environ.get("EDGEBENCH_CACHE")
    os.environ["EDGEBENCH_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("EDGEBENCH_CACHE", None)
    else:
        os.environ["EDGEBENCH_CACHE"] = old


@pytest.fixture
def tiny_files(tmp_path) -> dict:
    """A tiny workload file and a suite that runs it with millisecond windows."""
    workload = write(tmp_path / "tiny.toml", tiny_workload_toml())
    suite = write(tmp_path / "tiny-suite.toml", f"""
    [suite]
    name = "tiny"
    workloads = ["{workload}"]
    {TINY_PROTOCOL}
    [matrix]
    backends = ["onnxruntime", "torch"]
    threads = [1]
    batch_sizes = [1]
    """)
    return {"workload": workload, "suite": suite, "runs": tmp_path / "runs"}


@pytest.fixture
def user_model(tmp_path) -> dict:
    """A user's own ONNX model (a linear classifier over 8x8 digits) and its evaluation set."""
    import torch
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    y = digits.target.astype(np.int64)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(100):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        optimizer.step()
    from workloads.export import export_onnx

    onnx_path = tmp_path / "user.onnx"
    export_onnx(model.eval(), x[:32], onnx_path)
    data = tmp_path / "eval.npz"
    np.savez(data, x=x[-300:], y=y[-300:])
    return {"model": onnx_path, "data": data, "x": x, "y": y, "dir": tmp_path}
