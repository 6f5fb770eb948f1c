"""An FPGA accelerator the user built (FINN: a bitfile with its .hwh, and the driver settings FINN's
generated driver.py holds), tied to the workload's low-bit QAT variant it was compiled from.

The artifact carries the bitfile for the `finn` backend on a PYNQ board, and the QAT variant's QONNX
graph for `qonnx-reference` anywhere else: the accuracy the board must reproduce.

    [[variants]]
    name = "finn-w4a4"
    family = "fpga"
    reference = "w4a4"                     # a qat variant of this workload
    bitfile = "accel/finn-w4a4.bit"        # relative to this file; accel/finn-w4a4.hwh beside it
    idt = "UINT8"                          # FINN datatypes of input and output
    odt = "UINT8"
    ishape_normal = [1, 28, 28, 1]
    ishape_folded = [1, 28, 28, 1, 1]
    oshape_normal = [1, 1]
    oshape_folded = [1, 1, 1]
    input_scale = 255.0                    # float input -> integer input domain
    input_layout = "NHWC"                  # NHWC (FINN's) | as-is
    fclk_mhz = 100.0

A DPU overlay instead (backend `dpu`): `bitfile = "dpu.bit"` and `xmodel = "model.xmodel"` (compiled by
Vitis AI from the same network), without the FINN keys.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from harness.core.config import Table
from harness.core.errors import ConfigError
from harness.core.finn_datatypes import parse_datatype
from harness.core.jobs import Artifact

SHAPES = ("ishape_normal", "ishape_folded", "oshape_normal", "oshape_folded")


def _file(table: Table, key: str) -> str:
    path = Path(table.path).parent / table.take(key)
    if not path.is_file():
        raise ConfigError(f"{table.where(key)}: {path} not found")
    return str(path)


def parse(table: Table) -> dict:
    params = {"reference": table.take("reference"), "bitfile": _file(table, "bitfile")}
    if table.has("xmodel"):  # a DPU overlay and its compiled model
        params["xmodel"] = _file(table, "xmodel")
        table.finish()
        return params
    for key in ("idt", "odt"):
        params[key] = table.take(key)
        try:
            parse_datatype(params[key])
        except ValueError as exc:
            raise ConfigError(f"{table.where(key)}: {exc}") from None
    for key in SHAPES:
        shape = table.take(key, list)
        if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
            raise ConfigError(f"{table.where(key)} = {shape!r}: a list of positive integers")
        params[key] = shape
    params.update(input_scale=table.take("input_scale", float, 1.0),
                  input_layout=table.take("input_layout", str, "NHWC", choices=("NHWC", "as-is")),
                  fclk_mhz=table.take("fclk_mhz", float, None))
    table.finish()
    return params


def precision(params: dict) -> str:
    return "fpga"


def build(base, variant) -> Artifact:
    from workloads.variants import FAMILIES

    params = variant.params
    qat = next((v for v in base.workload.variants if v.name == params["reference"]), None)
    if qat is None or qat.family != "qat":
        raise ConfigError(f"{base.workload.file}: variant '{variant.name}' reference = "
                          f"{params['reference']!r}: must name a qat variant of this workload")
    reference = FAMILIES["qat"].build(base, qat)
    bitfile = Path(params["bitfile"])
    files = {"bitfile": str(bitfile), "qonnx": reference.files["qonnx"]}
    if "xmodel" in params:
        files["xmodel"] = params["xmodel"]
    if bitfile.with_suffix(".hwh").is_file():
        files["hwh"] = str(bitfile.with_suffix(".hwh"))
    return replace(reference, variant=variant.name, family="fpga", precision=qat.precision, files=files,
                   model_bytes=bitfile.stat().st_size, variant_params=dict(params), backend_options={},
                   host_accuracy=reference.host_accuracy)
