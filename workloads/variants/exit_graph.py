"""An early-exit network as ONE ONNX graph that branches (an `If` on the exit criterion), so a runtime
that executes control flow (onnxruntime) runs the rest of the network only for samples that do not
leave, in a single call: no second runtime call, no copies of the features out and back in.

    body -> features -> head -> exit logits -> criterion -> If(leave): exit logits, path 0
                                                               else:   rest(features), path 1

With an exit predictor (a linear classifier on the globally pooled features, fitted in
workloads/variants/exit_predictor.py) a first `If` skips the head for samples it deems hard:

    body -> features -> predictor -> If(easy): head, criterion -> (exit logits, leave, path 1)
                                        else:  (unused logits, leave = false, path 2)
                                  -> If(leave): exit logits, path 0   else: rest(features), path

The second output, `exit_path` (int64, one per call), says which way the call went: 0 left at the exit,
1 ran the whole network after the head, 2 went straight past the head. The branch is taken per call: a
batch leaves only when all its samples may (early exits decide per sample, so they run at batch 1).

The parts (body, head, rest) come as separate ONNX files from the same exporter; each keeps its own
initializers inside the branch that uses it, so nothing is duplicated. (Weights read from the enclosing
graph instead cost onnxruntime its layout and packing optimisations inside the branch: measured +65%
latency for ResNet-8.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, compose, helper, numpy_helper

FEATURES = "exit/features"
EXIT_LOGITS = "exit/exit_logits"
LOGITS_OUTPUT, PATH_OUTPUT = "logits", "exit_path"
# exit_path codes
LEFT, RAN_REST, SKIPPED_HEAD = 0, 1, 2


def _part(path: Path, prefix: str, input_name: str) -> onnx.GraphProto:
    """A part's graph, every name prefixed, its input renamed to the outer value `input_name` (a
    subgraph reads values of the enclosing graph by name)."""
    graph = compose.add_prefix(onnx.load(str(path)), prefix).graph
    own_input = graph.input[0].name
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == own_input:
                node.input[i] = input_name
    return graph


def _branch(name: str, nodes: list, outputs: list, initializers=(), value_info=()) -> onnx.GraphProto:
    return helper.make_graph(nodes, name, [], outputs, initializer=list(initializers),
                             value_info=list(value_info))


def _const(name: str, value: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name + "/value"))


def _criterion(criterion: str, threshold: float, logits: str, prefix: str) -> tuple[list, str]:
    """Nodes computing a bool scalar: every sample of the call is sure enough to leave (max softmax >
    threshold, or entropy < threshold)."""
    p = f"{prefix}/"
    nodes = [helper.make_node("Softmax", [logits], [p + "probs"], axis=-1),
             _const(p + "classes", np.array([-1], dtype=np.int64))]
    if criterion == "confidence":
        nodes += [helper.make_node("ReduceMax", [p + "probs", p + "classes"], [p + "sure"], keepdims=0),
                  helper.make_node("ReduceMin", [p + "sure"], [p + "least_sure"], keepdims=0),
                  _const(p + "threshold", np.array(threshold, dtype=np.float32)),
                  helper.make_node("Greater", [p + "least_sure", p + "threshold"], [p + "leave"])]
    else:  # entropy, clipped like targets.agent.early_exit.exits
        nodes += [_const(p + "tiny", np.array(1e-12, dtype=np.float32)),
                  helper.make_node("Max", [p + "probs", p + "tiny"], [p + "clipped"]),
                  helper.make_node("Log", [p + "clipped"], [p + "log"]),
                  helper.make_node("Mul", [p + "probs", p + "log"], [p + "plogp"]),
                  helper.make_node("ReduceSum", [p + "plogp", p + "classes"], [p + "neg_entropy"], keepdims=0),
                  helper.make_node("ReduceMin", [p + "neg_entropy"], [p + "least_neg"], keepdims=0),
                  _const(p + "neg_threshold", np.array(-threshold, dtype=np.float32)),
                  helper.make_node("Greater", [p + "least_neg", p + "neg_threshold"], [p + "leave"])]
    return nodes, p + "leave"


def _value(name: str, elem: int, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def one_call_graph(body: Path, head: Path, rest: Path, criterion: str, threshold: float, out: Path,
                   predictor: tuple[np.ndarray, float] | None = None) -> None:
    """Write the one-call graph of an early-exit network to `out`. `predictor`: (weights over the pooled
    feature channels, bias); a sample goes on to the head when weights . pooled + bias > 0."""
    body_model = onnx.load(str(body))
    input_value = body_model.graph.input[0]
    body_graph = _part(body, "body/", input_value.name)
    nodes = list(body_graph.node) + [helper.make_node("Identity", [body_graph.output[0].name], [FEATURES])]
    head_graph = _part(head, "head/", FEATURES)
    head_nodes = list(head_graph.node) + [helper.make_node("Identity", [head_graph.output[0].name], [EXIT_LOGITS])]
    rest_graph = _part(rest, "rest/", FEATURES)
    n_classes = rest_graph.output[0].type.tensor_type.shape.dim[-1].dim_value or None
    logits_type = [_value(LOGITS_OUTPUT, TensorProto.FLOAT, ["batch", n_classes]),
                   _value(PATH_OUTPUT, TensorProto.INT64, [])]

    if predictor is None:
        criterion_nodes, leave = _criterion(criterion, threshold, EXIT_LOGITS, "criterion")
        nodes += head_nodes + criterion_nodes
        exit_logits, unsure_path = EXIT_LOGITS, "unsure_path"
        nodes.append(_const(unsure_path, np.array(RAN_REST, dtype=np.int64)))
        initializers = list(head_graph.initializer)
    else:
        weights, bias = predictor
        criterion_nodes, head_leave = _criterion(criterion, threshold, EXIT_LOGITS, "criterion")
        ran_head = _branch("ran_head", head_nodes + criterion_nodes + [
            helper.make_node("Identity", [EXIT_LOGITS], ["ran_head/logits"]),
            helper.make_node("Identity", [head_leave], ["ran_head/leave"]),
            _const("ran_head/path", np.array(RAN_REST, dtype=np.int64))],
            [_value("ran_head/logits", TensorProto.FLOAT, None), _value("ran_head/leave", TensorProto.BOOL, []),
             _value("ran_head/path", TensorProto.INT64, [])], head_graph.initializer, head_graph.value_info)
        skipped = _branch("skipped_head", [
            _const("skipped/logits", np.zeros((1, n_classes or 1), dtype=np.float32)),
            _const("skipped/leave", np.array(False)),
            _const("skipped/path", np.array(SKIPPED_HEAD, dtype=np.int64))],
            [_value("skipped/logits", TensorProto.FLOAT, None), _value("skipped/leave", TensorProto.BOOL, []),
             _value("skipped/path", TensorProto.INT64, [])])
        nodes += [
            helper.make_node("GlobalAveragePool", [FEATURES], ["predictor/pooled4d"]),
            helper.make_node("Flatten", ["predictor/pooled4d"], ["predictor/pooled"]),
            helper.make_node("Gemm", ["predictor/pooled", "predictor/w", "predictor/b"], ["predictor/score"]),
            helper.make_node("ReduceMin", ["predictor/score"], ["predictor/least"], keepdims=0),
            _const("predictor/zero", np.array(0.0, dtype=np.float32)),
            helper.make_node("Greater", ["predictor/least", "predictor/zero"], ["predictor/easy"]),
            helper.make_node("If", ["predictor/easy"], ["exit/logits_or_unused", "exit/leave", "unsure_path"],
                             then_branch=ran_head, else_branch=skipped)]
        initializers = [numpy_helper.from_array(np.asarray(weights, dtype=np.float32).reshape(-1, 1), "predictor/w"),
                        numpy_helper.from_array(np.array([bias], dtype=np.float32), "predictor/b")]
        exit_logits, leave, unsure_path = "exit/logits_or_unused", "exit/leave", "unsure_path"

    left = _branch("left", [helper.make_node("Identity", [exit_logits], ["left/logits"]),
                            _const("left/path", np.array(LEFT, dtype=np.int64))],
                   [_value("left/logits", TensorProto.FLOAT, None), _value("left/path", TensorProto.INT64, [])])
    went_on = _branch("went_on", list(rest_graph.node) + [
        helper.make_node("Identity", [rest_graph.output[0].name], ["went_on/logits"]),
        helper.make_node("Identity", [unsure_path], ["went_on/path"])],
        [_value("went_on/logits", TensorProto.FLOAT, None), _value("went_on/path", TensorProto.INT64, [])],
        rest_graph.initializer, rest_graph.value_info)
    nodes.append(helper.make_node("If", [leave], [LOGITS_OUTPUT, PATH_OUTPUT], then_branch=left,
                                  else_branch=went_on))
    graph = helper.make_graph(nodes, "early_exit_one_call", [input_value], logits_type,
                              initializer=list(body_graph.initializer) + initializers,
                              value_info=list(body_graph.value_info))
    model = helper.make_model(graph, opset_imports=list(body_model.opset_import),
                              producer_name="edgebench early_exit")
    model.ir_version = body_model.ir_version
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(out))
