"""Split computing without retraining: the network cut at one tensor into a head (on the device) and a
tail (on the server), the tensor at the cut sent over the link as fp32, fp16 or int8 (quantised per
tensor at the head's end with a scale calibrated on the training split, dequantised at the tail's
start). The codec is inside the two ONNX graphs (workloads/split_codec.py); cut points are those of
`edgebench splits` (workloads/split_analysis.py).

    [[variants]]
    name = "split-int8"
    family = "split"
    point = "auto"               # a tensor name | a cut point's index | "auto"
    payload = "int8"             # fp32 | fp16 | int8
    bandwidth_mbit = 10          # auto: the natural bottleneck with the lowest modelled latency
    device_macs_per_s = 1e9      # auto (head MACs / device + 8 x payload / bandwidth + tail MACs / server)
    server_macs_per_s = 1e10     # auto
    calibration_samples = 512    # int8: training samples whose min / max set the scale
"""

from __future__ import annotations

import inspect
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from harness.core.config import Table
from harness.core.errors import ConfigError
from harness.core.hashing import content_hash
from harness.core.jobs import Artifact

STRATEGY = "split"
AUTO = "auto"
AUTO_KEYS = ("bandwidth_mbit", "device_macs_per_s", "server_macs_per_s")


def parse(table: Table) -> dict:
    from workloads.split_codec import PAYLOAD_DTYPES

    point = table.take("point", (str, int))
    if isinstance(point, int) and point < 0:
        raise ConfigError(f"{table.where('point')} = {point}: accepted: a tensor name, a cut point's index "
                          f"(0, 1, ... as `edgebench splits` lists them) or \"auto\"")
    if isinstance(point, str) and not point.strip():
        raise ConfigError(f"{table.where('point')} = {point!r}: accepted: a tensor name, a cut point's index "
                          f"or \"auto\"")
    params = {"point": point, "payload": table.take("payload", str, "fp32", choices=PAYLOAD_DTYPES)}
    if point == AUTO:
        params.update(bandwidth_mbit=table.take("bandwidth_mbit", float, minimum=1e-6),
                      device_macs_per_s=table.take("device_macs_per_s", float, 1e9, minimum=1.0),
                      server_macs_per_s=table.take("server_macs_per_s", float, 1e10, minimum=1.0))
    else:
        _refuse(table, AUTO_KEYS, "point = \"auto\"")
    if params["payload"] == "int8":
        params["calibration_samples"] = table.take("calibration_samples", int, 512, minimum=1)
    else:
        _refuse(table, ("calibration_samples",), "payload = \"int8\"")
    table.finish()
    return params


def precision(params: dict) -> str:
    return "fp32"  # the stages compute in fp32; the payload's dtype is a column of its own


def build(base, variant) -> Artifact:
    from workloads import split_analysis, split_codec
    from workloads.split_analysis import cut_model, split_candidates
    from workloads.split_codec import calibrate, decode_tail, encode_head, head_tail_accuracy

    params = variant.params
    where = f"{base.workload.file}: variant '{variant.name}'"
    if params["payload"] == "int8" and base.data.train_path is None:
        raise ConfigError(f"{where}, key 'payload' = \"int8\": the int8 payload's scale is calibrated on a "
                          f"training split, and a user's evaluation-only .npz has none; accepted here: "
                          f"payload = \"fp32\" or \"fp16\"")
    candidates = split_candidates(base.require_onnx("split"), base.data.input_shape)
    cut = resolve_point(base, params, candidates, f"{where}, key 'point' = {params['point']!r}")
    # the codec's and the analysis' code are part of what the artifact is built from
    code = content_hash(inspect.getsource(split_codec) + inspect.getsource(split_analysis))

    def make(tmp: Path) -> dict:
        import onnx

        head, tail = cut_model(base.onnx_path, cut.tensor)
        qparams = None
        if params["payload"] == "int8":
            x_train, _ = base.data.load_train()
            picks = np.random.default_rng(0).choice(len(x_train), min(params["calibration_samples"], len(x_train)),
                                                    replace=False)
            qparams = calibrate(_range_of_outputs(head, x_train[np.sort(picks)]))
        onnx.save(encode_head(head, params["payload"], qparams), str(tmp / "head.onnx"))
        onnx.save(decode_tail(tail, params["payload"], qparams), str(tmp / "tail.onnx"))
        x, y = base.data.load_eval()
        return {"host_accuracy": head_tail_accuracy(tmp / "head.onnx", tmp / "tail.onnx", x, y),
                "tensor": cut.tensor, "qparams": qparams}

    folder = base.build_variant(replace(variant, params={**params, "code": code}), make)
    return split_artifact(base, variant, folder, cut, params["payload"], STRATEGY)


