"""The agent as one file a board can run: a zipapp of the board-side modules, named by its content hash.

Deterministic (sorted entries, fixed timestamps): the same code gives the same bytes and the same name,
so a board that already has it is not sent it again.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Everything the agent may import on a board: the standard library, numpy and the runtime it drives.
AGENT_FILES = (
    "harness/__init__.py", "harness/protocol.py", "harness/errors.py",
    "targets/__init__.py", "targets/agent.py", "targets/staged.py", "targets/board_facts.py",
    "targets/backends/__init__.py", "targets/backends/base.py", "targets/backends/ort_backend.py",
    "targets/backends/litert_backend.py", "targets/backends/torch_backend.py",
    "targets/backends/finn_backend.py", "targets/backends/qonnx_backend.py",
    "targets/backends/tensorrt_backend.py", "targets/backends/dpu_backend.py",
    "targets/fpga/__init__.py", "targets/fpga/packing.py",
    "targets/smoke/__init__.py", "targets/smoke/add.onnx", "targets/smoke/add.tflite",
    "workloads/__init__.py", "workloads/models.py",   # the torch backend rebuilds reference models
    "power/__init__.py", "power/rails.py", "power/tegrastats.py", "power/ina3221.py", "power/rpi_pmic.py",
    "power/pynq_pmbus.py",
    "power/polling.py", "power/hwmon.py", "power/rapl.py", "power/source.py", "power/trace.py",
    "power/monitor.py", "power/registry.py", "power/energy.py",   # board-side sources run in the agent
)
MAIN = "import sys\nfrom targets.agent import main\nsys.exit(main())\n"
FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def build_bundle() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        entries = [(name, (ROOT / name).read_bytes()) for name in AGENT_FILES]
        entries.append(("__main__.py", MAIN.encode()))
        for name, data in sorted(entries):
            info = zipfile.ZipInfo(name, FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def bundle_name(data: bytes) -> str:
    return f"edgebench-agent-{hashlib.sha256(data).hexdigest()[:16]}.pyz"
