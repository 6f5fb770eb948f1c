"""What the device is, read on the device and never assumed by the host. Board-side, Python 3.8."""

from __future__ import annotations

import os
import platform
import resource
import sys

RUNTIMES = ("onnxruntime", "torch", "numpy", "ai-edge-litert", "tflite-runtime", "tensorrt")


def _read(path):
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def runtime_versions() -> dict:
    versions = {}
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:
        return versions
    for name in RUNTIMES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            pass
    return versions


def device_facts() -> dict:
    fields = {}
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    # x86 says "model name"; Arm boards say "Model" (Raspberry Pi) or "Hardware"
    cpu_model = next((fields[k] for k in ("model name", "hardware", "cpu model") if fields.get(k)), None)
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    cpufreq = "/sys/devices/system/cpu/cpu0/cpufreq/"
    return {
        "hostname": platform.node(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu_model or platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "cpu_count_usable": usable,
        "governor": _read(cpufreq + "scaling_governor"),
        "cpu_max_khz": _read(cpufreq + "cpuinfo_max_freq"),
        "loadavg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "runtimes": runtime_versions(),
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process. Linux's VmHWM belongs to this program alone; ru_maxrss
    would also count the parent's memory at fork time (it survives exec)."""
    for line in (_read("/proc/self/status") or "").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 1024.0 / 1024.0