def resolve_point(base, params: dict, candidates: list, where: str):
    """The cut point `params["point"]` names (a tensor, an index or "auto"); ConfigError naming `where`."""
    from workloads.split_analysis import choose_auto, cut_model
    from workloads.split_codec import payload_bytes

    point = params["point"]
    listed = f"{len(candidates)} cut point(s), 0..{len(candidates) - 1}" if candidates else "no cut point"
    if not candidates:
        raise ConfigError(f"{where}: no single tensor separates {base.onnx_path} into a head and a tail "
                          f"(see `edgebench splits`)")
    if point == AUTO:
        try:
            return choose_auto(candidates, params["bandwidth_mbit"], params["device_macs_per_s"],
                               params["server_macs_per_s"], payload_bytes(base.data.input_shape, "fp32"),
                               params["payload"])
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    if isinstance(point, int):
        if point >= len(candidates):
            raise ConfigError(f"{where}: the model has {listed} (see `edgebench splits`)")
        return candidates[point]
    for candidate in candidates:
        if candidate.tensor == point:
            return candidate
    try:
        cut_model(base.onnx_path, point)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    raise ConfigError(f"{where}: the tensor separates the model but is not a float tensor of known shape, so it "
                      f"cannot be a payload; {listed} (see `edgebench splits`)")


def split_artifact(base, variant, folder: Path, cut, payload_dtype: str, strategy: str) -> Artifact:
    """The artifact of a built head.onnx / tail.onnx pair in `folder` (meta.json: host_accuracy)."""
    import json

    import onnx

    from workloads.costs import parameter_size
    from workloads.split_codec import payload_bytes

    meta = json.loads((folder / "meta.json").read_text())
    head_path, tail_path = folder / "head.onnx", folder / "tail.onnx"
    head_params, head_bytes = parameter_size(onnx.load(str(head_path)))
    tail_params, _ = parameter_size(onnx.load(str(tail_path)))
    macs = None if cut.head_macs is None else cut.head_macs + cut.tail_macs
    split = {"strategy": strategy, "point": cut.tensor, "point_index": cut.index, "payload_dtype": payload_dtype,
             "payload_shape": list(cut.shape), "payload_bytes": cut.payload_bytes(payload_dtype),
             "input_bytes": payload_bytes(base.data.input_shape, "fp32"), "head_macs": cut.head_macs,
             "tail_macs": cut.tail_macs, "head_params": head_params, "head_bytes": head_bytes}
    return Artifact(
        workload=base.workload.name, variant=variant.name, family=variant.family, precision=variant.precision,
        files={"head": str(head_path), "tail": str(tail_path)}, eval_data=str(base.data.eval_path),
        n_eval=base.data.n_eval, n_classes=base.data.n_classes,
        model_bytes=head_path.stat().st_size + tail_path.stat().st_size, params=head_params + tail_params,
        macs=macs, variant_params=dict(variant.params), host_accuracy=meta.get("host_accuracy"), split=split,
        **base.model_io({}))


def _range_of_outputs(head, x: np.ndarray) -> np.ndarray:
    """[min, max] of the head's output over `x` (all calibrate needs), in batches."""
    import onnxruntime as ort

    from workloads.split_codec import batches

    session = ort.InferenceSession(head.SerializeToString(), providers=["CPUExecutionProvider"])
    first = session.get_inputs()[0]
    step, usable = batches([first.shape[0]], len(x))
    low, high = math.inf, -math.inf
    for start in range(0, usable, step):
        out = session.run(None, {first.name: x[start:start + step]})[0]
        low, high = min(low, float(out.min())), max(high, float(out.max()))
    return np.array([low, high], dtype=np.float32)


def _refuse(table: Table, keys: tuple[str, ...], only_with: str) -> None:
    for key in keys:
        if table.has(key):
            raise ConfigError(f"{table.where(key)} is used only with {only_with}; remove it or set that")
