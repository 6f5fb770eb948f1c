"""Where a network can be cut between a device and a server, and what each cut costs.

A cut is a tensor that alone separates the graph: every value computed before it (its ancestors) is used
only by its ancestors, except the tensor itself, and the model's inputs are used only before it. Inside a
residual block the shortcut carries a second tensor across, so cuts fall only between blocks. Weights and
constants are not "crossing" (each side keeps its own copy). Each cut's payload is the tensor per sample;
a cut is a natural bottleneck when its payload is smaller than the input and than every earlier cut's
(Matsubara et al., Dynamic Split Computing, 2022), the places where splitting can beat offloading.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from harness.core.errors import ConfigError
from workloads.costs import ONNX_TO_NUMPY, WEIGHT_TYPES, node_profile
from workloads.signatures import onnx_signature
from workloads.split_codec import payload_bytes

SHOWN_CANDIDATES = 8  # cut points an error message lists


@dataclass(frozen=True)
class SplitCandidate:
    index: int                  # 0, 1, ... in network order
    tensor: str
    op: str                     # the producer's op_type
    shape: list[int]            # per sample (no batch axis)
    payload_bytes_fp32: int
    payload_bytes_fp16: int
    payload_bytes_int8: int
    head_macs: int | None       # cumulative up to the cut, batch 1 (None: onnx-tool cannot profile the graph)
    tail_macs: int | None
    head_params: int
    natural_bottleneck: bool

    def payload_bytes(self, payload_dtype: str) -> int:
        return {"fp32": self.payload_bytes_fp32, "fp16": self.payload_bytes_fp16,
                "int8": self.payload_bytes_int8}[payload_dtype]


class _Structure:
    """The dataflow of a graph as bit sets over node positions: which nodes each node depends on, and
    which nodes consume the values of a node and of its ancestors."""

    def __init__(self, model: onnx.ModelProto):
        graph = model.graph
        self.nodes = list(graph.node)
        initializers = {t.name for t in graph.initializer}
        self.inputs = [i.name for i in graph.input if i.name not in initializers]
        self.outputs = [o.name for o in graph.output]
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, int] = {}   # value -> bit set of the nodes that read it
        self.ancestors: list[int] = []        # node -> bit set of itself and the nodes it depends on
        reach: list[int] = []                 # node -> consumers of the values of it and its ancestors
        dynamic = set(self.inputs)            # values that depend on a model input
        self.dynamic_inputs: list[list[str]] = []
        for i, node in enumerate(self.nodes):
            used = [name for name in _node_inputs(node) if name in dynamic]
            self.dynamic_inputs.append(used)
            for name in used:
                self.consumers[name] = self.consumers.get(name, 0) | (1 << i)
            if used:  # nodes without one compute constants: both sides may hold them
                dynamic.update(o for o in node.output if o)
                for o in node.output:
                    if o:
                        self.producer[o] = i
        for i in range(len(self.nodes)):
            above = [self.producer[name] for name in self.dynamic_inputs[i] if name in self.producer]
            self.ancestors.append((1 << i) | _union(self.ancestors[p] for p in above))
            reach.append(_union(self.consumers.get(o, 0) for o in self.nodes[i].output)
                         | _union(reach[p] for p in above))
        self.reach_above = reach
        self.live = _union(self.ancestors[self.producer[o]] for o in self.outputs if o in self.producer)
        self.input_consumers = _union(self.consumers.get(name, 0) for name in self.inputs)

    def separates(self, tensor: str) -> bool:
        """True when `tensor` alone carries everything the rest of the network needs from before it."""
        if tensor not in self.producer or tensor in self.outputs:
            return False
        p = self.producer[tensor]
        head = self.ancestors[p]
        tail = self.live & ~head
        if not self.consumers.get(tensor, 0) & tail:
            return False  # nothing after it needs it
        crossing = _union(self.reach_above[self.producer[name]] for name in self.dynamic_inputs[p]
                          if name in self.producer)
        crossing |= _union(self.consumers.get(o, 0) for o in self.nodes[p].output if o != tensor)
        crossing |= self.input_consumers
        outputs_in_head = any(o in self.producer and (head >> self.producer[o]) & 1 for o in self.outputs)
        return not crossing & tail and not outputs_in_head

    def cuts(self) -> list[str]:
        """Every separating tensor, in network order."""
        return [o for node in self.nodes for o in node.output if o and self.separates(o)]

    def head_nodes(self, tensor: str) -> list[int]:
        bits = self.ancestors[self.producer[tensor]]
        return [i for i in range(len(self.nodes)) if (bits >> i) & 1]


def split_candidates(onnx_path, sample_shape: tuple[int, ...]) -> list[SplitCandidate]:
    """Every single-tensor cut of the model (float tensors, the final output excluded) with its costs at
    batch 1 for one input of `sample_shape` (no batch axis)."""
    model = onnx.load(str(onnx_path))
    structure = _Structure(model)
    cuts = structure.cuts()
    if not cuts:
        return []
    shapes, dtypes, macs = _shapes_and_macs(model, tuple(sample_shape), cuts)
    weights = {t.name: int(np.prod(t.dims)) for t in model.graph.initializer
               if t.dims and t.data_type in WEIGHT_TYPES}
    total_macs = None if macs is None else sum(macs.get(structure.nodes[i].output[0], 0)
                                               for i in range(len(structure.nodes))
                                               if (structure.live >> i) & 1 and structure.nodes[i].output)
    # elements of every input (those of symbolic shape aside): the comparison holds at any one payload dtype
    smallest = math.prod(sample_shape) + sum(math.prod(shape) for _, shape, _ in other_inputs(model) if shape)
    candidates = []
    for tensor in cuts:
        if dtypes.get(tensor, np.float32) != np.float32 or tensor not in shapes or len(shapes[tensor]) < 1:
            continue  # a shape or index tensor, or one of unknown shape: not a payload
        shape = list(shapes[tensor][1:])
        head = structure.head_nodes(tensor)
        head_macs = None if macs is None else sum(macs.get(structure.nodes[i].output[0], 0) for i in head)
        used = {name for i in head for name in structure.nodes[i].input}
        elements = math.prod(shape)
        natural = elements < smallest
        smallest = min(smallest, elements)
        candidates.append(SplitCandidate(
            index=len(candidates), tensor=tensor, op=structure.nodes[structure.producer[tensor]].op_type,
            shape=shape, payload_bytes_fp32=payload_bytes(shape, "fp32"),
            payload_bytes_fp16=payload_bytes(shape, "fp16"), payload_bytes_int8=payload_bytes(shape, "int8"),
            head_macs=head_macs, tail_macs=None if macs is None else total_macs - head_macs,
            head_params=sum(n for name, n in weights.items() if name in used), natural_bottleneck=natural))
    return candidates


def input_bytes(onnx_path, sample_shape: tuple[int, ...]) -> int:
    """Bytes of one raw input sample in the model's input dtype (fp32 for the reference models)."""
    dtype = onnx_signature(onnx.load(str(onnx_path))).inputs[0].dtype or np.float32
    return math.prod(sample_shape) * np.dtype(dtype).itemsize


