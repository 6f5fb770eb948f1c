"""MACs and parameters of .tflite models, counted by the ONNX convention (workloads/costs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import FIXTURES, tiny_workload_toml, write

from workloads.build import build_base, build_variants
from workloads.spec import load_workload
from workloads.tflite_costs import tflite_cost

MODELS = FIXTURES / "models"


def test_a_converted_reference_model_costs_what_its_onnx_twin_costs(tmp_path):
    """The same network as ONNX (onnx-tool's count) and as .tflite (litert-torch's conversion)."""
    path = write(tmp_path / "w.toml", tiny_workload_toml(name="tiny-tflite-costs") + """
    [[variants]]
    name = "tflite-fp32"
    family = "tflite"
    """)
    base = build_base(load_workload(path))
    built = build_variants(base)
    onnx_cost = base.cost
    cost = tflite_cost(Path(built["tflite-fp32"].files["tflite"]))
    assert onnx_cost.macs and cost.macs == onnx_cost.macs
    # the same weights; ONNX also counts BatchNorm's (folded into the convolutions in .tflite)
    assert 0 < cost.params <= onnx_cost.params


def test_fully_connected_layers_cost_one_mac_per_parameter():
    """The MLPerf Tiny anomaly-detection autoencoder is fully connected layers only: each costs
    inputs x outputs + outputs (its bias) MACs at batch 1, exactly its parameter count."""
    cost = tflite_cost(MODELS / "anomaly_detection.tflite")
    assert cost.macs == cost.params == 265_864


@pytest.mark.parametrize("model, published_macs", [
    ("visual_wake_words.tflite", 7.49e6),      # MobileNetV1 0.25x at 96x96 (MLPerf Tiny VWW)
    ("cifar10_resnet_int8.tflite", 12.5e6),    # ResNet-8 on CIFAR-10 (MLPerf Tiny IC)
])
def test_mlperf_tiny_models_cost_what_their_papers_say(model, published_macs):
    cost = tflite_cost(MODELS / model)
    assert abs(cost.macs / published_macs - 1) < 0.05, cost.macs
    assert cost.model_bytes == (MODELS / model).stat().st_size


def test_micro_speech_costs_what_its_two_layers_say():
    """micro_speech: one 10x8 convolution, 8 filters, stride 2 over 49x40x1 (25x20x8 out,
    each with its bias), then a fully connected layer from 4000 to 4 classes."""
    conv = 25 * 20 * 8 * (10 * 8 * 1 + 1)
    dense = 4000 * 4 + 4
    cost = tflite_cost(MODELS / "micro_speech_int8.tflite")
    assert cost.macs == conv + dense
    assert cost.params == 8 * 10 * 8 + 8 + 4000 * 4 + 4


def test_a_recurrent_model_gets_no_macs_and_says_why(tmp_path):
    """An LSTM converts to ops whose work this count does not follow (a WHILE subgraph or a fused LSTM
    cell): no number is better than a far too small one."""
    tf = pytest.importorskip("tensorflow", reason="TensorFlow (the tensorflow extra) converts the Keras LSTM")
    model = tf.keras.Sequential([tf.keras.Input((20, 8), batch_size=1), tf.keras.layers.LSTM(16),
                                 tf.keras.layers.Dense(4)])
    path = tmp_path / "lstm.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    cost = tflite_cost(path)
    assert cost.macs is None and cost.params is None
    assert cost.macs_reason.startswith("macs: LiteRT ops ") and "not counted" in cost.macs_reason
