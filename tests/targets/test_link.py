"""The split link on one machine: real namespaces, a real tbf-shaped veth and real TCP; a real cgroup CPU quota."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys

import pytest

from harness.core.errors import ConfigError
from targets.link import (
    CpuQuota,
    LinkSetting,
    LoopbackLink,
    NamespaceLink,
    cpu_controller,
    parse_links,
    remove_stale,
)

IS_ROOT = os.geteuid() == 0
needs_namespaces = pytest.mark.skipif(
    not IS_ROOT or not shutil.which("ip") or not shutil.which("tc"),
    reason="network namespaces and tc need root and iproute2 (ip, tc)")
needs_cgroup = pytest.mark.skipif(not IS_ROOT or cpu_controller() is None,
                                  reason="a CPU quota needs root and a cgroup cpu controller (v1 or v2)")

# One small program for both ends of a measurement, run through a link's wrappers.
#   receive HOST: listens, prints its port, counts what arrives; prints bytes and seconds after the first chunk
#   send HOST PORT N: sends N bytes
#   echo HOST: listens, prints its port, answers every length-prefixed message with one byte
#   ask HOST PORT N TIMES: sends N-byte messages after 50 ms of silence each; prints each round trip in seconds
PEER = r"""
import socket, sys, time
mode, host = sys.argv[1], sys.argv[2]
if mode in ("receive", "echo"):
    server = socket.socket()
    server.bind((host, 0))
    server.listen(1)
    server.settimeout(30)
    print(server.getsockname()[1], flush=True)
    conn, _ = server.accept()
    conn.settimeout(60)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
if mode == "receive":
    received, first = 0, None
    while True:
        chunk = conn.recv(1 << 20)
        if not chunk:
            break
        if first is None:
            first = time.perf_counter()
        else:
            received += len(chunk)
    print(received, time.perf_counter() - first)
elif mode == "send":
    conn = socket.create_connection((host, int(sys.argv[3])), timeout=60)
    conn.sendall(bytes(int(sys.argv[4])))
    conn.close()
elif mode == "echo":
    def exactly(n):
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                sys.exit(0)
            data += chunk
        return data
    while True:
        exactly(int.from_bytes(exactly(8), "big"))
        conn.sendall(b"k")
elif mode == "ask":
    conn = socket.create_connection((host, int(sys.argv[3])), timeout=60)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    size = int(sys.argv[4])
    message = size.to_bytes(8, "big") + bytes(size)
    for _ in range(int(sys.argv[5])):
        time.sleep(0.05)
        start = time.perf_counter()
        conn.sendall(message)
        conn.recv(1)
        print(time.perf_counter() - start)
"""


def _listen(wrapper: list[str], mode: str, host: str) -> tuple[subprocess.Popen, int]:
    listener = subprocess.Popen([*wrapper, sys.executable, "-c", PEER, mode, host], stdout=subprocess.PIPE, text=True)
    return listener, int(listener.stdout.readline())


def measured_mbit(sender: list[str], receiver: list[str], host: str, n_bytes: int) -> float:
    """TCP goodput from `sender`'s namespace to a receiver in `receiver`'s, measured at the receiver."""
    listener, port = _listen(receiver, "receive", host)
    try:
        subprocess.run([*sender, sys.executable, "-c", PEER, "send", host, str(port), str(n_bytes)],
                       check=True, timeout=120)
        received, seconds = listener.communicate(timeout=60)[0].split()
    finally:
        listener.kill()
        listener.wait()
    return 8 * int(received) / float(seconds) / 1e6


def round_trips_s(link, n_bytes: int, times: int) -> list[float]:
    """Seconds from sending an n-byte message from the device to the server's one-byte answer, each time."""
    listener, port = _listen(link.server_wrapper, "echo", link.server_address)
    try:
        asked = subprocess.run([*link.device_wrapper, sys.executable, "-c", PEER, "ask", link.server_address,
                                str(port), str(n_bytes), str(times)], check=True, timeout=120,
                               capture_output=True, text=True)
    finally:
        listener.kill()
        listener.wait()
    return [float(line) for line in asked.stdout.split()]


def namespaces() -> set[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in listed.splitlines() if line.strip()}


# --- shaping --------------------------------------------------------------------------------------------------

