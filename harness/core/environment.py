"""What a run records about where and how it ran: host, git commit, versions, seeds, resolved config."""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import harness

# the source checkout (or the installed tree): git commit, the local agent's PYTHONPATH, the cache's default
PROJECT_ROOT = Path(__file__).resolve().parents[2]
HOST_PACKAGES = ("torch", "onnx", "onnxruntime", "numpy", "onnx-tool", "scikit-learn", "mlxtend")


def git_commit() -> dict:
    def git(*args):
        return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": dirty if commit else None}


def host_environment() -> dict:
    versions = {}
    for name in HOST_PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            pass
    return {
        "edgebench": harness.__version__,
        "python": sys.version.split()[0],
        "os": platform.platform(),
        "hostname": platform.node(),
        "packages": versions,
        "git": git_commit(),
    }


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
