"""Nominal cost of a .tflite model at batch 1, by the convention workloads/costs.py applies to ONNX graphs
(onnx-tool's): multiply-accumulates of the convolutions and matrix products, each bias addition counted as
one MAC per output element; parameters are those operators' weights and biases.

Read from LiteRT's interpreter (its op list and tensor shapes), on the host: a user's .tflite (the MLPerf Tiny
models come as .tflite) then has MACs for the reports' cost axes, as its ONNX twin would.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workloads.costs import ModelCost

# op -> (index of the weights among the op's inputs, index of the bias or None)
COMPUTE_OPS = {"CONV_2D": (1, 2), "DEPTHWISE_CONV_2D": (1, 2), "FULLY_CONNECTED": (1, 2), "CONV_3D": (1, 2),
               "TRANSPOSE_CONV": (1, 3), "BATCH_MATMUL": (None, None)}


# ops whose work lies in subgraphs or recurrent cells this count does not follow: their model gets no MACs
UNCOUNTED_OPS = {"WHILE", "IF", "CALL", "UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM", "LSTM",
                 "UNIDIRECTIONAL_SEQUENCE_RNN", "BIDIRECTIONAL_SEQUENCE_RNN", "RNN", "SVDF", "CUSTOM"}


def _op_macs(op: str, inputs: list, output: tuple, shapes: dict) -> int:
    """MACs of one compute op over the whole tensor its output is (bias included)."""
    out_elements = int(np.prod(output))
    if op == "BATCH_MATMUL":
        return out_elements * int(shapes[inputs[0]][-1])
    weights = shapes[inputs[COMPUTE_OPS[op][0]]]
    if op == "DEPTHWISE_CONV_2D":     # weights (1, kh, kw, out channels)
        per_output = int(weights[1] * weights[2])
    elif op == "TRANSPOSE_CONV":      # each input element meets every weight of its channel
        x = shapes[inputs[2]]
        return int(np.prod(x)) * int(np.prod(weights[:-1])) + _bias_macs(op, inputs, output)
    else:                             # (out, kh, kw, in), (out, in) or (kd, kh, kw, in, out): all but out
        per_output = int(np.prod(weights)) // int(output[-1])
    return out_elements * per_output + _bias_macs(op, inputs, output)


def _bias_macs(op: str, inputs: list, output: tuple) -> int:
    bias = COMPUTE_OPS[op][1]
    return int(np.prod(output)) if bias is not None and len(inputs) > bias and inputs[bias] >= 0 else 0


def tflite_cost(path: Path) -> ModelCost:
    """Cost at batch 1 (a dynamic batch axis is set to 1; a fixed batch's counts are divided by it)."""
    from ai_edge_litert.interpreter import Interpreter

    from workloads.quiet import native_output_captured

    with native_output_captured(f"loading {Path(path).name} in LiteRT"):
        interpreter = Interpreter(model_path=str(path), num_threads=1)
        for tensor in interpreter.get_input_details():
            signature = list(tensor.get("shape_signature", tensor["shape"]))
            if signature and signature[0] == -1:
                interpreter.resize_tensor_input(tensor["index"], [1, *tensor["shape"][1:]])
        interpreter.allocate_tensors()
    first = interpreter.get_input_details()[0]["shape"]
    batch = int(first[0]) if len(first) > 1 and first[0] > 0 else 1
    shapes = {t["index"]: tuple(int(d) for d in t["shape"]) for t in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()  # the op list has no public accessor in LiteRT's Python API
    uncounted = sorted({op["op_name"] for op in ops} & UNCOUNTED_OPS)
    if uncounted:
        return ModelCost(model_bytes=Path(path).stat().st_size, params=None, macs=None,
                         macs_reason=f"macs: LiteRT ops {', '.join(uncounted)} run subgraphs or recurrent cells "
                                     f"that are not counted")
    macs, weights = 0, set()
    for op in ops:
        name = op["op_name"]
        if name not in COMPUTE_OPS:
            continue
        inputs = [int(i) for i in op["inputs"]]
        macs += _op_macs(name, inputs, shapes[int(op["outputs"][0])], shapes)
        weights.update(inputs[i] for i in COMPUTE_OPS[name] if i is not None and len(inputs) > i and inputs[i] >= 0)
    params = sum(int(np.prod(shapes[i])) for i in weights)
    return ModelCost(model_bytes=Path(path).stat().st_size, params=params, macs=macs // batch)
