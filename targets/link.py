"""The link between a split job's device and server, and the device's emulated CPU speed, on one machine.

`NamespaceLink` puts the device and the server agents in two network namespaces joined by a veth pair whose
both ends are shaped by `tbf` (this kind of kernel has no netem, so the one-way delay is added by the data
plane, not here). `LoopbackLink` is the unshaped fallback (`--link none`), labelled so. `CpuQuota` is a cgroup
whose CPU bandwidth makes the device agent as slow as a fraction of one core. All three are context managers
that undo what they made, also on Ctrl-C; `remove_stale` clears what a killed run left behind.

Host side, root only for namespaces and cgroups. Every command is an argv list: no user text in a shell string.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from harness.core.errors import ConfigError, suggest

PREFIX = "eb-"  # every namespace and cgroup made here; remove_stale only ever touches names with it
LINK_KEYS = ("rate_mbit", "delay_ms")
MIN_RATE_MBIT = 0.001  # 1 kbit/s: slower, one full frame takes over 10 s
MAX_RATE_MBIT = 100_000.0
MAX_DELAY_MS = 10_000.0
LINK_KEYS_HELP = ("rate_mbit (Mbit/s, 0.001 to 100000; leave it out for an unshaped link), "
                  "delay_ms (one-way delay, 0 to 10000 ms)")

SUBNET_BASE = (10 << 24) | (231 << 16)  # 10.231.0.0/16, cut into 16384 /30s, one per link
SUBNET_COUNT = 1 << 14
DEVICE_VETH = "eb-dev0"
SERVER_VETH = "eb-srv0"
# The token bucket holds 0.25 ms of traffic, and at least one full frame (1514 B: MTU 1500 + Ethernet header;
# tbf drops a packet bigger than its bucket) plus room for tc rounding the size to its time units. tc-tbf(8)
# asks for burst >= rate/HZ so that a timer tick's worth of tokens is never thrown away, but tbf refills from
# an hrtimer (the qdisc watchdog), not the tick: measured on a HZ=250 kernel, bulk TCP gets 95-96% of 1, 10
# and 100 Mbit/s with a 0.25 ms bucket (the rest is TCP/IP/Ethernet headers). A bigger bucket is worse for
# split jobs: payloads are tens of kB sent after an idle gap, and everything in a full bucket crosses at veth
# speed (a 75 kB payload crossed 100 Mbit/s 1 ms early with a 1 ms bucket, 100 kB 3.4 ms early with 4 ms).
BURST_S = 0.00025
MIN_BURST_BYTES = 1600
# The queue behind the bucket: 100 ms of traffic. Enough that a TCP flow keeps the link busy at every rate,
# bounded so that a backlog adds at most 100 ms to what the data plane measures.
QUEUE_LATENCY = "100ms"
COMMAND_TIMEOUT_S = 30
CARRIER_TIMEOUT_S = 5

# CFS lets a group run `quota` per `period` at full speed, then stalls it: an inference shorter than the
# quota is not slowed at all, only throttled now and then. So the period is as short as the kernel allows
# (the quota may not go under 1 ms): a quarter of a core is 1 ms in every 4 ms, and work longer than the
# period is slowed about evenly. Work shorter than it still runs at full speed: say so where it matters.
MIN_CPU_QUOTA_US = 1000
MIN_CPU_SHARE = 0.01  # a 1 ms quota in the longest period, 100 ms
CGROUP_V1_DIRS = (Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup/cpu,cpuacct"))
CGROUP_V2_ROOT = Path("/sys/fs/cgroup")
# Moves the shell into the cgroup (procs file as $1), then becomes the wrapped command: constant text,
# everything a user could influence goes in as arguments.
INTO_CGROUP = 'echo $$ > "$1" && shift && exec "$@"'

_NAME = re.compile(r"^eb-[a-z0-9]+-(\d+)-\d+-(?:dev|srv|cpu)$")
_sequence = itertools.count()  # several links or quotas in one process get distinct names


def _number(value: float) -> str:
    """The shortest text that reads back as `value` ('10', '0.5'): file-name safe and unique per value."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True)
