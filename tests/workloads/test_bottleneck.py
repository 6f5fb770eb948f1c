"""The bottleneck family (BottleFit): a trained encoder / decoder at a cut, exported as head and tail whose
ONNX chain gives the accuracy the artifact claims, with the payload it claims, and clear errors."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from helpers import tiny_workload_toml, user_workload_toml, write

from harness.core.errors import ConfigError
from harness.core.jobs import SPLIT_KEYS
from workloads.build import build_base, build_variants
from workloads.spec import load_workload

# digits: 8 x 8 images; small_cnn (width 8) is cut after its first two convolutions: 16 x 8 x 8
VARIANTS = """
[[variants]]
name = "bn-int8"
family = "bottleneck"
channels = 2
stride = 2
distill_epochs = 1
finetune_epochs = 1

[[variants]]
name = "bn-fp16"
family = "bottleneck"
channels = 1
stride = 4
payload = "fp16"
finetune_loss = "ce"
distill_epochs = 1
finetune_epochs = 1
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    path = write(tmp_path_factory.mktemp("bottleneck") / "w.toml",
                 tiny_workload_toml(name="tiny-bottleneck", epochs=4, width=8) + VARIANTS)
    base = build_base(load_workload(path))
    return base, build_variants(base, {"bn-int8", "bn-fp16"})


def session(path: str) -> ort.InferenceSession:
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def chain(artifact) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(payload, predictions, labels) of head -> tail over the whole evaluation set."""
    data = np.load(artifact.eval_data)
    head, tail = session(artifact.files["head"]), session(artifact.files["tail"])
    payload = head.run(None, {head.get_inputs()[0].name: data["x"]})[0]
    logits = tail.run(None, {tail.get_inputs()[0].name: payload})[0]
    return payload, logits.argmax(axis=1), data["y"]


def test_the_onnx_chain_reproduces_the_claimed_accuracy(built):
    base, artifacts = built
    for artifact in artifacts.values():
        assert set(artifact.files) == {"head", "tail"}
        _, predictions, labels = chain(artifact)
        assert len(labels) == artifact.n_eval == 360
        assert float((predictions == labels).mean()) == pytest.approx(artifact.host_accuracy, abs=1.5 / len(labels))
        # one epoch per stage, 2 or 1 values of 4 x 4 or 2 x 2 per image: well above chance (0.1)
        assert artifact.host_accuracy > 0.6, artifact.variant
    assert artifacts["bn-int8"].host_accuracy > base.host_accuracy - 0.1


def test_the_payload_has_the_requested_channels_size_and_dtype(built):
    _, artifacts = built
    for name, channels, side, dtype, elem in (("bn-int8", 2, 4, np.uint8, onnx.TensorProto.UINT8),
                                              ("bn-fp16", 1, 2, np.float16, onnx.TensorProto.FLOAT16)):
        artifact = artifacts[name]
        payload, _, _ = chain(artifact)
        assert payload.dtype == dtype and payload.shape[1:] == (channels, side, side)
        split = artifact.split
        assert set(split) == set(SPLIT_KEYS)
        assert split["strategy"] == "bottleneck" and split["payload_dtype"] == artifact.variant_params["payload"]
        assert split["payload_shape"] == [channels, side, side]
        assert split["payload_bytes"] == payload[0].nbytes == channels * side * side * np.dtype(dtype).itemsize
        assert split["input_bytes"] == 8 * 8 * 4  # one fp32 digit image
        tail_input = onnx.load(artifact.files["tail"]).graph.input[0]
        assert tail_input.type.tensor_type.elem_type == elem
    int8 = artifacts["bn-int8"]
    assert onnx.load(int8.files["tail"]).graph.node[0].op_type == "DequantizeLinear"
    assert len(np.unique(chain(int8)[0])) > 16  # the calibrated scale uses the uint8 range


def test_costs_are_per_stage_and_add_up(built):
    _, artifacts = built
    for artifact in artifacts.values():
        split = artifact.split
        assert split["head_macs"] > 0 and split["tail_macs"] > 0
        assert artifact.macs == split["head_macs"] + split["tail_macs"]
        assert split["head_params"] < artifact.params
        assert split["head_bytes"] == 4 * split["head_params"]  # fp32 weights (sc2bench's encoder size)


def test_cached_builds_are_not_rebuilt(built):
    import os

    base, artifacts = built
    mtimes = {n: os.path.getmtime(a.files["head"]) for n, a in artifacts.items()}
    again = build_variants(base, set(artifacts))
    assert {n: os.path.getmtime(a.files["head"]) for n, a in again.items()} == mtimes
    assert {n: a.host_accuracy for n, a in again.items()} == {n: a.host_accuracy for n, a in artifacts.items()}


def test_head_distillation_leaves_the_frozen_tail_as_the_teacher_had_it():
    """Stage 1 trains encoder and decoder only: the tail's weights and batch-norm statistics stay."""
    import copy

    import torch

    from workloads.models import build_model
    from workloads.training import TrainingSpec, train
    from workloads.variants.bottleneck import Student, Tail, decoder, encoder, head_distillation_loss
    from workloads.variants.early_exit import split

    torch.manual_seed(0)
    teacher = build_model("small_cnn", 1, 10, {"width": 4}).eval()
    body, rest, width = split(teacher, "small_cnn")
    student = Student(encoder(copy.deepcopy(body), width, 2, 2), Tail(decoder(2, width, 2, 8, 8), copy.deepcopy(rest)))
    before_tail = copy.deepcopy(student.tail.rest.state_dict())
    before_head = copy.deepcopy(student.head.state_dict())
    x = np.random.default_rng(0).random((64, 1, 8, 8), dtype=np.float32)
    y = np.arange(64) % 10
    student.freeze(student.tail.rest)
    train(student, x, y, TrainingSpec(epochs=2, batch_size=16), loss_fn=head_distillation_loss(student, body, rest, x))
    for key, value in student.tail.rest.state_dict().items():
        assert torch.equal(value, before_tail[key]), key
    assert any(not torch.equal(v, before_head[k]) for k, v in student.head.state_dict().items())


@pytest.mark.parametrize("keys, message", [
    ("channels = 0", "'variants[1] 'bad'.channels' = 0: accepted: values >= 1"),
    ("stride = 3", "'variants[1] 'bad'.stride' = 3"),
    ('payload = "int4"', "'variants[1] 'bad'.payload' = 'int4'"),
    ('finetune_loss = "mse"', "'variants[1] 'bad'.finetune_loss' = 'mse'"),
    ("distill_epochs = 0", "'variants[1] 'bad'.distill_epochs' = 0"),
    ("chanels = 3", "'variants[1] 'bad'.chanels' is not a known key (did you mean 'channels'?)"),
])
def test_bad_keys_name_the_file_and_key(tmp_path, keys, message):
    path = write(tmp_path / "bad.toml", tiny_workload_toml()
                 + f'\n[[variants]]\nname = "bad"\nfamily = "bottleneck"\n{keys}\n')
    with pytest.raises(ConfigError) as error:
        load_workload(path)
    assert str(path) in str(error.value) and message in str(error.value)


def test_a_users_onnx_model_is_refused_in_one_line(user_model, tmp_path):
    path = write(tmp_path / "user.toml", user_workload_toml(user_model, """
    [[variants]]
    name = "bn"
    family = "bottleneck"
    """))
    with pytest.raises(ConfigError) as error:  # when the workload file is read, before anything is built
        load_workload(path)
    text = str(error.value)
    assert str(path) in text and "[model] arch" in text and "bottleneck" in text and "\n" not in text
