"""The backend interface. Timing, windows and accuracy are the harness's; a backend only loads and runs.

Runs inside the agent (boards included): numpy and the runtime only, Python 3.8 syntax.
"""

from __future__ import annotations

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


class Backend:
    name = ""
    measurement_note = None  # a caveat every row of this backend carries (e.g. "measures no accelerator")
    copy_times = None        # GPU backends: {"h2d_ms", "d2h_ms"} of one batch, timed apart from the latency

    def __init__(self, threads: int, options: dict):
        self.threads = threads
        self.options = dict(options)

    def load(self, artifact: dict) -> None:
        raise NotImplementedError

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The first output for a batch, used by the accuracy pass."""
        raise NotImplementedError

    def runner(self, x: np.ndarray) -> tuple[Callable[..., object], tuple]:
        """The runtime's call and its arguments for one inference on `x`, bound once: `call(*args)` is
        the only thing inside a timed region."""
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

    def check_options(self, known) -> None:
        unknown = sorted(set(self.options) - set(known))
        if unknown:
            raise ValueError("unknown option(s) for backend {}: {}; known: {}".format(
                self.name, ", ".join(unknown), ", ".join(sorted(known))))
