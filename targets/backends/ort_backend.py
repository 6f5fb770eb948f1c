"""onnxruntime on the CPU execution provider (other providers join through the `providers` option)."""

from __future__ import annotations

import numpy as np

from targets.backends.base import Backend, require_runtime

OPT_LEVELS = ("disabled", "basic", "extended", "all")


class OrtBackend(Backend):
    name = "onnxruntime"
    OPTIONS = {"graph_optimization_level": OPT_LEVELS, "allow_spinning": bool, "providers": list,
               "qdq_fusion": bool}
    runs_control_flow = True

    def load(self, artifact: dict) -> None:
        ort = require_runtime("onnxruntime", "onnxruntime")
        self.check_options()
        path = self.artifact_file(artifact, "onnx", "ONNX files")
        level = self.options.get("graph_optimization_level", "all")
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = {
            "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[level]
        so.add_session_config_entry("session.intra_op.allow_spinning",
                                    "1" if self.options.get("allow_spinning", True) else "0")
        if not self.options.get("qdq_fusion", True):
            # keep QuantizeLinear/DequantizeLinear as written instead of fusing them into int8 kernels
            # (whose u8s8 arithmetic saturates on CPUs without VNNI)
            so.add_session_config_entry("session.disable_quant_qdq", "1")
        providers = self.options.get("providers", ["CPUExecutionProvider"])
        self.session = ort.InferenceSession(path, so, providers=providers)
        self.input_names = [i.name for i in self.session.get_inputs()]
        first = self.session.get_inputs()[0]
        self._fixed_batch = first.shape[0] if isinstance(first.shape[0], int) else None
        self.first_output = [self.session.get_outputs()[0].name]
        self._version = ort.__version__

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(self.first_output, {self.input_names[0]: x})[0]

    def outputs(self, x: np.ndarray) -> list:
        """Every output, in the model's order (stages of an early-exit network)."""
        return self.predict_all([x])

    def predict_all(self, inputs: list) -> list:
        return self.session.run(None, dict(zip(self.input_names, inputs)))

    def runner(self, x: np.ndarray):
        return self.runner_all([x])

    def runner_all(self, inputs: list):
        # None: every output, as an application's call would (asking for one lets onnxruntime skip work)
        return self.session.run, (None, dict(zip(self.input_names, inputs)))

    @property
    def fixed_batch(self):
        return self._fixed_batch

    def info(self) -> dict:
        return {"runtime": "onnxruntime", "version": self._version,
                "providers": self.session.get_providers(),
                "graph_optimization_level": self.options.get("graph_optimization_level", "all"),
                "qdq_fusion": bool(self.options.get("qdq_fusion", True))}