class LinkSetting:
    """One link setting of a sweep: a rate (None = unshaped) and a one-way delay the data plane adds."""

    rate_mbit: float | None
    delay_ms: float = 0.0

    def __post_init__(self):
        rate, delay = _checked(self.rate_mbit, self.delay_ms, "link setting")
        object.__setattr__(self, "rate_mbit", rate)
        object.__setattr__(self, "delay_ms", delay)

    @property
    def name(self) -> str:
        rate = "unshaped" if self.rate_mbit is None else f"{_number(self.rate_mbit)}mbit"
        return f"{rate}-{_number(self.delay_ms)}ms"


def _checked(rate_mbit, delay_ms, where: str) -> tuple[float | None, float]:
    rate = None if rate_mbit is None else _in_range(
        "rate_mbit", rate_mbit, MIN_RATE_MBIT, MAX_RATE_MBIT, where, "; leave rate_mbit out for an unshaped link")
    return rate, _in_range("delay_ms", delay_ms, 0.0, MAX_DELAY_MS, where, "")


def _in_range(key: str, value, low: float, high: float, where: str, hint: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ConfigError(f"{where}: {key} = {value!r} is not accepted; a number from {_number(low)} to "
                          f"{_number(high)}{hint}")
    return float(value)


def parse_links(tables, where: str = "") -> list[LinkSetting]:
    """The settings of a suite's `[[link]]` tables, each checked, none listed twice.

    `tables`: the array as read from TOML (dicts; `where` names the file), or harness.core.config Tables
    (each names its file).
    """
    if not isinstance(tables, list):
        raise ConfigError(f"{where}: 'link' must be an array of tables ([[link]]) with keys {LINK_KEYS_HELP}")
    settings: dict[LinkSetting, int] = {}
    for number, table in enumerate(tables, 1):
        place = f"{getattr(table, 'path', where)}: [[link]] #{number}"
        table = getattr(table, "data", table)
        if not isinstance(table, dict):
            raise ConfigError(f"{place}: must be a table with keys {LINK_KEYS_HELP}")
        for key in table:
            if key not in LINK_KEYS:
                raise ConfigError(f"{place}: unknown key '{key}'{suggest(key, LINK_KEYS)}; accepted: {LINK_KEYS_HELP}")
        setting = LinkSetting(*_checked(table.get("rate_mbit"), table.get("delay_ms", 0.0), place))
        if setting in settings:
            raise ConfigError(f"{place}: the same link as [[link]] #{settings[setting]} ({setting.name}); "
                              "list each setting once")
        settings[setting] = number
    return list(settings)


def _delay_text(delay_ms: float) -> str:
    return f"{_number(delay_ms)} ms each way added by the data plane" if delay_ms else "no added delay"


def _base_name(tag: str) -> str:
    """'eb-<tag>-<pid>-<n>': the pid tells remove_stale whether the owner still runs."""
    clean = re.sub(r"[^a-z0-9]", "", str(tag).lower())[:16] or "link"
    return f"{PREFIX}{clean}-{os.getpid()}-{next(_sequence)}"


def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in text.strip().splitlines() if line.strip()) or "(no message)"


def _run(argv: list[str]) -> str:
    """Runs one `ip`/`tc` command; a failure is a ConfigError quoting the command and what it said."""
    try:
        # Own session: a Ctrl-C reaches only us, so a cleanup command is not killed half way.
        done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, start_new_session=True)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ConfigError(f"split link: `{shlex.join(argv)}` failed: {error}") from None
    if done.returncode != 0:
        raise ConfigError(f"split link: `{shlex.join(argv)}` failed (exit {done.returncode}): "
                          f"{_one_line(done.stderr or done.stdout)}")
    return done.stdout


