"""Split computing on the host: where a network can be cut (checked against running the cut), the payload
codec's round trip, the split and offload variants (fp32 accuracy identical to the unsplit model's) and
their errors."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from helpers import tiny_workload_toml, user_workload_toml, write

from harness.core.errors import ConfigError
from harness.core.jobs import SPLIT_KEYS
from workloads.build import build_base, build_variants
from workloads.costs import model_cost
from workloads.spec import load_workload
from workloads.split_analysis import (
    SplitCandidate,
    choose_auto,
    cut_model,
    describe_splits,
    split_candidates,
)
from workloads.split_codec import (
    PAYLOAD_DTYPES,
    calibrate,
    decode_tail,
    encode_head,
    head_tail_accuracy,
    payload_bytes,
)

SPLITS = """
[[variants]]
name = "split-first"
family = "split"
point = 0
[[variants]]
name = "split-named"
family = "split"
point = "max_pool2d"
[[variants]]
name = "split-auto"
family = "split"
point = "auto"
bandwidth_mbit = 1
[[variants]]
name = "split-fp16"
family = "split"
point = "max_pool2d"
payload = "fp16"
[[variants]]
name = "split-int8"
family = "split"
point = "max_pool2d"
payload = "int8"
calibration_samples = 200
[[variants]]
name = "offload"
family = "offload"
"""

RESNET = """
[workload]
name = "tiny-resnet"
[dataset]
name = "digits"
[model]
arch = "resnet8"
[model.params]
width = 4
[training]
epochs = 2
batch_size = 64
learning_rate = 0.01
[[variants]]
name = "fp32"
family = "baseline"
[[variants]]
name = "split-stack"
family = "split"
point = 3
"""


def session(model):
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def run(model, x):
    s = session(model)
    return s.run(None, {s.get_inputs()[0].name: x})[0]


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    """A small CNN (plain chain) with every split variant, built once."""
    path = write(tmp_path_factory.mktemp("split") / "w.toml", tiny_workload_toml(name="tiny-split") + SPLITS)
    base = build_base(load_workload(path))
    return base, build_variants(base), path


@pytest.fixture(scope="module")
def resnet(tmp_path_factory):
    """ResNet-8 (residual blocks with a convolutional shortcut), briefly trained on 8x8 digits."""
    path = write(tmp_path_factory.mktemp("split-resnet") / "r.toml", RESNET)
    return build_base(load_workload(path)), path


def dynamic_float_tensors(model: onnx.ModelProto) -> list[str]:
    """Every node output that depends on the input (the cut points' superset), final outputs excluded."""
    dynamic = {i.name for i in model.graph.input}
    names = []
    for node in model.graph.node:
        if any(n in dynamic for n in node.input):
            dynamic.update(node.output)
            names += [o for o in node.output if o not in {out.name for out in model.graph.output}]
    return names


def check_cuts_against_running_them(onnx_path, sample_shape, x):
    """Every candidate cuts into a head and tail whose composition is the model; every other tensor that
    depends on the input is refused by cut_model."""
    candidates = split_candidates(onnx_path, sample_shape)
    names = {c.tensor for c in candidates}
    full = run(onnx_path, x)
    for c in candidates:
        head, tail = cut_model(onnx_path, c.tensor)
        payload = run(head, x)
        assert list(payload.shape[1:]) == c.shape
        assert c.payload_bytes_fp32 == 4 * payload[0].size and c.payload_bytes_int8 == payload[0].size
        np.testing.assert_array_equal(run(tail, payload).argmax(1), full.argmax(1))
        np.testing.assert_allclose(run(tail, payload), full, rtol=1e-5, atol=1e-5)
    refused = [t for t in dynamic_float_tensors(onnx.load(str(onnx_path))) if t not in names]
    for tensor in refused:
        with pytest.raises(ConfigError, match="cannot be cut there"):
            cut_model(onnx_path, tensor)
    return candidates, refused


def test_cuts_of_a_residual_network_fall_only_between_blocks(resnet):
    base, _ = resnet
    x, _ = base.data.load_eval()
    candidates, refused = check_cuts_against_running_them(base.onnx_path, base.data.input_shape, x[:32])
    model = onnx.load(str(base.onnx_path))
    names = [c.tensor for c in candidates]
    adds = [n for n in model.graph.node if n.op_type == "Add"]
    assert len(adds) == 3  # one per residual block
    produced_by = {o: n.op_type for n in model.graph.node for o in n.output}
    for add in adds:  # inside a block two tensors cross (body and shortcut): no convolution there is a cut
        assert not {i for i in add.input if produced_by.get(i) == "Conv"} & set(names)
        assert add.output[0] in names
    assert len(refused) >= 9  # every convolution inside the three blocks
    # network order, cumulative costs that add up to the whole model's
    total = model_cost(base.onnx_path, base.data.input_shape).macs
    assert [c.index for c in candidates] == list(range(len(candidates)))
    assert all(c.head_macs + c.tail_macs == total for c in candidates)
    assert [c.head_macs for c in candidates] == sorted(c.head_macs for c in candidates)
    assert candidates[0].head_macs > 0 and candidates[-1].tail_macs > 0
    assert [c.head_params for c in candidates] == sorted(c.head_params for c in candidates)
    check_natural_bottlenecks(candidates, int(np.prod(base.data.input_shape)))


def check_natural_bottlenecks(candidates, input_elements):
    smallest = input_elements
    for c in candidates:
        elements = int(np.prod(c.shape))
        assert c.natural_bottleneck == (elements < smallest), c
        smallest = min(smallest, elements)
    assert any(c.natural_bottleneck for c in candidates)  # global pooling at the latest


def test_cuts_of_a_plain_cnn_and_its_table(cnn):
    base, _, _ = cnn
    x, _ = base.data.load_eval()
    candidates, refused = check_cuts_against_running_them(base.onnx_path, base.data.input_shape, x[:32])
    assert refused == []  # a chain: every tensor separates
    assert "max_pool2d" in [c.tensor for c in candidates]
    check_natural_bottlenecks(candidates, 64)
    table = describe_splits(base.onnx_path, base.data.input_shape)
    assert "256 bytes per sample" in table  # 8x8 fp32
    for c in candidates:
        line = next(row for row in table.splitlines() if f" {c.tensor} " in row)
        assert f"{c.payload_bytes_fp32:,}" in line and f"{c.head_macs:,}" in line
        assert line.rstrip().endswith("*") == c.natural_bottleneck


def test_cut_model_errors_name_the_tensor_and_list_cut_points(cnn):
    base, _, _ = cnn
    with pytest.raises(ConfigError) as error:
        cut_model(base.onnx_path, "no_such_tensor")
    assert "'no_such_tensor'" in str(error.value) and "no tensor of that name" in str(error.value)
    assert "max_pool2d" in str(error.value)
    with pytest.raises(ConfigError, match="final output"):
        cut_model(base.onnx_path, "logits")


def test_codec_round_trip(cnn):
    base, _, _ = cnn
    x, _ = base.data.load_eval()
    head, tail = cut_model(base.onnx_path, "max_pool2d")
    raw = run(head, x)
    qparams = calibrate(raw)
    assert qparams["zero_point"] == 0  # ReLU's output: the range starts at 0
    assert qparams["scale"] == pytest.approx(float(raw.max()) / 255, rel=1e-6)
    encoded = {d: run(encode_head(head, d, qparams), x) for d in PAYLOAD_DTYPES}
    # fp32: the head itself, unchanged
    assert encode_head(head, "fp32").SerializeToString() == head.SerializeToString()
    np.testing.assert_array_equal(encoded["fp32"], raw)
    assert encoded["fp16"].dtype == np.float16 and encoded["int8"].dtype == np.uint8
    np.testing.assert_allclose(encoded["fp16"].astype(np.float32), raw, rtol=1e-3, atol=1e-4)
    dequantized = (encoded["int8"].astype(np.float32) - qparams["zero_point"]) * np.float32(qparams["scale"])
    assert np.abs(dequantized - raw).max() <= qparams["scale"] / 2 * (1 + 1e-5)
    assert len(np.unique(encoded["int8"])) > 100  # the range is used, not collapsed
    for dtype in PAYLOAD_DTYPES:
        decoded = decode_tail(tail, dtype, qparams)
        logits = run(decoded, encoded[dtype])
        reference = run(tail, {"fp32": raw, "fp16": encoded["fp16"].astype(np.float32),
                               "int8": dequantized}[dtype])
        np.testing.assert_allclose(logits, reference, rtol=1e-5, atol=1e-5)  # the tail decodes as numpy does
        assert payload_bytes(encoded[dtype].shape[1:], dtype) == encoded[dtype][0].nbytes


def test_codec_asymmetric_range_and_refusals():
    q = calibrate(np.array([-1.0, 3.0], dtype=np.float32))
    assert q["scale"] == pytest.approx(4 / 255) and q["zero_point"] == round(1 / (4 / 255))
    assert calibrate(np.zeros(4, np.float32)) == {"scale": 1.0, "zero_point": 0}
    with pytest.raises(ConfigError, match="not finite"):
        calibrate(np.array([np.nan], dtype=np.float32))
    with pytest.raises(ConfigError, match="accepted: fp32, fp16, int8"):
        payload_bytes([4], "int4")
    model = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["x"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 4])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 4])]),
        opset_imports=[onnx.helper.make_opsetid("", 9)])
    with pytest.raises(ConfigError, match="opset >= 10"):
        encode_head(model, "int8", q)
    model.opset_import[0].version = 13
    with pytest.raises(ConfigError, match="calibrated"):
        encode_head(model, "int8", None)
    relu_then_quantize = encode_head(model, "int8", q)
    assert run(relu_then_quantize, np.array([[-2, 0, 1, 9]], np.float32)).tolist() == [[64, 64, 128, 255]]