def other_inputs(model: onnx.ModelProto) -> list[tuple[str, list | None, int]]:
    """The inputs after the first: (name, one sample's shape or None when symbolic, bytes per element). A cut
    separates the head from every input, so they all count in what the raw input weighs."""
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers][1:]
    found = []
    for value in inputs:
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim][1:]
        itemsize = np.dtype(ONNX_TO_NUMPY.get(tensor.elem_type, np.float32)).itemsize
        found.append((value.name, dims if None not in dims else None, itemsize))
    return found


def cut_model(onnx_path, tensor: str, out_dir: Path | None = None) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """(head: model input -> `tensor`, tail: `tensor` -> model outputs), saved as head.onnx and tail.onnx
    in `out_dir` when given. ConfigError when `tensor` does not exist or does not separate the graph."""
    from onnx.utils import Extractor

    model = onnx.load(str(onnx_path))
    structure = _Structure(model)
    if not structure.separates(tensor):
        cuts = structure.cuts()
        shown = ", ".join(cuts[:SHOWN_CANDIDATES]) + (f", ... ({len(cuts)} in all)" if len(cuts) > SHOWN_CANDIDATES
                                                      else "")
        values = {o for node in model.graph.node for o in node.output}
        if tensor not in values:
            why = "has no tensor of that name"
        elif tensor in structure.outputs:
            why = "produces it as a final output (nothing would be left for the tail)"
        else:
            why = ("cannot be cut there: another value from before it is used after it (a residual "
                   "connection, or the input itself)")
        raise ConfigError(f"{onnx_path}: tensor {tensor!r}: the model {why}; tensors that split it: "
                          f"{shown or 'none'} (see `edgebench splits`)")
    inferred = _with_value_info(model, tensor)
    extractor = Extractor(inferred)
    head = extractor.extract_model([structure.inputs[0]], [tensor])
    tail = extractor.extract_model([tensor], list(structure.outputs))
    for part in (head, tail):
        onnx.checker.check_model(part)
    if out_dir is not None:
        out_dir = Path(out_dir)
        onnx.save(head, str(out_dir / "head.onnx"))
        onnx.save(tail, str(out_dir / "tail.onnx"))
    return head, tail