@needs_namespaces
@pytest.mark.parametrize("rate_mbit", [1, 10, 100])
def test_tbf_shapes_the_device_to_server_direction_to_the_set_rate(rate_mbit):
    with NamespaceLink(LinkSetting(rate_mbit, 5.0), tag="test") as link:
        n_bytes = int(rate_mbit * 1e6 / 8 * 1.5)  # ~1.5 s on the wire: the bucket's first burst is negligible
        got = measured_mbit(link.device_wrapper, link.server_wrapper, link.server_address, n_bytes)
    print(f"\n{link.name}: {n_bytes} B device -> server at {got:.3f} Mbit/s goodput ({got / rate_mbit:.1%} of nominal)")
    # Goodput sits ~4% under the nominal rate: tbf counts the TCP/IP and Ethernet headers too.
    assert rate_mbit * 0.85 <= got <= rate_mbit * 1.15
    assert link.shaping == f"tbf {rate_mbit} Mbit/s each direction (kernel); 5 ms each way added by the data plane"


@needs_namespaces
def test_tbf_shapes_the_server_to_device_direction_too():
    with NamespaceLink(LinkSetting(10), tag="test") as link:
        got = measured_mbit(link.server_wrapper, link.device_wrapper, link.device_address, 2_000_000)
    print(f"\n{link.name}: server -> device at {got:.3f} Mbit/s")
    assert 8.5 <= got <= 11.5


@needs_namespaces
def test_an_unshaped_link_is_far_faster_than_the_shaped_ones():
    """The rate the shaped tests see is tbf's doing, not a limit of veth or of this machine."""
    with NamespaceLink(LinkSetting(None), tag="test") as link:
        got = measured_mbit(link.device_wrapper, link.server_wrapper, link.server_address, 50_000_000)
    print(f"\nunshaped veth: {got:.0f} Mbit/s")
    assert got > 300
    assert link.shaping == "unshaped veth; no added delay"


@needs_namespaces
def test_a_payload_after_a_pause_is_shaped_too():
    """Split payloads are tens of kB sent after the link was idle: the token bucket must not let them through
    at veth speed (a 4 ms bucket lets a quarter of a 200 kB payload through at once at 100 Mbit/s)."""
    with NamespaceLink(LinkSetting(100), tag="test") as link:
        seconds = statistics.median(round_trips_s(link, 200_000, 7))
    wire_s = 8 * 200_000 / 100e6
    print(f"\n200 kB at 100 Mbit/s after a pause: {seconds * 1e3:.2f} ms (bytes / rate: {wire_s * 1e3:.1f} ms)")
    assert 0.85 * wire_s <= seconds <= 1.35 * wire_s


# --- lifetime --------------------------------------------------------------------------------------------------

@needs_namespaces
def test_namespaces_are_gone_after_the_link_whatever_ends_it():
    link = NamespaceLink(LinkSetting(10, 1), tag="test")
    with link:
        assert {link.device_netns, link.server_netns} <= namespaces()
        assert link.device_netns.startswith("eb-test-") and link.device_netns != link.server_netns
        assert link.device_wrapper == ["ip", "netns", "exec", link.device_netns]
    assert not {link.device_netns, link.server_netns} & namespaces()

    for interrupt in (RuntimeError("job failed"), KeyboardInterrupt()):
        link = NamespaceLink(LinkSetting(10), tag="test")
        with pytest.raises(type(interrupt)):
            with link:
                assert link.device_netns in namespaces()
                raise interrupt
        assert not {link.device_netns, link.server_netns} & namespaces()


@needs_namespaces
def test_two_links_at_once_get_their_own_namespaces_and_subnets():
    with NamespaceLink(LinkSetting(10), tag="a") as first, NamespaceLink(LinkSetting(10), tag="a") as second:
        assert {first.device_netns, first.server_netns}.isdisjoint({second.device_netns, second.server_netns})
        for link in (first, second):
            assert link.server_address.startswith("10.231.")
            reach = subprocess.run([*link.device_wrapper, "ip", "route", "get", link.server_address],
                                   capture_output=True, text=True, check=True).stdout
            assert "eb-dev0" in reach
        assert first.server_address != second.server_address


@needs_namespaces
def test_a_failing_command_is_quoted_and_what_was_made_is_removed():
    link = NamespaceLink(LinkSetting(10), tag="test")
    subprocess.run(["ip", "netns", "add", link.server_netns], check=True)  # someone else's, in the way
    try:
        with pytest.raises(ConfigError) as error:
            link.__enter__()
        assert f"`ip netns add {link.server_netns}` failed" in str(error.value)
        assert "File exists" in str(error.value) and "\n" not in str(error.value)
        assert link.device_netns not in namespaces()  # the one it made is gone,
        assert link.server_netns in namespaces()  # the one it did not make is left alone
    finally:
        subprocess.run(["ip", "netns", "delete", link.server_netns], check=True)


