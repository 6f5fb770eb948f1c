"""Export of PyTorch models to ONNX (the fp32 baseline artifact), checked against PyTorch's own output."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
# Largest |onnxruntime - torch| logit difference accepted as "the same model".
EXPORT_TOLERANCE = 1e-3


def export_onnx(model: torch.nn.Module, sample: np.ndarray, path: Path,
                output_names: tuple[str, ...] = (OUTPUT_NAME,)) -> None:
    """Export with a dynamic batch axis via torch's default (dynamo) exporter, then verify numerically."""
    model = model.eval()
    example = torch.from_numpy(sample[:2])
    batch = torch.export.Dim("batch", min=1, max=4096)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (example,), dynamo=True, input_names=[INPUT_NAME],
                                    output_names=list(output_names), dynamic_shapes=({0: batch},),
                                    verbose=False)
    program.save(str(path), external_data=False)
    onnx.checker.check_model(str(path))
    check_matches_torch(model, sample[:16], path)


def check_matches_torch(model: torch.nn.Module, sample: np.ndarray, path: Path) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: sample})
    with torch.no_grad():
        want = model(torch.from_numpy(sample))
    want = [t.numpy() for t in (want if isinstance(want, tuple) else (want,))]
    diff = max(float(np.abs(g - w).max()) for g, w in zip(got, want, strict=True))
    if diff > EXPORT_TOLERANCE:
        raise RuntimeError(f"{path}: ONNX export differs from PyTorch by {diff:.2e} "
                           f"(> {EXPORT_TOLERANCE:g})")
