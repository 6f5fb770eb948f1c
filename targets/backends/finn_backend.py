"""FINN dataflow accelerators on PYNQ boards, driven the way FINN's own `zynq-iodma` driver does.

The artifact's `variant_params` carry what FINN's generated driver knows (the workload's `fpga` variant):
idt / odt (FINN datatypes), ishape_normal / ishape_folded / oshape_normal / oshape_folded, the input's
scale into the integer domain and its layout. A sample goes: float -> integer (x * input_scale, rounded)
-> NHWC -> folded -> packed bytes (targets.fpga.packing) -> DMA -> packed output -> unpacked -> normal.

The timed call is one accelerator run on a packed batch already in the device buffer (start the output
and input IODMAs, wait for the output one): packing stays outside, like the runtimes' invoke.

PYNQ is reached through one seam: `overlay_factory(bitfile)` and `allocate(shape, dtype)`; tests pass fakes.
"""

import time

import numpy as np

from harness.core.finn_datatypes import parse_datatype
from targets.backends.base import Backend, require_runtime
from targets.fpga.packing import pack_innermost, unpack_innermost

REQUIRED = ("idt", "odt", "ishape_normal", "ishape_folded", "oshape_normal", "oshape_folded")


class FinnBackend(Backend):
    name = "finn"
    OPTIONS = {"dma_in": str, "dma_out": str, "timeout_s": float}

    def __init__(self, threads, options, overlay_factory=None, allocate=None):
        super().__init__(threads, options)
        self._overlay_factory, self._allocate = overlay_factory, allocate

    def load(self, artifact):
        self.check_options()
        bitfile = self.artifact_file(artifact, "bitfile", "FPGA bitfiles")
        params = artifact.get("variant_params", {})
        missing = [k for k in REQUIRED if k not in params]
        if missing:
            raise ValueError("the fpga variant lacks driver settings: " + ", ".join(missing))
        if self._overlay_factory is None:
            pynq = require_runtime("pynq", "pynq")
            self._overlay_factory, self._allocate = pynq.Overlay, pynq.allocate
        self.params = params
        self.idt, self.odt = parse_datatype(params["idt"]), parse_datatype(params["odt"])
        self.overlay = self._overlay_factory(bitfile)
        self.timeout_s = float(self.options.get("timeout_s", 10.0))
        self.idma = getattr(self.overlay, self.options.get("dma_in", "idma0"))
        self.odma = getattr(self.overlay, self.options.get("dma_out", "odma0"))
        self._buffers = {}

    @property
    def fixed_batch(self):
        return int(self.params["ishape_normal"][0])

    # -- data layout -------------------------------------------------------------------------------
    def to_integer(self, x):
        """Float samples (N, C, H, W) -> the accelerator's integer input in its normal shape."""
        scaled = np.round(np.asarray(x, np.float32) * float(self.params.get("input_scale", 1.0)))
        if self.params.get("input_layout", "NHWC") == "NHWC" and scaled.ndim == 4:
            scaled = scaled.transpose(0, 2, 3, 1)
        return scaled.reshape(self.params["ishape_normal"])

    def pack_input(self, x):
        folded = self.to_integer(x).reshape(self.params["ishape_folded"])
        return pack_innermost(folded, self.idt[0], self.idt[1])

    def unpack_output(self, packed):
        folded_shape = self.params["oshape_folded"]
        values = unpack_innermost(packed, self.odt[0], folded_shape[-1], self.odt[1])
        return values.reshape(self.params["oshape_normal"])

    # -- the accelerator ----------------------------------------------------------------------------
    def _buffer(self, name, shape):
        if name not in self._buffers:
            self._buffers[name] = self._allocate(shape=tuple(shape), dtype=np.uint8)
        return self._buffers[name]

    def _execute(self, ibuf, obuf):
        batch = self.fixed_batch
        for dma, buf in ((self.odma, obuf), (self.idma, ibuf)):  # output first, as FINN's driver does
            dma.write(0x10, buf.device_address & 0xFFFFFFFF)
            dma.write(0x14, (buf.device_address >> 32) & 0xFFFFFFFF)
            dma.write(0x1C, batch)
            dma.write(0x00, 1)
        deadline = time.monotonic() + self.timeout_s
        while self.odma.read(0x00) & 0x2 == 0:
            if time.monotonic() > deadline:
                raise RuntimeError("the accelerator did not finish within {} s (timeout_s): is the bitfile "
                                   "the one these driver settings describe?".format(self.timeout_s))

    def _prepared(self, x):
        packed = self.pack_input(x)
        ibuf = self._buffer("in", packed.shape)
        obuf_shape = tuple(self.params["oshape_folded"][:-1]) + (
            -(-self.params["oshape_folded"][-1] * self.odt[0] // 8),)
        obuf = self._buffer("out", obuf_shape)
        np.copyto(ibuf, packed)
        ibuf.flush()
        return ibuf, obuf

    def predict(self, x):
        ibuf, obuf = self._prepared(x)
        self._execute(ibuf, obuf)
        obuf.invalidate()
        out = self.unpack_output(np.array(obuf))
        return out.reshape(out.shape[0], -1)

    def runner(self, x):
        return self._execute, self._prepared(x)

    def info(self):
        return {"runtime": "finn", "bitfile": self.params.get("bitfile"), "idt": self.params["idt"],
                "odt": self.params["odt"], "fclk_mhz": self.params.get("fclk_mhz")}