def test_split_variants_accuracy_artifacts_and_costs(cnn):
    base, artifacts, _ = cnn
    x, y = base.data.load_eval()
    unsplit = head_tail_accuracy(None, base.onnx_path, x, y)
    assert unsplit == base.host_accuracy  # onnxruntime and torch agree on the whole model
    assert unsplit > 0.8
    for name in ("split-first", "split-named", "split-auto"):  # fp32 payload: exactly the unsplit accuracy
        assert artifacts[name].host_accuracy == unsplit, name
    assert abs(artifacts["split-fp16"].host_accuracy - unsplit) <= 0.01
    assert abs(artifacts["split-int8"].host_accuracy - unsplit) <= 0.03
    candidates = {c.tensor: c for c in split_candidates(base.onnx_path, base.data.input_shape)}
    for name in ("split-first", "split-named", "split-auto", "split-fp16", "split-int8"):
        artifact = artifacts[name]
        split = artifact.split
        assert set(split) == set(SPLIT_KEYS) and split["strategy"] == "split", name
        assert set(artifact.files) == {"head", "tail"} and artifact.precision == "fp32"
        cut = candidates[split["point"]]
        assert split["point_index"] == cut.index and split["payload_shape"] == cut.shape
        assert split["payload_bytes"] == cut.payload_bytes(split["payload_dtype"])
        assert artifact.macs == split["head_macs"] + split["tail_macs"] == base.cost.macs
        assert artifact.params == base.cost.params  # the codec's scale and zero point are not parameters
        assert split["head_params"] == cut.head_params and split["input_bytes"] == 256
        assert split["head_bytes"] == 4 * split["head_params"]
        head, tail = onnx.load(artifact.files["head"]), onnx.load(artifact.files["tail"])
        assert len(head.graph.input) == len(head.graph.output) == len(tail.graph.input) == 1
        payload = run(artifact.files["head"], x[:4])
        assert payload[0].nbytes == split["payload_bytes"]
    assert artifacts["split-first"].split["point_index"] == 0
    # auto at 1 Mbit/s: the natural bottleneck with the fewest bytes (global pooling)
    auto = artifacts["split-auto"].split
    assert candidates[auto["point"]].natural_bottleneck and auto["payload_shape"][-1] == 1
    int8 = artifacts["split-int8"]
    pooled = int(np.prod(candidates["max_pool2d"].shape))
    assert int8.split["payload_bytes"] == pooled and int8.split["payload_dtype"] == "int8"
    assert onnx.load(int8.files["head"]).graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert onnx.load(int8.files["tail"]).graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert artifacts["split-fp16"].split["payload_bytes"] == 2 * pooled