def describe_splits(onnx_path, sample_shape: tuple[int, ...]) -> str:
    """The cut points as a plain-text table (`edgebench splits`)."""
    candidates = split_candidates(onnx_path, sample_shape)
    raw = input_bytes(onnx_path, sample_shape)
    others = other_inputs(onnx.load(str(onnx_path)))
    if not others:
        lines = [f"{onnx_path}: input {list(sample_shape)}: {raw:,} bytes per sample as the model takes it, "
                 f"{math.prod(sample_shape):,} bytes as a uint8 image"]
    else:
        known = [(n, s, b) for n, s, b in others if s is not None]
        total = raw + sum(math.prod(s) * b for _, s, b in known)
        listed = ", ".join(f"{n} {s if s is not None else '(symbolic shape: not counted)'}" for n, s, _ in others)
        lines = [f"{onnx_path}: {len(others) + 1} inputs, the first {list(sample_shape)}, then {listed}: "
                 f"{total:,} bytes per sample as the model takes them; every cut below separates all of them "
                 f"from the tail"]
    if not candidates:
        lines.append("no tensor alone separates this network into a head and a tail")
        return "\n".join(lines)
    rows = [("#", "tensor", "op", "shape", "fp32 bytes", "fp16 bytes", "int8 bytes", "head MACs", "head params",
             "tail MACs", "bottleneck")]
    for c in candidates:
        rows.append((str(c.index), c.tensor, c.op, "x".join(map(str, c.shape)) or "scalar",
                     f"{c.payload_bytes_fp32:,}", f"{c.payload_bytes_fp16:,}", f"{c.payload_bytes_int8:,}",
                     _count(c.head_macs), f"{c.head_params:,}", _count(c.tail_macs),
                     "*" if c.natural_bottleneck else ""))
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    numeric = {0, 4, 5, 6, 7, 8, 9}
    for n, row in enumerate(rows):
        lines.append("  ".join(cell.rjust(w) if k in numeric else cell.ljust(w)
                               for k, (cell, w) in enumerate(zip(row, widths))).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("* natural bottleneck: payload smaller than the input and than every earlier cut's; "
                 "head/tail MACs at batch 1, per sample")
    return "\n".join(lines)


def choose_auto(candidates: list[SplitCandidate], bandwidth_mbit: float, device_macs_per_s: float,
                server_macs_per_s: float, input_bytes: int, payload_dtype: str) -> SplitCandidate:
    """The natural bottleneck with the lowest modelled latency head_macs / device + 8 x payload / bandwidth
    + tail_macs / server (the model of Dynamic Split Computing and BottleFit)."""
    natural = [c for c in candidates if c.natural_bottleneck]
    if not natural:
        raise ConfigError(f"no cut point sends less than the raw input ({input_bytes:,} bytes): this network "
                          f"has no natural bottleneck for point = \"auto\"; name a tensor or an index instead")
    if any(c.head_macs is None for c in natural):
        raise ConfigError("point = \"auto\" needs MACs per cut, and onnx-tool cannot profile this graph; "
                          "name a tensor or an index instead")

    def latency_s(c: SplitCandidate) -> float:
        return (c.head_macs / device_macs_per_s + 8 * c.payload_bytes(payload_dtype) / (bandwidth_mbit * 1e6)
                + c.tail_macs / server_macs_per_s)

    return min(natural, key=latency_s)


def _shapes_and_macs(model: onnx.ModelProto, sample_shape: tuple[int, ...], wanted: list[str]):
    """(tensor -> shape at batch 1, tensor -> numpy dtype, node's first output -> MACs or None)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)  # onnx-tool rewrites the model it reads
    try:
        profile = node_profile(copy, sample_shape)
        shapes, macs = profile.shapes, profile.macs
    except Exception:  # onnx-tool raises bare exceptions for operators it does not model
        shapes, macs = {}, None
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    first = onnx_signature(model).inputs[0].name
    for value in fixed.graph.input:
        dims = value.type.tensor_type.shape.dim
        # the first input takes the sample's shape; every input gets batch 1
        sizes = (1, *sample_shape) if value.name == first else (1,)
        for dim, size in zip(dims, sizes):
            dim.Clear()
            dim.dim_value = size
    try:
        inferred = onnx.shape_inference.infer_shapes(fixed, data_prop=True)
    except Exception:  # a custom operator: shapes from onnx-tool only
        inferred = fixed
    dtypes = {}
    for value in (*inferred.graph.value_info, *inferred.graph.output):
        tensor = value.type.tensor_type
        if tensor.elem_type:
            dtypes[value.name] = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)
        if value.name not in shapes and tensor.HasField("shape") and all(
                d.HasField("dim_value") for d in tensor.shape.dim):
            shapes[value.name] = tuple(d.dim_value for d in tensor.shape.dim)
    return {name: shapes[name] for name in wanted if name in shapes}, dtypes, macs


def _with_value_info(model: onnx.ModelProto, tensor: str) -> onnx.ModelProto:
    """The model with inferred value_info (the Extractor types the stages' new inputs and outputs from
    it); a tensor shape inference cannot type is declared float of unknown shape."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:
        inferred = model
    known = {v.name for v in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)}
    if tensor not in known:
        inferred.graph.value_info.append(onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None))
    return inferred


def _node_inputs(node: onnx.NodeProto) -> list[str]:
    """A node's inputs, with the outer values its subgraphs (If, Loop, Scan) read implicitly."""
    names = [n for n in node.input if n]
    for attr in node.attribute:
        for sub in (*([attr.g] if attr.HasField("g") else []), *attr.graphs):
            defined = ({i.name for i in sub.input} | {t.name for t in sub.initializer}
                       | {o for n in sub.node for o in n.output})
            names += [n for inner in sub.node for n in _node_inputs(inner) if n not in defined]
    return names


def _union(bitsets) -> int:
    out = 0
    for bits in bitsets:
        out |= bits
    return out


def _count(n: int | None) -> str:
    return "?" if n is None else f"{n:,}"

