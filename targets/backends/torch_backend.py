"""PyTorch eager: the reference model rebuilt from its definition and its saved weights."""

from __future__ import annotations

import numpy as np

from targets.backends.base import Backend, Unsupported


class TorchBackend(Backend):
    name = "torch"

    def load(self, artifact: dict) -> None:
        import torch

        self.check_options(())
        spec = artifact.get("torch_model")
        state = artifact["files"].get("torch_state")
        if spec is None or state is None:
            raise Unsupported("torch eager runs edgebench's PyTorch reference models; this artifact "
                              "is " + ", ".join(artifact["files"]) + " only")
        from workloads.models import build_model

        torch.set_num_threads(self.threads)
        torch.set_grad_enabled(False)  # this process only runs inference
        model = build_model(spec["arch"], spec["in_channels"], spec["n_classes"], spec["params"])
        model.load_state_dict(torch.load(state, map_location="cpu", weights_only=True))
        self.model = model.eval()
        self._torch = torch

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model(self._torch.from_numpy(x)).numpy()

    def runner(self, x: np.ndarray):
        return self.model, (self._torch.from_numpy(x),)

    def info(self) -> dict:
        return {"runtime": "torch", "version": self._torch.__version__,
                "threads": self._torch.get_num_threads()}