def test_split_accuracy_through_residual_blocks_equals_the_unsplit_model(resnet):
    _, path = resnet
    base = build_base(load_workload(path))
    artifact = build_variants(base, {"split-stack"})["split-stack"]
    x, y = base.data.load_eval()
    assert artifact.host_accuracy == head_tail_accuracy(None, base.onnx_path, x, y)
    assert artifact.split["point"] == split_candidates(base.onnx_path, base.data.input_shape)[3].tensor


def test_offload_artifact(cnn):
    base, artifacts, _ = cnn
    offload = artifacts["offload"]
    assert offload.files == {"tail": str(base.onnx_path)} and offload.host_accuracy == base.host_accuracy
    assert offload.split == {"strategy": "offload", "point": "input", "point_index": None, "payload_dtype": "fp32",
                             "payload_shape": [1, 8, 8], "payload_bytes": 256, "input_bytes": 256, "head_macs": 0,
                             "tail_macs": base.cost.macs, "head_params": 0, "head_bytes": 0}


def test_a_cached_split_is_not_rebuilt(cnn):
    base, artifacts, path = cnn
    again = build_variants(build_base(load_workload(path)), {"split-int8"})["split-int8"]
    assert again.files == artifacts["split-int8"].files and again.host_accuracy == artifacts["split-int8"].host_accuracy