def _owner_gone(name: str) -> bool:
    match = _NAME.match(name)
    if not match:
        return False
    try:
        os.kill(int(match.group(1)), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        pass
    return False


def _namespaces() -> list[str]:
    if not shutil.which("ip"):
        return []
    return [line.split()[0] for line in _run(["ip", "netns", "list"]).splitlines() if line.strip()]


class NamespaceLink:
    """Device and server network namespaces joined by a veth pair, tbf-shaped on both ends when a rate is set.

    `device_wrapper` / `server_wrapper` go before an agent's command; the server binds `server_address`.
    """

    def __init__(self, setting: LinkSetting, tag: str = "link"):
        self.setting = setting
        base = _base_name(tag)
        self.device_netns, self.server_netns = f"{base}-dev", f"{base}-srv"
        # Tag-derived so two links are told apart in `ip addr`; each pair lives in its own namespaces, so even
        # two links with the same /30 would not collide.
        first = SUBNET_BASE + 4 * (zlib.crc32(base.encode()) % SUBNET_COUNT)
        self.device_address = _dotted(first + 1)
        self.server_address = _dotted(first + 2)
        self.device_wrapper = ["ip", "netns", "exec", self.device_netns]
        self.server_wrapper = ["ip", "netns", "exec", self.server_netns]
        rate = setting.rate_mbit
        self.shaping = (f"tbf {_number(rate)} Mbit/s each direction (kernel)" if rate is not None
                        else "unshaped veth") + f"; {_delay_text(setting.delay_ms)}"
        self._made: list[str] = []

    @property
    def name(self) -> str:
        return self.setting.name

    @property
    def rate_mbit(self) -> float | None:
        return self.setting.rate_mbit

    @property
    def delay_ms(self) -> float:
        return self.setting.delay_ms

    def __enter__(self) -> NamespaceLink:
        require_namespaces(tc=self.setting.rate_mbit is not None)
        remove_stale()
        try:
            self._make()
        except BaseException:  # Ctrl-C or a failing command half way: take down what exists, then report
            self._teardown(raise_errors=False)
            raise
        return self

    def __exit__(self, kind, error, trace) -> None:
        self._teardown(raise_errors=kind is None)

    def _make(self) -> None:
        for netns in (self.device_netns, self.server_netns):
            _run(["ip", "netns", "add", netns])
            self._made.append(netns)
        # Both ends are created inside their namespaces: no name is ever taken in the host's namespace. Distinct
        # ifindexes: with both ends at 2 (the first free one in a new namespace) the kernel treats the carrier
        # change as non-urgent and the link stays NO-CARRIER for ~1 s, dropping the first SYN.
        _run(["ip", "link", "add", DEVICE_VETH, "index", "2", "netns", self.device_netns, "type", "veth",
              "peer", "name", SERVER_VETH, "index", "3", "netns", self.server_netns])
        for netns, veth, address in ((self.device_netns, DEVICE_VETH, self.device_address),
                                     (self.server_netns, SERVER_VETH, self.server_address)):
            _run(["ip", "-n", netns, "addr", "add", f"{address}/30", "dev", veth])
            _run(["ip", "-n", netns, "link", "set", "lo", "up"])
            _run(["ip", "-n", netns, "link", "set", veth, "up"])
            if self.setting.rate_mbit is not None:
                rate_bit = round(self.setting.rate_mbit * 1e6)
                burst_bytes = max(math.ceil(rate_bit / 8 * BURST_S), MIN_BURST_BYTES)
                _run(["tc", "-n", netns, "qdisc", "add", "dev", veth, "root", "tbf", "rate", f"{rate_bit}bit",
                      "burst", str(burst_bytes), "latency", QUEUE_LATENCY])
        for netns, veth in ((self.device_netns, DEVICE_VETH), (self.server_netns, SERVER_VETH)):
            _wait_for_carrier(netns, veth)

    def _teardown(self, raise_errors: bool) -> None:
        # Deleting a namespace deletes its veth end, and with it the pair. A Ctrl-C here does not stop the
        # cleanup half way; it is raised again once everything is gone.
        problems, interrupted = [], None
        while self._made:
            netns = self._made.pop()
            try:
                _run(["ip", "netns", "delete", netns])
            except ConfigError as error:
                problems.append(str(error))
            except KeyboardInterrupt as interrupt:
                interrupted = interrupt
                self._made.append(netns)
        if interrupted is not None:
            raise interrupted
        if problems and raise_errors:
            raise ConfigError(problems[0])


class LoopbackLink:
    """No namespaces and no shaping: both agents on 127.0.0.1 (`--link none`); the data plane's delay still applies."""

    def __init__(self, setting: LinkSetting | None = None):
        self.setting = setting if setting is not None else LinkSetting(None, 0.0)
        self.device_wrapper: list[str] = []
        self.server_wrapper: list[str] = []
        self.device_address = self.server_address = "127.0.0.1"
        ignored = (f" ({_number(self.setting.rate_mbit)} Mbit/s not applied)"
                   if self.setting.rate_mbit is not None else "")
        self.shaping = f"none: loopback, unshaped{ignored}; {_delay_text(self.setting.delay_ms)}"

    @property
    def name(self) -> str:
        return "loopback" + (f"-{_number(self.delay_ms)}ms" if self.delay_ms else "")

    @property
    def rate_mbit(self) -> None:
        return None  # nothing shapes loopback, whatever the setting asked

    @property
    def delay_ms(self) -> float:
        return self.setting.delay_ms

    def __enter__(self) -> LoopbackLink:
        return self

    def __exit__(self, kind, error, trace) -> None:
        return None


def _wait_for_carrier(netns: str, veth: str) -> None:
    """Returns once the veth end passes traffic (no agent's first packet lost), or says it never did."""
    deadline = time.monotonic() + CARRIER_TIMEOUT_S
    while True:
        shown = _run(["ip", "-n", netns, "-o", "link", "show", "dev", veth])
        if "LOWER_UP" in shown and "NO-CARRIER" not in shown:
            return
        if time.monotonic() > deadline:
            raise ConfigError(f"split link: {veth} in namespace {netns} has no carrier after "
                              f"{CARRIER_TIMEOUT_S} s: {_one_line(shown)}")
        time.sleep(0.01)


def _dotted(address: int) -> str:
    return ".".join(str((address >> shift) & 255) for shift in (24, 16, 8, 0))


def require_namespaces(tc: bool) -> None:
    missing = [tool for tool in ("ip", "tc")[:2 if tc else 1] if not shutil.which(tool)]
    if os.geteuid() != 0:
        reason = f"this process runs as uid {os.geteuid()}"
    elif missing:
        reason = f"`{missing[0]}` (iproute2) is not installed"
    else:
        return
    raise ConfigError(f"split link: network namespaces need root and iproute2 ({reason}); run as root, or use "
                      "`--link none` instead (loopback, unshaped, labelled so in every row)")


def cpu_controller() -> tuple[str, Path] | None:
    """('v1', the cpu hierarchy) or ('v2', the cgroup2 root) where the cpu controller is available, else None."""
    for directory in CGROUP_V1_DIRS:
        if (directory / "cpu.cfs_quota_us").exists():
            return "v1", directory
    try:
        if "cpu" in (CGROUP_V2_ROOT / "cgroup.controllers").read_text().split():
            return "v2", CGROUP_V2_ROOT
    except OSError:
        pass
    return None


class CpuQuota:
    """A cgroup that lets what runs in it use `share` of one core (CFS bandwidth), e.g. 0.25 for a slow device.

    `wrapper` goes before a command (after a namespace's `ip netns exec`) and moves it into the group.
    """

    def __init__(self, share: float, tag: str = "device"):
        cores = os.cpu_count() or 1
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not math.isfinite(share) \
                or not MIN_CPU_SHARE <= share <= cores:
            raise ConfigError(f"device_cpu_quota = {share!r} is not accepted; a share of one core from "
                              f"{MIN_CPU_SHARE} to {cores} (this machine's cores), e.g. 0.25")
        self.share = float(share)
        self.name = f"{_base_name(tag)}-cpu"
        self.period_us = max(MIN_CPU_QUOTA_US, round(MIN_CPU_QUOTA_US / self.share))
        self.quota_us = round(self.share * self.period_us)
        self.path: Path | None = None
        self.wrapper: list[str] = []
        self.label = ""

    @property
    def procs_path(self) -> Path:
        return self.path / "cgroup.procs"

    def check(self) -> tuple[str, Path]:
        """(cgroup version, root) where this quota can be set, or one ConfigError line saying why not
        (called before anything is built, and again on entering)."""
        found = cpu_controller()
        if os.geteuid() != 0 or found is None:
            reason = (f"this process runs as uid {os.geteuid()}" if os.geteuid() != 0
                      else "no cgroup cpu controller is mounted (neither v1 cpu.cfs_quota_us nor v2 cpu.max)")
            raise ConfigError(f"device_cpu_quota = {_number(self.share)} needs a cgroup with the cpu controller "
                              f"and root ({reason}); run as root on a machine with one, or leave device_cpu_quota "
                              "out (the device then runs at the server's full speed)")
        return found

    def __enter__(self) -> CpuQuota:
        version, root = self.check()
        remove_stale()
        try:
            if version == "v2":
                _enable_cpu_controller(root)
            self.path = root / self.name
            self.path.mkdir()
            if version == "v1":
                (self.path / "cpu.cfs_period_us").write_text(str(self.period_us))
                (self.path / "cpu.cfs_quota_us").write_text(str(self.quota_us))
            else:
                (self.path / "cpu.max").write_text(f"{self.quota_us} {self.period_us}")
        except OSError as error:
            self._remove(raise_errors=False)
            raise ConfigError(f"device_cpu_quota: cannot set up cgroup {root / self.name} ({error}); "
                              "leave device_cpu_quota out to run the device at full speed") from None
        except BaseException:
            self._remove(raise_errors=False)
            raise
        self.wrapper = ["sh", "-c", INTO_CGROUP, "sh", str(self.procs_path)]
        kind = "cgroup v1 cfs quota" if version == "v1" else "cgroup v2 cpu.max"
        self.label = (f"device emulated at {_number(self.share)} of a CPU core ({kind}: "
                      f"{self.quota_us / 1000:g} ms per {self.period_us / 1000:g} ms)")
        return self

    def __exit__(self, kind, error, trace) -> None:
        self._remove(raise_errors=kind is None)

    def _remove(self, raise_errors: bool) -> None:
        if self.path is None:
            return
        try:
            _remove_cgroup(self.path)
        except OSError as error:
            if raise_errors:
                raise ConfigError(f"device_cpu_quota: cannot remove cgroup {self.path} ({error})") from None
        self.path = None


def _enable_cpu_controller(root: Path) -> None:
    """cgroup v2 hands a controller to children only when the parent lists it in cgroup.subtree_control."""
    control = root / "cgroup.subtree_control"
    if "cpu" not in control.read_text().split():
        control.write_text("+cpu")


def _remove_cgroup(path: Path) -> None:
    """Kills what still runs in the group (an agent left behind), waits for it to leave, removes the group."""
    deadline = time.monotonic() + 5.0
    while True:
        try:
            pids = [int(pid) for pid in (path / "cgroup.procs").read_text().split()]
        except FileNotFoundError:
            return
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:  # EBUSY while a killed process is still being reaped
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def remove_stale() -> list[str]:
    """Removes namespaces and cgroups named by this module whose owning process is gone; returns their names."""
    if os.geteuid() != 0:
        return []
    removed = []
    for netns in _namespaces():
        if _owner_gone(netns):
            try:
                _run(["ip", "netns", "delete", netns])
                removed.append(netns)
            except ConfigError:
                pass  # another run's cleanup got there first
    found = cpu_controller()
    if found is not None:
        for path in found[1].glob(f"{PREFIX}*"):
            if path.is_dir() and _owner_gone(path.name):
                try:
                    _remove_cgroup(path)
                    removed.append(path.name)
                except OSError:
                    pass
    return removed
