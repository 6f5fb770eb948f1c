"""Running an early-exit artifact on the device.

A runtime that branches inside a graph runs the artifact's one-call graph (workloads/variants/exit_graph.py:
an ONNX `If` on the exit criterion; its second output says which way each call went). Others run two
calls: stage 1 (body and exit head) always, stage 2 only when the exit is unsure.

Runs inside the agent (boards included): numpy only, Python 3.8 syntax.
"""

from __future__ import annotations

import numpy as np

from harness.core.exit_rule import exits
from harness.core.jobs import stage_files
from targets.backends.base import ModelCalls, Unsupported

ONE_CALL, ONE_CALL_PREDICTOR, TWO_STAGE = "one-call", "one-call+predictor", "two-stage"
# the one-call graph's exit_path output (exit_graph.LEFT, RAN_REST, SKIPPED_HEAD)
LEFT, SKIPPED_HEAD = 0, 2


def load_exit_model(make_backend, artifact: dict, batch_size: int, backend_name: str):
    """The artifact's early-exit model on `make_backend()` instances: one call where the backend branches
    inside a graph (its class says `runs_control_flow`), else two, where it returns a model's every output
    (`outputs`) and the stages come in a format it runs (ONNX, or .tflite with the variant's tflite = true);
    otherwise a skip that says why."""
    if batch_size != 1:
        raise Unsupported("early exits decide per sample: batch_size must be 1")
    rule = artifact["exit"]
    one_call = artifact["files"].get("onnx")
    first = make_backend()
    if one_call and getattr(first, "runs_control_flow", False):
        first.load({"files": {"onnx": one_call}})
        return OneCallExit(first, ONE_CALL_PREDICTOR if rule.get("predictor") else ONE_CALL)
    if not hasattr(first, "outputs"):
        raise Unsupported("early exits run in one call where the runtime branches inside a graph (onnxruntime) "
                          "or as two stages where it returns a model's every output (LiteRT with the variant's "
                          "tflite = true); {} does neither".format(backend_name))
    if rule.get("predictor"):
        raise Unsupported("the exit predictor runs inside the one-call graph (an ONNX If), which {} does not "
                          "branch in: run this variant on onnxruntime".format(backend_name))
    stages = [first, make_backend()]
    for backend, stage in zip(stages, artifact["stages"]):
        fmt = _load_stage(backend, stage_files(stage))
    return TwoStageExit(stages[0], stages[1], rule["criterion"], rule["threshold"], fmt)


def _load_stage(backend, files: dict) -> str:
    """Loads the first of the stage's files the backend runs; returns its format."""
    problem = None
    for fmt, path in files.items():
        try:
            backend.load({"files": {fmt: path}})
            return fmt
        except Unsupported as exc:
            problem = exc
    hint = "" if "tflite" in files else (" (an early exit's stages come as .tflite too with tflite = true in its "
                                         "[[variants]] table)")
    raise Unsupported("{}{}".format(problem, hint))


class ExitModel(ModelCalls):
    """What both ways of running an early exit share: the counts behind the row's exit columns and the
    timed loop over the evaluation set (latency depends on the input)."""

    path = ""
    accuracy_batch = None  # None: the harness's default batch for the accuracy pass

    def __init__(self, backend):
        self.backend = backend
        self.measurement_note = getattr(backend, "measurement_note", None)
        self.copy_times = getattr(backend, "copy_times", None)
        self.samples_in = self.samples_left = self.samples_skipped = 0

    @property
    def exit_rate(self) -> float:
        return self.samples_left / self.samples_in if self.samples_in else 0.0

    @property
    def skip_rate(self):
        """The share the exit predictor sent past the head; None without a predictor."""
        if self.path != ONE_CALL_PREDICTOR:
            return None
        return self.samples_skipped / self.samples_in if self.samples_in else 0.0

    def info(self) -> dict:
        return self.backend.info()

    def sample_call(self, x: np.ndarray):
        """(call, args) for one inference on the sample `x` (a batch of one)."""
        raise NotImplementedError

    def runner(self, samples: np.ndarray):
        """One inference per call, cycling through `samples` (batch 1): the latency depends on the input,
        so the timed loop must see the evaluation set's mix of easy and hard samples."""
        calls = [self.sample_call(np.ascontiguousarray(samples[i:i + 1])) for i in range(len(samples))]
        state = [0]
        count = len(calls)

        def one():
            i = state[0]
            state[0] = i + 1 if i + 1 < count else 0
            call, args = calls[i]
            call(*args)

        return one, ()


class OneCallExit(ExitModel):
    """The one-call graph: (logits, exit_path) per call. The branch is taken per call, so the accuracy pass
    runs one sample per call too, as deployed."""

    accuracy_batch = 1

    def __init__(self, backend, path: str):
        super().__init__(backend)
        self.path = path

    def predict_all(self, inputs: list) -> list:
        logits, path = self.backend.predict_all(inputs)[:2]
        n = len(logits)
        self.samples_in += n
        self.samples_left += n if int(path) == LEFT else 0
        self.samples_skipped += n if int(path) == SKIPPED_HEAD else 0
        return [logits]

    def sample_call(self, x: np.ndarray):
        return self.backend.runner_all([x])


class TwoStageExit(ExitModel):
    """Two loaded stage backends (each exposing `outputs(x) -> list of arrays`) and the exit rule."""

    path = TWO_STAGE

    def __init__(self, stage1, stage2, criterion: str, threshold: float, stage_format=None):
        super().__init__(stage1)
        self.stage1, self.stage2 = stage1, stage2
        self.criterion, self.threshold = criterion, threshold
        self.stage_format = stage_format  # the stages' files the backend runs: "onnx" or "tflite"
        # stages built for one sample (.tflite) take the accuracy pass one sample at a time
        self.accuracy_batch = getattr(stage1, "fixed_batch", None)

    def info(self) -> dict:
        facts = self.backend.info()
        return dict(facts, stage_format=self.stage_format) if self.stage_format else facts

    def predict(self, x: np.ndarray) -> np.ndarray:
        features, exit_logits = self.stage1.outputs(x)[:2]
        leave = exits(exit_logits, self.criterion, self.threshold)
        logits = np.array(exit_logits, dtype=np.float32, copy=True)
        if not leave.all():
            logits[~leave] = self.stage2.outputs(np.ascontiguousarray(features[~leave]))[0]
        self.samples_in += len(x)
        self.samples_left += int(leave.sum())
        return logits

    def infer_one(self, x: np.ndarray) -> np.ndarray:
        """One sample, the shortest path: what a deployed early-exit runtime does per request."""
        features, exit_logits = self.stage1.outputs(x)[:2]
        if exits(exit_logits, self.criterion, self.threshold)[0]:
            return exit_logits
        return self.stage2.outputs(features)[0]

    def sample_call(self, x: np.ndarray):
        return self.infer_one, (x,)