def test_a_users_onnx_model(user_model, tmp_path):
    """The user's linear classifier: one cut (the flattened input, no smaller than the input); fp32 and
    fp16 split it; int8 needs a training split the user's .npz does not have."""
    candidates = split_candidates(user_model["model"], (1, 8, 8))
    assert [(c.shape, c.natural_bottleneck) for c in candidates] == [([64], False)]
    assert candidates[0].head_macs == 0 and candidates[0].tail_macs == 64 * 10 + 10  # the bias included
    path = write(tmp_path / "user.toml", user_workload_toml(user_model, """
    [[variants]]
    name = "split"
    family = "split"
    point = 0
    payload = "fp16"
    [[variants]]
    name = "split-int8"
    family = "split"
    point = 0
    payload = "int8"
    """))
    base = build_base(load_workload(path))
    artifact = build_variants(base, {"split"})["split"]
    x, y = base.data.load_eval()
    assert artifact.host_accuracy == pytest.approx(head_tail_accuracy(None, base.onnx_path, x, y), abs=0.01)
    assert artifact.host_accuracy > 0.8
    with pytest.raises(ConfigError) as error:
        build_variants(base, {"split-int8"})
    assert str(path) in str(error.value) and "'payload'" in str(error.value) and "training split" in str(error.value)


def test_a_users_residual_model_with_a_bottleneck(tmp_path):
    """A user's ONNX model (not a reference architecture): a skip connection, then a strided convolution
    that narrows the tensor below the input's size (a natural bottleneck before global pooling)."""
    import torch

    from workloads.export import export_onnx

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Conv2d(4, 4, 3, padding=1)
            self.narrow = torch.nn.Conv2d(4, 2, 3, stride=2, padding=1)
            self.fc = torch.nn.Linear(2 * 4 * 4, 10)

        def forward(self, x):
            h = torch.relu(self.a(x))
            h = torch.relu(h + self.b(h))
            return self.fc(torch.flatten(torch.relu(self.narrow(h)), 1))

    torch.manual_seed(0)
    x = np.random.default_rng(0).random((32, 1, 8, 8), dtype=np.float32)
    export_onnx(Net().eval(), x, tmp_path / "net.onnx")
    candidates, refused = check_cuts_against_running_them(tmp_path / "net.onnx", (1, 8, 8), x)
    assert refused  # the conv inside the skip connection
    natural = [c for c in candidates if c.natural_bottleneck]
    assert natural and natural[0].shape == [2, 4, 4]
    check_natural_bottlenecks(candidates, 64)


def candidate(index, elements, head_macs, tail_macs, natural=True):
    return SplitCandidate(index, f"t{index}", "Conv", [elements], 4 * elements, 2 * elements, elements,
                          head_macs, tail_macs, 0, natural)


