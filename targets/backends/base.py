"""The backend interface. Timing, windows and accuracy are the harness's; a backend only loads and runs.

Runs inside the agent (boards included): numpy and the runtime only, Python 3.8 syntax.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


class Unsupported(Exception):
    """This backend cannot run this artifact by design (reported as a skipped job, with the reason)."""


def require_runtime(module: str, package: str):
    """The runtime's module, or a skip naming the package to install on this device."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise Unsupported("{} is not installed on this device ({}); install it with "
                          "`pip install {}`".format(package, exc, package)) from None


ANY = object()  # an option that takes any value


def describe_option(spec) -> str:
    """What an option declaration accepts, in words."""
    if spec is ANY:
        return "any value"
    if isinstance(spec, tuple):
        return "one of " + ", ".join(repr(c) for c in spec)
    if spec is list:
        return "a non-empty list of strings"
    if spec is bool:
        return "true or false"
    if spec in (int, float):
        return "a finite number > 0" if spec is float else "an integer > 0"
    if spec is str:
        return "a non-empty string"
    return getattr(spec, "__name__", str(spec))


def option_problem(declared, key, value):
    """None when `value` is acceptable for option `key` of a backend declaring `declared`, else what is
    wrong, as "'key' = value: accepted ..." (also run by the host, before anything is built)."""
    if key not in declared:
        return "'{}' is not a known option; known: {}".format(key, ", ".join(sorted(declared)) or "(none)")
    spec = declared[key]
    if spec is ANY:
        return None
    if isinstance(spec, tuple):
        ok = any(value == c and type(value) is type(c) for c in spec)
    elif spec is list:
        ok = isinstance(value, list) and bool(value) and all(isinstance(v, str) and v for v in value)
    elif spec is bool:
        ok = isinstance(value, bool)
    elif spec is int:
        ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
    elif spec is float:
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
              and value > 0)
    elif spec is str:
        ok = isinstance(value, str) and bool(value)
    else:
        ok = isinstance(value, spec)
    if ok:
        return None
    return "'{}' = {!r}: accepted: {}".format(key, value, describe_option(spec))


class ModelCalls:
    """The accuracy pass and the timed call go through predict_all and runner_all (every input in the
    model's order, every output back). A model that takes one input and scores its first output needs only
    predict and runner: these defaults adapt them, and refuse a model with several inputs."""

    name = ""

    def predict_all(self, inputs: list) -> list:
        return [self.predict(self._single(inputs))]

    def runner_all(self, inputs: list):
        return self.runner(self._single(inputs))

    def _single(self, inputs: list) -> np.ndarray:
        if len(inputs) != 1:
            raise Unsupported("{} runs single-input models; this model has {} inputs".format(
                self.name or type(self).__name__, len(inputs)))
        return inputs[0]


class Backend(ModelCalls):
    name = ""
    # option name -> what it accepts: a tuple of choices, bool, int / float (> 0, finite), str (non-empty),
    # list (of strings) or ANY. The host checks a target's [backends.<name>] tables and the artifacts'
    # backend_options against it before anything is built or measured.
    OPTIONS = {}
    measurement_note = None  # a caveat every row of this backend carries (e.g. "measures no accelerator")
    copy_times = None        # GPU backends: {"h2d_ms", "d2h_ms"} of one batch, timed apart from the latency
    # runs a graph that branches (ONNX If) in one call: early exits then run as one call, not two
    runs_control_flow = False

    def __init__(self, threads: int, options: dict):
        self.threads = threads
        self.options = dict(options)

    def load(self, artifact: dict) -> None:
        raise NotImplementedError

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The first output for a batch of a single-input model (see ModelCalls)."""
        raise NotImplementedError

    def runner(self, x: np.ndarray) -> tuple[Callable[..., object], tuple]:
        """The runtime's call and its arguments for one inference on `x`, bound once: `call(*args)` is
        the only thing inside a timed region. A backend that runs several inputs overrides runner_all,
        which fetches every output the model declares, as an application would."""
        raise NotImplementedError

    @property
    def fixed_batch(self) -> int | None:
        """The batch size the model was built for, or None when the batch axis is dynamic."""
        return None

    def info(self) -> dict:
        return {}

    def artifact_file(self, artifact: dict, fmt: str, what: str) -> str:
        """The artifact's file of format `fmt`, or a skip saying what this backend runs instead."""
        path = artifact["files"].get(fmt)
        if path is None:
            raise Unsupported("{} runs {}; this artifact has {}".format(
                self.name, what, ", ".join(artifact["files"])))
        return path

    def check_options(self, known=None) -> None:
        """The options against `known` (default: the class's OPTIONS declaration); raises ValueError.
        The host checks the same declaration before any job (targets.spec), so this is a second guard."""
        declared = self.OPTIONS if known is None else (known if isinstance(known, dict)
                                                       else dict.fromkeys(known, ANY))
        for key in sorted(self.options):
            problem = option_problem(declared, key, self.options[key])
            if problem:
                raise ValueError("backend {} option {}".format(self.name, problem))
