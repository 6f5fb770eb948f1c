"""Vitis AI DPU overlays on PYNQ boards (DPU-PYNQ, PYNQ 3.0 + Vitis AI 2.5): `DpuOverlay(bitfile)`,
`load_model(xmodel)`, then the VART runner's `execute_async` / `wait`.

Inputs are int8 at the input tensor's fix point (x * 2**fix_point, NHWC); outputs are scaled back by
the output's. The timed call is one `execute_async` + `wait` with the buffers prepared. PYNQ is reached
through one seam, `overlay_factory(bitfile)`; tests pass a fake.
"""

import numpy as np

from targets.backends.base import Backend, require_runtime


class DpuBackend(Backend):
    name = "dpu"
    OPTIONS = {}

    def __init__(self, threads, options, overlay_factory=None):
        super().__init__(threads, options)
        self._overlay_factory = overlay_factory

    def load(self, artifact):
        self.check_options()
        xmodel = self.artifact_file(artifact, "xmodel", "Vitis AI .xmodel files")
        bitfile = self.artifact_file(artifact, "bitfile", "a DPU overlay (bitfile) with its .xmodel")
        if self._overlay_factory is None:
            self._overlay_factory = require_runtime("pynq_dpu", "pynq-dpu").DpuOverlay
        self.overlay = self._overlay_factory(bitfile)
        self.overlay.load_model(xmodel)
        self.runner_ = self.overlay.runner
        inputs, outputs = self.runner_.get_input_tensors(), self.runner_.get_output_tensors()
        self.in_shape, self.out_shape = tuple(inputs[0].dims), tuple(outputs[0].dims)
        self.in_scale = 2.0 ** inputs[0].get_attr("fix_point")
        self.out_scale = 2.0 ** -outputs[0].get_attr("fix_point")
        self.xmodel = xmodel

    @property
    def fixed_batch(self):
        return int(self.in_shape[0])

    def quantize(self, x):
        x = np.asarray(x, np.float32)
        if x.ndim == 4 and x.shape[1:] != self.in_shape[1:]:
            x = x.transpose(0, 2, 3, 1)  # NCHW samples -> the DPU's NHWC
        return np.clip(np.round(x * self.in_scale), -128, 127).astype(np.int8).reshape(self.in_shape)

    def _execute(self, inp, out):
        job = self.runner_.execute_async([inp], [out])
        self.runner_.wait(job)

    def _buffers(self, x):
        return np.ascontiguousarray(self.quantize(x)), np.empty(self.out_shape, dtype=np.int8, order="C")

    def predict(self, x):
        inp, out = self._buffers(x)
        self._execute(inp, out)
        return out.astype(np.float32).reshape(self.out_shape[0], -1) * self.out_scale

    def runner(self, x):
        return self._execute, self._buffers(x)

    def info(self):
        return {"runtime": "vart (DPU-PYNQ)", "xmodel": self.xmodel.rsplit("/", 1)[-1],
                "input_scale": self.in_scale}