def test_choose_auto_follows_the_latency_model():
    early = candidate(0, 1000, 1_000, 1_000_000)   # small head, big payload
    late = candidate(1, 10, 1_000_000, 1_000)      # big head, tiny payload
    hidden = candidate(2, 1, 0, 0, natural=False)  # not a natural bottleneck: never chosen
    pick = dict(device_macs_per_s=1e6, server_macs_per_s=1e9, input_bytes=4000, payload_dtype="fp32")
    assert choose_auto([early, late, hidden], bandwidth_mbit=0.01, **pick) is late       # slow link
    assert choose_auto([early, late, hidden], bandwidth_mbit=1000.0, **pick) is early    # slow device
    with pytest.raises(ConfigError, match="no natural bottleneck"):
        choose_auto([hidden], bandwidth_mbit=1.0, **pick)


@pytest.mark.parametrize(("entry", "key", "message"), [
    ('point = "nothing_here"', "point", "no tensor of that name"),
    ("point = 99", "point", "cut point(s), 0.."),
    ('point = "logits"', "point", "final output"),
])
def test_bad_points_name_the_file_and_key_before_any_job(cnn, tmp_path, entry, key, message):
    base, _, _ = cnn
    path = write(tmp_path / "bad.toml", tiny_workload_toml(name="tiny-split") + f"""
    [[variants]]
    name = "bad"
    family = "split"
    {entry}
    """)
    with pytest.raises(ConfigError) as error:
        build_variants(build_base(load_workload(path)), {"bad"})
    text = str(error.value)
    assert str(path) in text and f"key '{key}'" in text and message in text
    assert "max_pool2d" in text or "0..8" in text  # what is accepted


def test_a_residual_inner_tensor_is_refused_with_the_cut_points(resnet, tmp_path):
    base, _ = resnet
    add = next(n for n in onnx.load(str(base.onnx_path)).graph.node if n.op_type == "Add")
    inner = next(i for i in add.input if i)
    path = write(tmp_path / "bad.toml", RESNET.replace("point = 3", f'point = "{inner}"'))
    with pytest.raises(ConfigError) as error:
        build_variants(build_base(load_workload(path)), {"split-stack"})
    text = str(error.value)
    assert str(path) in text and "key 'point'" in text and "residual" in text and add.output[0] in text


@pytest.mark.parametrize(("entry", "key", "message"), [
    ('point = 0\npayload = "int4"', "payload", "accepted: fp32, fp16, int8"),
    ('point = "auto"', "bandwidth_mbit", "is required"),
    ("point = 0\nbandwidth_mbit = 10", "bandwidth_mbit", 'only with point = "auto"'),
    ("point = 0\ncalibration_samples = 10", "calibration_samples", 'only with payload = "int8"'),
    ("point = -1", "point", "accepted"),
    ("point = true", "point", "expected str or int"),
    ("point = 0\nchannels = 4", "channels", "not a known key"),
])
def test_bad_keys_name_the_file_and_key_when_read(tmp_path, entry, key, message):
    path = write(tmp_path / "bad.toml", tiny_workload_toml() + '[[variants]]\nname = "bad"\nfamily = "split"\n'
                 + entry + "\n")
    with pytest.raises(ConfigError) as error:
        load_workload(path)
    text = str(error.value)
    assert str(path) in text and key in text and message in text


def test_a_model_with_two_inputs_counts_both_in_what_the_raw_input_weighs(tmp_path):
    """A cut after the two inputs meet sends half of what the inputs weigh: a natural bottleneck, which
    comparing against the first input alone would miss."""
    from onnx import TensorProto, helper, numpy_helper

    from workloads.split_analysis import describe_splits

    weights = numpy_helper.from_array(np.ones((4, 4), np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("MatMul", ["s", "W"], ["h"]),
         helper.make_node("Relu", ["h"], ["y"])], "two-inputs",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", 4]) for name in ("a", "b")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], [weights])
    path = tmp_path / "two.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    cuts = split_candidates(path, (4,))
    assert [(c.tensor, c.natural_bottleneck) for c in cuts] == [("s", True), ("h", False)]
    header = describe_splits(path, (4,)).splitlines()[0]
    assert "2 inputs, the first [4], then b [4]: 32 bytes per sample" in header
