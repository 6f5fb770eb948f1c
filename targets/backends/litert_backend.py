"""LiteRT (TensorFlow Lite) interpreters: `litert` is ai-edge-litert, `tflite-runtime` the legacy package
with the same Interpreter API (boards that still have it: it needs numpy < 2).

A full-integer model takes int8 input: the float sample is quantized once with the input tensor's
(scale, zero point) before timing, so the timed call is what an integer-only device would run:
set the input, invoke, read the output.
"""

from __future__ import annotations

import numpy as np

from harness.core.quantization import dequantize, quantize
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
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self._version = _package_version(self.PACKAGE)

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        return quantize(x, self._input["dtype"], *self._input["quantization"])

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self._input["index"], x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output["index"])

    def predict(self, x: np.ndarray) -> np.ndarray:
        return dequantize(self._invoke(self._quantize(x)), *self._output["quantization"])

    def runner(self, x: np.ndarray):
        return self._invoke, (self._quantize(x),)

    @property
    def fixed_batch(self):
        return int(self._input["shape"][0])

    def info(self) -> dict:
        return {"runtime": self.PACKAGE, "version": self._version, "threads": self.threads,
                "input_dtype": np.dtype(self._input["dtype"]).name,
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



