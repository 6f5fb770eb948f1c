"""qonnx's reference execution of a QONNX graph: the low-bit network an FPGA flow compiles, run in
software, node by node. Its accuracy is the reference the FPGA's is checked against; its latency is
that of a Python interpreter of the graph and says nothing about any accelerator (the row says so)."""

import numpy as np

from targets.backends.base import Backend, require_runtime

LABEL = "functional reference (qonnx execute_onnx): latency is not a measurement of any accelerator"


class QonnxReferenceBackend(Backend):
    name = "qonnx-reference"
    measurement_note = LABEL
    OPTIONS = {}

    def load(self, artifact):
        self.check_options()
        path = self.artifact_file(artifact, "qonnx", "QONNX files (a qat or fpga variant)")
        core = require_runtime("qonnx.core.onnx_exec", "qonnx")
        wrapper = require_runtime("qonnx.core.modelwrapper", "qonnx")
        cleanup = require_runtime("qonnx.util.cleanup", "qonnx")
        self.model = cleanup.cleanup_model(wrapper.ModelWrapper(path))
        self._execute = core.execute_onnx
        self.input_name = self.model.graph.input[0].name
        self.output_name = self.model.graph.output[0].name
        dims = self.model.graph.input[0].type.tensor_type.shape.dim
        self._batch = dims[0].dim_value if dims and dims[0].dim_value else None

    def _run(self, x):
        return self._execute(self.model, {self.input_name: x})[self.output_name]

    def predict(self, x):
        return np.asarray(self._run(x))

    def runner(self, x):
        return self._run, (x,)

    @property
    def fixed_batch(self):
        return self._batch

    def info(self):
        return {"runtime": "qonnx", "note": LABEL}
