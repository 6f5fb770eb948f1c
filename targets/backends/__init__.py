"""Runtime backends that run an artifact on a device. Imported lazily: a board has only some runtimes.

Stays on the standard library and Python 3.8 syntax: the agent imports it on boards.
"""

BACKENDS = {
    "onnxruntime": "targets.backends.ort_backend:OrtBackend",
    "torch": "targets.backends.torch_backend:TorchBackend",
    "litert": "targets.backends.litert_backend:LiteRtBackend",
    "tflite-runtime": "targets.backends.litert_backend:TfliteRuntimeBackend",
    "tensorrt": "targets.backends.tensorrt_backend:TensorRtBackend",
    "finn": "targets.backends.finn_backend:FinnBackend",
    "dpu": "targets.backends.dpu_backend:DpuBackend",
    "qonnx-reference": "targets.backends.qonnx_backend:QonnxReferenceBackend",
}


def backend_ref(name):
    """The backend's import reference ("module:Class"), which the agent loads."""
    return BACKENDS[name]
