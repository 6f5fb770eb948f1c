"""PyTorch eager: the model rebuilt from its class (defined in a source file that travels with the
artifact) and its saved weights (loaded with weights_only=True)."""

from __future__ import annotations

import numpy as np

from harness.core.plugins import load_source_file
from targets.backends.base import Backend, Unsupported, require_runtime


class TorchBackend(Backend):
    """Options: device = "cpu" | "cuda" (a Jetson's or any NVIDIA GPU). On CUDA the timed call is the
    forward pass on an input already on the GPU, synchronised; the host-to-device and device-to-host
    copies of one batch are timed apart and reported in backend_info (h2d_ms, d2h_ms: medians)."""

    name = "torch"
    OPTIONS = {"device": ("cpu", "cuda")}

    def load(self, artifact: dict) -> None:
        torch = require_runtime("torch", "torch")
        self.check_options()
        self.device = self.options.get("device", "cpu")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise Unsupported("device = \"cuda\" but torch sees no CUDA GPU on this device "
                              "(torch {}, built for CUDA {})".format(torch.__version__, torch.version.cuda))
        self.copy_times = {}
        spec = artifact.get("torch_model")
        state, code = artifact["files"].get("torch_state"), artifact["files"].get("torch_code")
        if spec is None or state is None or code is None:
            raise Unsupported("torch eager runs edgebench's PyTorch reference models; this artifact "
                              "is " + ", ".join(artifact["files"]) + " only")
        torch.set_num_threads(self.threads)
        torch.set_grad_enabled(False)  # this process only runs inference
        model = getattr(load_source_file(code), spec["class"])(**spec["kwargs"])
        model.load_state_dict(torch.load(state, map_location="cpu", weights_only=True))
        self.model = model.eval().to(self.device)
        self._torch = torch

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model(self._torch.from_numpy(x).to(self.device)).cpu().numpy()

    def runner(self, x: np.ndarray):
        tensor = self._torch.from_numpy(x)
        if self.device == "cpu":
            return self.model, (tensor,)
        self._time_copies(tensor)
        on_gpu, synchronize = tensor.to(self.device), self._torch.cuda.synchronize

        def forward(batch):
            out = self.model(batch)
            synchronize()
            return out
        return forward, (on_gpu,)

    def _time_copies(self, tensor) -> None:
        self.copy_times = time_copies(self._torch, tensor, self.model(tensor.to(self.device)))

    def info(self) -> dict:
        facts = {"runtime": "torch", "version": self._torch.__version__, "device": self.device,
                 "threads": self._torch.get_num_threads(), **self.copy_times}
        if self.device == "cuda":
            facts["gpu"] = self._torch.cuda.get_device_name(0)
        return facts


def time_copies(torch, host_tensor, device_tensor, repeats: int = 50) -> dict:
    """Medians of one batch's host-to-device and device-to-host copies (ms), each synchronised."""
    import time

    h2d, d2h = [], []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter_ns()
        host_tensor.cuda()
        torch.cuda.synchronize()
        middle = time.perf_counter_ns()
        device_tensor.cpu()
        end = time.perf_counter_ns()
        h2d.append(middle - start)
        d2h.append(end - middle)
    return {"h2d_ms": float(np.median(h2d)) / 1e6, "d2h_ms": float(np.median(d2h)) / 1e6}
