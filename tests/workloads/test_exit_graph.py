"""The one-call early-exit graph (an ONNX If) against the two-stage rule computed in numpy, and the exit
predictor's decision cut."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from harness.core.exit_rule import exits
from workloads.export import export_onnx
from workloads.variants import exit_predictor
from workloads.variants.exit_graph import LEFT, RAN_REST, SKIPPED_HEAD, one_call_graph


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """A tiny random network exported as the three parts the early_exit family exports."""
    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU()).eval()
    head = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)).eval()
    rest = nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 5)).eval()
    folder = tmp_path_factory.mktemp("parts")
    x = np.random.default_rng(0).normal(size=(40, 1, 12, 12)).astype(np.float32)
    export_onnx(body, x, folder / "body.onnx", output_names=("features",))
    with torch.no_grad():
        features = body(torch.from_numpy(x))
        exit_logits, logits = head(features).numpy(), rest(features).numpy()
    export_onnx(head, features.numpy(), folder / "head.onnx", output_names=("exit_logits",))
    export_onnx(rest, features.numpy(), folder / "rest.onnx")
    return folder, x, features.numpy(), exit_logits, logits


def run_one_by_one(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = [session.run(None, {"input": x[i:i + 1]}) for i in range(len(x))]
    return np.concatenate([o[0] for o in outputs]), np.array([int(o[1]) for o in outputs])


@pytest.mark.parametrize("criterion", ["confidence", "entropy"])
def test_one_call_graph_takes_the_exit_exactly_where_the_rule_says(parts, tmp_path, criterion):
    folder, x, _, exit_logits, logits = parts
    p = np.exp(exit_logits - exit_logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    score = p.max(1) if criterion == "confidence" else -(p * np.log(p)).sum(1)
    threshold = float(np.median(score))  # about half the samples leave
    out = tmp_path / "one_call.onnx"
    one_call_graph(folder / "body.onnx", folder / "head.onnx", folder / "rest.onnx", criterion, threshold, out)

    got, path = run_one_by_one(out, x)
    leave = exits(exit_logits, criterion, threshold)
    assert 0 < leave.sum() < len(x)
    np.testing.assert_array_equal(path, np.where(leave, LEFT, RAN_REST))
    np.testing.assert_allclose(got, np.where(leave[:, None], exit_logits, logits), rtol=1e-4, atol=1e-5)


def test_the_predictor_sends_the_samples_it_deems_hard_past_the_head(parts, tmp_path):
    folder, x, features, exit_logits, logits = parts
    pooled = exit_predictor.pooled(features)
    weights = np.zeros(pooled.shape[1])
    weights[0] = 1.0
    bias = -float(np.median(pooled[:, 0]))  # half go on to the head
    threshold = 0.0  # every sample that reaches the head leaves
    out = tmp_path / "predictor.onnx"
    one_call_graph(folder / "body.onnx", folder / "head.onnx", folder / "rest.onnx", "confidence", threshold, out,
                   predictor=(weights, bias))

    got, path = run_one_by_one(out, x)
    sent_on = pooled @ weights + bias > 0
    assert 0 < sent_on.sum() < len(x)
    np.testing.assert_array_equal(path, np.where(sent_on, LEFT, SKIPPED_HEAD))
    np.testing.assert_allclose(got, np.where(sent_on[:, None], exit_logits, logits), rtol=1e-4, atol=1e-5)


def test_the_cut_minimises_the_expected_macs():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=60)
    leave = scores + rng.normal(scale=0.7, size=60) > 0.3
    head, rest = 10.0, 100.0

    def cost(cut):
        on = scores > cut
        return (on * head + (on & ~leave) * rest + ~on * rest).sum()

    cut = exit_predictor.cheapest_cut(scores, leave, head, rest)
    brute = min(cost(c) for c in np.concatenate([scores, [scores.min() - 1, scores.max() + 1]]))
    assert cost(cut) == brute
    # nobody leaves: everybody is sent past the head; everybody leaves: everybody is sent on
    assert (scores > exit_predictor.cheapest_cut(scores, np.zeros(60, bool), head, rest)).sum() == 0
    assert (scores > exit_predictor.cheapest_cut(scores, np.ones(60, bool), head, rest)).all()
