"""Full offload: the raw input sent over the link and the whole network run on the server (the baseline
split computing is measured against). No head; the tail is the base ONNX model itself.

    [[variants]]
    name = "offload"
    family = "offload"
"""

from __future__ import annotations

import math

from harness.core.config import Table
from harness.core.jobs import Artifact

STRATEGY = "offload"
PAYLOAD_DTYPE_NAMES = {"float32": "fp32", "float16": "fp16"}  # the names split payloads use


def parse(table: Table) -> dict:
    table.finish()  # the raw input is the payload: nothing to choose
    return {}


def precision(params: dict) -> str:
    return "fp32"


def build(base, variant) -> Artifact:
    import onnx

    from workloads.signatures import onnx_signature
    from workloads.split_codec import payload_bytes

    # the input crosses as the data holds it
    dtype = onnx_signature(onnx.load(str(base.require_onnx("offload")))).inputs[0].dtype
    elements = math.prod(base.data.input_shape)
    split = {"strategy": STRATEGY, "point": "input", "point_index": None,
             "payload_dtype": PAYLOAD_DTYPE_NAMES.get(dtype.name, dtype.name),
             "payload_shape": list(base.data.input_shape), "payload_bytes": elements * dtype.itemsize,
             "input_bytes": payload_bytes(base.data.input_shape, "fp32"), "head_macs": 0,
             "tail_macs": base.cost.macs, "head_params": 0,
             "head_bytes": 0}
    return Artifact(
        workload=base.workload.name, variant=variant.name, family=variant.family, precision=variant.precision,
        files={"tail": str(base.onnx_path)}, eval_data=str(base.data.eval_path), n_eval=base.data.n_eval,
        n_classes=base.data.n_classes, model_bytes=base.cost.model_bytes, params=base.cost.params, macs=base.cost.macs,
        variant_params={}, host_accuracy=base.host_accuracy, split=split, **base.model_io({}))
