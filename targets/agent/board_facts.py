"""What a board is and what state it is in, read on the board by the agent (stdlib only, Python 3.8).

Every file and command goes through `BoardIO`, the one seam tests replace with recorded outputs and
fake sysfs trees. A missing file or tool is a missing fact (None), never an error: a Pi has no nvpmodel.
"""

import glob
import os
import re
import shutil
import subprocess

# vcgencmd get_throttled bits (Raspberry Pi documentation)
THROTTLE_BITS = {0: "under-voltage now", 1: "arm frequency capped now", 2: "throttled now",
                 3: "soft temperature limit now", 16: "under-voltage occurred",
                 17: "arm frequency capping occurred", 18: "throttling occurred",
                 19: "soft temperature limit occurred"}


class BoardIO:
    def __init__(self, root="/", timeout_s=5.0):
        self.root = root
        self.timeout_s = timeout_s

    def path(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def read(self, path):
        try:
            with open(self.path(path), "rb") as fh:
                return fh.read().decode(errors="replace").replace("\x00", "").strip()
        except OSError:
            return None

    def glob(self, pattern):
        """Matching paths, as seen on the board (without the root)."""
        base = len(self.root.rstrip("/"))
        return sorted("/" + p[base:].lstrip("/") for p in glob.glob(self.path(pattern)))

    def command(self, argv):
        """The command's stdout, or None when the tool is missing or fails."""
        if shutil.which(argv[0]) is None:
            return None
        try:
            done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  timeout=self.timeout_s)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.decode(errors="replace").strip() if done.returncode == 0 else None


def _int(text):
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def cpu_facts(io):
    """Governor and frequencies of every CPU, and every thermal zone's temperature."""
    cpus = {}
    for folder in io.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq"):
        cpus[folder.split("/")[-2]] = {"governor": io.read(folder + "/scaling_governor"),
                                       "cur_khz": _int(io.read(folder + "/scaling_cur_freq")),
                                       "max_khz": _int(io.read(folder + "/scaling_max_freq"))}
    temps = {}
    for zone in io.glob("/sys/class/thermal/thermal_zone*"):
        millideg = _int(io.read(zone + "/temp"))
        if millideg is not None:
            temps[io.read(zone + "/type") or os.path.basename(zone)] = millideg / 1000.0
    return {"cpufreq": cpus, "temperatures_c": temps, "model": io.read("/proc/device-tree/model")}


def parse_throttled(text):
    """'throttled=0x50005' -> the value and the names of the bits set."""
    match = re.search(r"throttled=(0x[0-9a-fA-F]+)", text or "")
    if not match:
        return None
    value = int(match.group(1), 16)
    return {"value": match.group(1), "flags": [name for bit, name in sorted(THROTTLE_BITS.items())
                                                if value >> bit & 1]}


def rpi_facts(io):
    facts = cpu_facts(io)
    facts["throttled"] = parse_throttled(io.command(["vcgencmd", "get_throttled"]))
    temp = re.search(r"temp=([\d.]+)", io.command(["vcgencmd", "measure_temp"]) or "")
    facts["soc_temp_c"] = float(temp.group(1)) if temp else None
    clock = re.search(r"=(\d+)", io.command(["vcgencmd", "measure_clock", "arm"]) or "")
    facts["arm_hz"] = int(clock.group(1)) if clock else None
    return facts


def parse_nvpmodel(text):
    """`nvpmodel -q`: 'NV Power Mode: MAXN' then the mode's number."""
    name = re.search(r"NV Power Mode:\s*(\S+)", text or "")
    number = re.search(r"^\s*(\d+)\s*$", text or "", re.MULTILINE)
    if not name:
        return None
    return {"name": name.group(1), "id": int(number.group(1)) if number else None}


def parse_l4t_release(text):
    """/etc/nv_tegra_release: '# R35 (release), REVISION: 4.1, GCID: ...' -> '35.4.1'."""
    match = re.search(r"R(\d+) \(release\), REVISION: ([\d.]+)", text or "")
    return f"{match.group(1)}.{match.group(2)}" if match else None


def jetson_facts(io):
    facts = cpu_facts(io)
    facts["l4t"] = parse_l4t_release(io.read("/etc/nv_tegra_release"))
    facts["nvpmodel"] = parse_nvpmodel(io.command(["nvpmodel", "-q"]))
    gpu = {}
    for folder in io.glob("/sys/class/devfreq/*"):
        name = os.path.basename(folder)
        if "gpu" in name or "gv11b" in name or "ga10b" in name or "gp10b" in name:
            gpu[name] = {"cur_hz": _int(io.read(folder + "/cur_freq")),
                         "max_hz": _int(io.read(folder + "/max_freq"))}
    facts["gpu_devfreq"] = gpu
    return facts


def pynq_facts(io):
    facts = cpu_facts(io)
    facts["board"] = os.environ.get("BOARD") or io.read("/etc/xilinx/board")
    facts["pynq_version"] = None
    try:
        from importlib.metadata import version
        facts["pynq_version"] = version("pynq")
    except Exception:  # not a PYNQ image: the fact is missing, not an error
        pass
    return facts


BOARDS = {"rpi": rpi_facts, "jetson": jetson_facts, "pynq": pynq_facts, "generic": cpu_facts}


def board_facts(kind, io=None):
    return BOARDS.get(kind, cpu_facts)(io or BoardIO())
