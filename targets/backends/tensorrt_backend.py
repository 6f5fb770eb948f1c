"""TensorRT on a Jetson (or any NVIDIA GPU): an engine built on the device from the ONNX artifact (engines
are specific to the GPU and TensorRT version), cached beside the artifact by a hash of what determines it.

Options: precision = "fp32" | "fp16" (int8 comes from QDQ artifacts: explicit quantization, no calibrator),
workspace_mb. The timed call is one `execute_async_v3` with input and output already on the GPU, then a
stream synchronize; host-to-device and device-to-host copies of one batch are timed apart (h2d_ms,
d2h_ms in backend_info). GPU buffers come from torch (JetPack's PyTorch) to keep the dependencies to
what a Jetson already has.
"""

import hashlib
import os
import time

import numpy as np

from targets.backends.base import Backend, Unsupported, require_runtime
from targets.backends.torch_backend import time_copies

PRECISIONS = ("fp32", "fp16")


def engine_key(onnx_bytes, precision, trt_version, gpu_name):
    """The engine cache key: the same model, precision, TensorRT and GPU give the same engine."""
    digest = hashlib.sha256(onnx_bytes)
    for part in (precision, trt_version, gpu_name):
        digest.update(b"\0" + str(part).encode())
    return digest.hexdigest()[:16]


def is_qdq(onnx_bytes):
    return b"QuantizeLinear" in onnx_bytes  # op types are plain strings in the protobuf


class TensorRtBackend(Backend):
    name = "tensorrt"
    OPTIONS = {"precision": PRECISIONS, "workspace_mb": int}

    def load(self, artifact):
        self.check_options()
        path = self.artifact_file(artifact, "onnx", "engines built from ONNX files")
        trt = require_runtime("tensorrt", "tensorrt")
        torch = require_runtime("torch", "torch (JetPack's build, for GPU buffers)")
        if not torch.cuda.is_available():
            raise Unsupported("tensorrt needs a CUDA GPU; torch sees none on this device")
        self.precision = self.options.get("precision", "fp32")
        self.trt, self.torch = trt, torch
        with open(path, "rb") as fh:
            onnx_bytes = fh.read()
        self.int8 = is_qdq(onnx_bytes)
        key = engine_key(onnx_bytes, self.precision + ("+qdq" if self.int8 else ""), trt.__version__,
                         torch.cuda.get_device_name(0))
        engine_path = "{}.{}.engine".format(path, key)
        logger = trt.Logger(trt.Logger.WARNING)
        self.engine_built_s = None
        if not os.path.exists(engine_path):
            started = time.monotonic()
            serialized = self._build(onnx_bytes, logger)
            tmp = engine_path + ".part"
            with open(tmp, "wb") as fh:
                fh.write(serialized)
            os.replace(tmp, engine_path)
            self.engine_built_s = time.monotonic() - started
        with open(engine_path, "rb") as fh:
            self.engine = trt.Runtime(logger).deserialize_cuda_engine(fh.read())
        self.context = self.engine.create_execution_context()
        self.engine_path = engine_path
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.input_name = inputs[0]
        self.output_name = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        self.stream = torch.cuda.Stream()
        self.copy_times = {}

    def _build(self, onnx_bytes, logger):
        trt = self.trt
        builder = trt.Builder(logger)
        network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(onnx_bytes):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise Unsupported("TensorRT cannot parse this ONNX model: " + errors)
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE,
                                     int(self.options.get("workspace_mb", 256)) << 20)
        if self.precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        if self.int8:
            config.set_flag(trt.BuilderFlag.INT8)  # QDQ nodes give the scales (explicit quantization)
        shape = tuple(network.get_input(0).shape)
        if any(d < 0 for d in shape):  # a dynamic batch axis: build for the batch sizes of one run
            profile = builder.create_optimization_profile()
            fixed = tuple(d for d in shape[1:])
            profile.set_shape(network.get_input(0).name, (1,) + fixed, (1,) + fixed, (256,) + fixed)
            config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise RuntimeError("TensorRT failed to build an engine (see its log on the board)")
        return bytes(serialized)

    def _bind(self, x):
        torch = self.torch
        self.context.set_input_shape(self.input_name, tuple(x.shape))
        out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        gpu_in = torch.from_numpy(np.ascontiguousarray(x)).cuda()
        gpu_out = torch.empty(out_shape, dtype=torch.float32, device="cuda")
        self.context.set_tensor_address(self.input_name, gpu_in.data_ptr())
        self.context.set_tensor_address(self.output_name, gpu_out.data_ptr())
        return gpu_in, gpu_out

    def _execute(self, gpu_in, gpu_out):
        self.context.execute_async_v3(self.stream.cuda_stream)
        self.stream.synchronize()

    def predict(self, x):
        gpu_in, gpu_out = self._bind(x)
        self._execute(gpu_in, gpu_out)
        return gpu_out.cpu().numpy()

    def runner(self, x):
        gpu_in, gpu_out = self._bind(x)
        self.copy_times = time_copies(self.torch, self.torch.from_numpy(np.ascontiguousarray(x)), gpu_out)
        return self._execute, (gpu_in, gpu_out)

    def info(self):
        return {"runtime": "tensorrt", "version": self.trt.__version__, "precision": self.precision,
                "explicit_int8": self.int8, "gpu": self.torch.cuda.get_device_name(0),
                "engine": os.path.basename(self.engine_path), "engine_built_s": self.engine_built_s,
                **self.copy_times}