@needs_namespaces
def test_remove_stale_takes_only_what_a_dead_run_left():
    finished = subprocess.Popen(["true"])
    finished.wait()
    stale, alive = f"eb-stale-{finished.pid}-0-dev", f"eb-stale-{os.getpid()}-999-dev"
    for name in (stale, alive):
        subprocess.run(["ip", "netns", "add", name], check=True)
    found = cpu_controller()
    stale_group = found[1] / f"eb-stale-{finished.pid}-0-cpu" if found else None
    if stale_group is not None:
        stale_group.mkdir()
    try:
        removed = remove_stale()
        assert stale in removed and alive not in removed
        assert stale not in namespaces() and alive in namespaces()
        if stale_group is not None:
            assert stale_group.name in removed and not stale_group.exists()
    finally:
        subprocess.run(["ip", "netns", "delete", alive], check=True)


# --- without root ----------------------------------------------------------------------------------------------

def test_without_root_the_error_is_one_line_and_says_use_link_none(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(ConfigError) as error:
        with NamespaceLink(LinkSetting(10), tag="test"):
            pass
    message = str(error.value)
    assert "need root" in message and "`--link none`" in message and "uid 1000" in message
    assert "\n" not in message


def test_without_ip_the_error_says_so(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match=r"`ip` \(iproute2\) is not installed.*`--link none`"):
        NamespaceLink(LinkSetting(10), tag="test").__enter__()


def test_loopback_needs_nothing_and_says_it_is_unshaped():
    with LoopbackLink() as link:
        assert (link.device_wrapper, link.server_wrapper, link.server_address) == ([], [], "127.0.0.1")
        assert link.shaping == "none: loopback, unshaped; no added delay"
        assert (link.name, link.rate_mbit, link.delay_ms) == ("loopback", None, 0.0)
    delayed = LoopbackLink(LinkSetting(10, 5))
    assert delayed.shaping == ("none: loopback, unshaped (10 Mbit/s not applied); "
                               "5 ms each way added by the data plane")
    assert (delayed.name, delayed.rate_mbit, delayed.delay_ms) == ("loopback-5ms", None, 5.0)


# --- CPU quota -------------------------------------------------------------------------------------------------

BUSY = """
import time
start, cpu = time.monotonic(), time.process_time()
while time.monotonic() - start < 1.5:
    pass
print((time.process_time() - cpu) / (time.monotonic() - start))
"""


@needs_cgroup
def test_a_quarter_core_quota_holds_a_busy_loop_to_a_quarter_of_the_wall_time():
    with CpuQuota(0.25, tag="test") as quota:
        assert quota.path.is_dir() and quota.path.name.startswith("eb-test-")
        share = float(subprocess.run([*quota.wrapper, sys.executable, "-c", BUSY], capture_output=True, text=True,
                                     check=True, timeout=30).stdout)
        path = quota.path
    print(f"\nbusy loop under {quota.label}: {share:.3f} of the wall time on the CPU")
    assert 0.15 <= share <= 0.35
    assert not path.exists()
    assert (quota.quota_us, quota.period_us) == (1000, 4000)  # the shortest period the kernel allows
    assert quota.label in ("device emulated at 0.25 of a CPU core (cgroup v1 cfs quota: 1 ms per 4 ms)",
                           "device emulated at 0.25 of a CPU core (cgroup v2 cpu.max: 1 ms per 4 ms)")


# One 20 ms chunk of CPU work at a time, each timed: the wall time per chunk over its CPU time.
CHUNKS = """
import time, statistics
ratios = []
for _ in range(15):
    w0, c0 = time.perf_counter(), time.process_time()
    while time.process_time() - c0 < 0.02:
        pass
    ratios.append((time.perf_counter() - w0) / (time.process_time() - c0))
print(statistics.median(ratios))
"""


@needs_cgroup
def test_a_quota_slows_each_piece_of_work_longer_than_its_period_not_only_the_average():
    """What a slower device means for latency: every 20 ms of work takes about 80 ms at a quarter core (with
    the default 100 ms period, a 20 ms piece would often run at full speed and stall later)."""
    with CpuQuota(0.25, tag="test") as quota:
        ratio = float(subprocess.run([*quota.wrapper, sys.executable, "-c", CHUNKS], capture_output=True,
                                     text=True, check=True, timeout=60).stdout)
    print(f"\nmedian wall / CPU time of a 20 ms piece of work at a quarter core: {ratio:.2f}")
    assert 3.0 <= ratio <= 5.5


@needs_cgroup
def test_the_quota_group_is_removed_and_what_still_runs_in_it_is_killed():
    with CpuQuota(0.5, tag="test") as quota:
        left_behind = subprocess.Popen([*quota.wrapper, "sleep", "60"])
        path = quota.path
        # Once the shell has moved itself in, the sleep (the same process, after exec) is in the group.
        for _ in range(200):
            if str(left_behind.pid) in (path / "cgroup.procs").read_text().split():
                break
            subprocess.run(["sleep", "0.01"])
        assert str(left_behind.pid) in (path / "cgroup.procs").read_text().split()
    assert left_behind.wait(timeout=5) == -9
    assert not path.exists()


def test_a_quota_outside_what_a_core_can_give_is_refused():
    for share in (0, -1, 0.001, (os.cpu_count() or 1) + 1, True, "0.25"):
        with pytest.raises(ConfigError, match="device_cpu_quota"):
            CpuQuota(share)


def test_a_quota_without_root_says_what_to_do(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(ConfigError, match=r"device_cpu_quota = 0\.25 needs .*root.*leave device_cpu_quota out"):
        CpuQuota(0.25).__enter__()


# --- settings --------------------------------------------------------------------------------------------------

def test_settings_have_unique_file_name_safe_names():
    assert LinkSetting(10, 5).name == "10mbit-5ms"
    assert LinkSetting(None).name == "unshaped-0ms"
    assert LinkSetting(0.5, 2.5).name == "0.5mbit-2.5ms"
    assert LinkSetting(10, 5) == LinkSetting(10.0, 5.0)
    assert LinkSetting(10.000001, 5).name != LinkSetting(10.000002, 5).name


def test_parse_links_reads_a_sweep():
    settings = parse_links([{"rate_mbit": 1, "delay_ms": 5}, {"rate_mbit": 100}, {}], "split.toml")
    assert [s.name for s in settings] == ["1mbit-5ms", "100mbit-0ms", "unshaped-0ms"]
    assert parse_links([], "split.toml") == []


def test_parse_links_takes_the_tables_of_a_suite_file(tmp_path):
    from harness.core.config import Table, load_toml

    suite = tmp_path / "split.toml"
    suite.write_text("[[link]]\nrate_mbit = 10\ndelay_ms = 5\n\n[[link]]\nrate_mbit = 10\ndely_ms = 5\n")
    tables = [Table(item, suite, f"link[{i}]") for i, item in enumerate(load_toml(suite)["link"])]
    expected = re.escape(f"{suite}: [[link]] #2: unknown key 'dely_ms' (did you mean 'delay_ms'?)")
    with pytest.raises(ConfigError, match=expected):
        parse_links(tables)
    assert parse_links(tables[:1]) == [LinkSetting(10, 5)]


@pytest.mark.parametrize("tables, expected", [
    ([{"rate": 10}], r"split.toml: \[\[link\]\] #1: unknown key 'rate' \(did you mean 'rate_mbit'\?\); "
                     r"accepted: rate_mbit .*delay_ms"),
    ([{"rate_mbit": 0}], r"#1: rate_mbit = 0 is not accepted; a number from 0.001 to 100000; leave rate_mbit out"),
    ([{"rate_mbit": -5}], r"rate_mbit = -5 is not accepted"),
    ([{"rate_mbit": 200000}], r"rate_mbit = 200000 is not accepted"),
    ([{"rate_mbit": "10mbit"}], r"rate_mbit = '10mbit' is not accepted"),
    ([{"rate_mbit": True}], r"rate_mbit = True is not accepted"),
    ([{"rate_mbit": float("nan")}], r"rate_mbit = nan is not accepted"),
    ([{"rate_mbit": 10, "delay_ms": -1}], r"delay_ms = -1 is not accepted; a number from 0 to 10000"),
    ([{"rate_mbit": 10, "delay_ms": 20000}], r"delay_ms = 20000 is not accepted"),
    ([{"rate_mbit": 10}, {"rate_mbit": 10.0, "delay_ms": 0}], r"\[\[link\]\] #2: the same link as \[\[link\]\] #1 "
                                                              r"\(10mbit-0ms\); list each setting once"),
    ({"rate_mbit": 10}, r"split.toml: 'link' must be an array of tables"),
    (["10mbit"], r"#1: must be a table"),
])
def test_parse_links_refuses_bad_settings_naming_the_file_and_key(tables, expected):
    with pytest.raises(ConfigError, match=expected):
        parse_links(tables, "split.toml")
