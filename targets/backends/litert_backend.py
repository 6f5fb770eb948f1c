"""LiteRT (TensorFlow Lite) interpreters: `litert` is ai-edge-litert, `tflite-runtime` the legacy package
with the same Interpreter API (boards that still have it: it needs numpy < 2).

A full-integer model takes int8 input: the float sample is quantized once with the input tensor's
(scale, zero point) before timing, so the timed call is what an integer-only device would run:
set the input, invoke, read the output.
"""

from __future__ import annotations

import numpy as np

from harness.core.quantization import dequantize, quantize
from harness.core.tflite_io import tensors
from targets.backends.base import Backend, require_runtime


class LiteRtBackend(Backend):
    name = "litert"
    MODULE, PACKAGE = "ai_edge_litert.interpreter", "ai-edge-litert"
    OPTIONS = {"use_xnnpack": bool}

    def load(self, artifact: dict) -> None:
        self.check_options()
        path = self.artifact_file(artifact, "tflite", ".tflite files")
        module = require_runtime(self.MODULE, self.PACKAGE)
        kwargs = {"model_path": path, "num_threads": self.threads}
        if not self.options.get("use_xnnpack", True):
            kwargs["experimental_op_resolver_type"] = module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        self.interpreter = module.Interpreter(**kwargs)
        self.interpreter.allocate_tensors()
        self._inputs = tensors(self.interpreter, "inputs")
        self._outputs = tensors(self.interpreter, "outputs")
        self._shapes = [tuple(t["shape"]) for t in self._inputs]
        # a batch axis the model declares dynamic (shape_signature -1) is resized to the data's batch
        self._resizable = all(len(t.get("shape_signature", ())) and t["shape_signature"][0] == -1
                              for t in self._inputs)
        self._version = _package_version(self.PACKAGE)

    def _fit(self, inputs: list) -> None:
        """Resize the inputs to these arrays' shapes (outside any timed call); a fixed model is left as is."""
        if not self._resizable or [x.shape for x in inputs] == self._shapes:
            return
        for tensor, x in zip(self._inputs, inputs):
            self.interpreter.resize_tensor_input(tensor["index"], list(x.shape))
        self.interpreter.allocate_tensors()
        self._shapes = [x.shape for x in inputs]

    def _invoke(self, *quantized) -> list:
        for tensor, x in zip(self._inputs, quantized):
            self.interpreter.set_tensor(tensor["index"], x)
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(t["index"]) for t in self._outputs]

    def _quantized(self, inputs: list) -> list:
        # data already in an integer input's dtype is taken as quantized by the user
        return [x if np.dtype(t["dtype"]) == x.dtype else quantize(x, t["dtype"], *t["quantization"])
                for t, x in zip(self._inputs, inputs)]

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.predict_all([x])[0]

    def predict_all(self, inputs: list) -> list:
        self._fit(inputs)
        outputs = self._invoke(*self._quantized(inputs))
        return [dequantize(y, *t["quantization"]) for t, y in zip(self._outputs, outputs)]

    def outputs(self, x: np.ndarray) -> list:
        """Every output, in the model's order (stages of an early-exit network)."""
        return self.predict_all([x])

    def runner(self, x: np.ndarray):
        return self.runner_all([x])

    def runner_all(self, inputs: list):
        # set every input, invoke, read every output: what an integer-only application does per request
        self._fit(inputs)
        return self._invoke, tuple(self._quantized(inputs))

    @property
    def fixed_batch(self):
        if self._resizable or not len(self._inputs[0]["shape"]):
            return None
        return int(self._inputs[0]["shape"][0])

    def info(self) -> dict:
        return {"runtime": self.PACKAGE, "version": self._version, "threads": self.threads,
                "input_dtype": np.dtype(self._inputs[0]["dtype"]).name,
                "xnnpack": bool(self.options.get("use_xnnpack", True))}


class TfliteRuntimeBackend(LiteRtBackend):
    name = "tflite-runtime"
    MODULE, PACKAGE = "tflite_runtime.interpreter", "tflite-runtime"


def _package_version(package: str):
    try:
        from importlib.metadata import version
        return version(package)
    except Exception:  # metadata missing on a hand-copied runtime: the version is unknown, not an error
        return None



