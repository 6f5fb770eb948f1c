"""Split-computing jobs in a run: which links they run over, the device's emulated speed, and the server
agent that runs each job's tail while the device agent runs its head.

On one machine the device and server agents sit in two network namespaces joined by a veth pair that tbf
shapes (targets.link); `--link none`, or a suite without [[link]], uses loopback, unshaped. A board as
the device reaches the server over the real network.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from harness.core.errors import ConfigError
from harness.core.jobs import LOCAL, Artifact, Job
from targets.base import Session, SplitPlan
from targets.link import CpuQuota, LinkSetting, LoopbackLink, NamespaceLink, require_namespaces

NAMESPACES, LOOPBACK, NETWORK = "namespaces", "loopback", "network"
NETWORK_SHAPING = "none: the real network between device and server, as it is"

# The device measures the link's throughput with this much data before a job: about half a second at the
# nominal rate, so a slow link does not cost minutes and a fast one is not measured on a few packets.
PROBE_S = 0.5
PROBE_MIN_BYTES = 16 * 1024
PROBE_MAX_BYTES = 64 * 1024 * 1024
PROBE_UNSHAPED_BYTES = 8 * 1024 * 1024
# The device waits on the server at least this long, and on a slow link four times what the largest frame
# (the accuracy pass's 1 MiB batches) takes to cross.
MIN_TIMEOUT_S = 60.0
LARGEST_FRAME_BYTES = 1 << 20


@dataclass(frozen=True)
class PlannedLink:
    """One link setting of the run, and how it is made."""

    name: str            # the job key's `link`
    kind: str            # NAMESPACES | LOOPBACK | NETWORK
    setting: LinkSetting

    @property
    def probe_bytes(self) -> int:
        if self.setting.rate_mbit is None:
            return PROBE_UNSHAPED_BYTES
        return min(PROBE_MAX_BYTES, max(PROBE_MIN_BYTES, int(self.setting.rate_mbit * 1e6 / 8 * PROBE_S)))

    @property
    def timeout_s(self) -> float:
        rate = self.setting.rate_mbit
        slowest_s = 0.0 if rate is None else 8 * max(LARGEST_FRAME_BYTES, self.probe_bytes) / (rate * 1e6)
        return max(MIN_TIMEOUT_S, 4 * slowest_s + 4 * self.setting.delay_ms / 1e3)


def has_split_variants(workloads, suite: str) -> bool:
    return any(v.strategy != LOCAL and (v.suites is None or suite in v.suites)
               for w in workloads for v in w.variants)


@dataclass
class SplitSetup:
    """How this run's split jobs run: their links (none: no split job runs), the device's emulated speed,
    the server's address where device and server are apart, and what to tell the user once."""

    links: list[PlannedLink]
    device_cpu_quota: float | None
    server_address: str | None
    notes: list[str]


def plan_split(run, device_is_local: bool, server_is_local: bool) -> SplitSetup:
    """Links, quota and address for the run, checked before anything is built (root for namespaces and
    cgroups); what cannot apply here is left out with a note, so a suite runs on every target."""
    settings, notes = run.suite.split, []
    quota = settings.device_cpu_quota
    if quota is not None and run.request.link == "none":
        notes.append(f"--link none: device_cpu_quota = {quota} left out (its cgroup needs root); the device "
                     f"runs at this machine's full speed")
        quota = None
    elif quota is not None and not device_is_local:
        notes.append(f"device_cpu_quota = {quota} ({run.suite.file}) left out: the device {run.target.name} is a "
                     f"board, measured at its own speed")
        quota = None
    if quota is not None:
        CpuQuota(quota).check()
    if not has_split_variants(run.workloads, run.suite.name):
        return SplitSetup([], quota, None, notes)
    address = run.request.server_address or settings.server_address
    if device_is_local and server_is_local:
        if run.request.link == "none" or not settings.links:
            return SplitSetup([PlannedLink(LOOPBACK, LOOPBACK, LinkSetting(None, 0.0))], quota, None, notes)
        # root and iproute2, checked before anything is built (the links are made when their jobs run)
        require_namespaces(tc=any(s.rate_mbit is not None for s in settings.links))
        return SplitSetup([PlannedLink(s.name, NAMESPACES, s) for s in settings.links], quota, None, notes)
    apart = (f"the device {run.target.name} is a board" if not device_is_local
             else f"the server {settings.server} is another machine")
    if not address:
        notes.append(f"split jobs left out: {apart}; give the address at which the device reaches the server "
                     f"(--server-address, or [split] server_address in {run.suite.file}) to run them")
        return SplitSetup([], quota, None, notes)
    if settings.links:
        notes.append(f"{apart}: split jobs run over the real network to {address}, once; the suite's [[link]] "
                     f"settings shape links on one machine only")
    return SplitSetup([PlannedLink(NETWORK, NETWORK, LinkSetting(None, 0.0))], quota, address, notes)


def check_server(run, server_backends: list[str], where: str) -> None:
    """Every backend of the run's split jobs must run on the server too, or no tail could run."""
    missing = [b for b in run.backends if b not in server_backends]
    if missing:
        raise ConfigError(f"{where}: the server target runs {', '.join(server_backends)}, not "
                          f"{', '.join(missing)}, which this run's split jobs would run on; choose a server that "
                          f"lists them or run with --backend {' --backend '.join(server_backends)}")


class SplitJobs:
    """The device's emulated speed for the whole run, and per link setting, the link; opened by the runner,
    closed on every exit (namespaces and cgroups removed on Ctrl-C too)."""

    def __init__(self, device: Session, server: Session | None, setup: SplitSetup, server_options: dict):
        self.device, self.server = device, server
        self.links = {link.name: link for link in setup.links}
        self.quota_share = setup.device_cpu_quota
        self.server_address = setup.server_address
        self.server_options = server_options   # the server target's [backends.<name>] tables
        self.stack = contextlib.ExitStack()
        self.quota = None
        self.link = None           # the open link (NamespaceLink / LoopbackLink) and its PlannedLink
        self.planned = None
        self.tag = f"{os.getpid() % 100000}"
        # a split variant's accuracy through its head and tail, measured once (over the fastest link)
        self.accuracies: dict[tuple, tuple] = {}

    def __enter__(self) -> SplitJobs:
        if self.quota_share is not None:
            self.quota = self.stack.enter_context(CpuQuota(self.quota_share, self.tag))
            self.device.set_agent_wrapper(self._device_wrapper())
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.stack.close()
        finally:
            if self.quota is not None:  # no link is open here: `over` closes its own
                self.device.set_agent_wrapper([])

    def _device_wrapper(self) -> list[str]:
        # the cgroup first: `ip netns exec` mounts the namespace's own /sys, where the group is not
        words = list(self.quota.wrapper) if self.quota is not None else []
        return words + (list(self.link.device_wrapper) if self.link is not None else [])

    def run_order(self, pending: list[Job]) -> list[str]:
        """The link settings of the pending jobs: "" (jobs whole on the device) first, then the fastest
        link first, so the accuracy pass, which crosses the link once per evaluation sample, runs there."""
        def order(name: str) -> tuple[bool, float]:
            planned = self.links.get(name)
            rate = planned.setting.rate_mbit if planned is not None else None
            return bool(name), -(rate if rate is not None else float("inf"))

        return sorted(dict.fromkeys(job.link for job in pending), key=order)

    @staticmethod
    def _accuracy_key(job: Job) -> tuple:
        return job.workload, job.variant, job.backend, job.threads, job.batch_size

    def complete(self, job: Job, m) -> None:
        """Keep a split job's accuracy, or fill in the one measured over another link."""
        key = self._accuracy_key(job)
        if m.accuracy is not None:
            self.accuracies.setdefault(key, (m.accuracy, m.n_correct, m.n_eval, job.link))
            return
        m.accuracy, m.n_correct, m.n_eval, link = self.accuracies[key]
        m.warnings.append(f"accuracy measured through the same head and tail over link {link} (a link does "
                          f"not change it), not again over this one")

    @contextlib.contextmanager
    def over(self, name: str) -> Iterator[None]:
        """The jobs of link setting `name` ("" for local jobs: no link) run inside this block."""
        planned = self.links.get(name) if name else None
        if planned is None:
            yield
            return
        if planned.kind == NAMESPACES:
            link = NamespaceLink(planned.setting, self.tag)
        elif planned.kind == LOOPBACK:
            link = LoopbackLink(planned.setting)
        else:
            link = None
        wraps = planned.kind == NAMESPACES  # the device agent moves into the link's namespace
        with link if link is not None else contextlib.nullcontext():
            self.link, self.planned = link, planned
            if wraps:
                self.device.set_agent_wrapper(self._device_wrapper())
            try:
                yield
            finally:
                self.link, self.planned = None, None
                if wraps:
                    self.device.set_agent_wrapper(self._device_wrapper())

    @property
    def shares_machine(self) -> bool:
        """Device and server agents on one machine (a power source there measures both)."""
        return self.planned is not None and self.planned.kind != NETWORK

    @property
    def shaping(self) -> str:
        if self.planned is None:
            return ""
        if self.planned.kind == NETWORK:
            return NETWORK_SHAPING
        return self.link.shaping

    @contextlib.contextmanager
    def serving(self, job: Job, artifact: Artifact) -> Iterator[SplitPlan]:
        """A server agent running `artifact`'s tail for `job`, and the plan the device connects with."""
        if self.server is None or self.planned is None:
            raise ConfigError(f"job {job.job_id}: a split job outside a link (an edgebench bug)")
        staged = self.server.stage(artifact)
        delay_ms = self.planned.setting.delay_ms
        if self.planned.kind == NETWORK:
            bind, wrapper, address = self.server_address, [], self.server_address
        else:
            bind = address = self.link.server_address
            wrapper = list(self.link.server_wrapper)
        with self.server.serve(job, staged, self.server_options.get(job.backend, {}), bind_host=bind,
                               delay_ms=delay_ms,
                               wrapper=wrapper) as (_, port):
            yield SplitPlan(address, port, delay_ms, self.planned.probe_bytes, timeout_s=self.planned.timeout_s,
                            accuracy_pass=self._accuracy_key(job) not in self.accuracies)


def split_analysis(onnx_path, sample_shape: tuple) -> dict:
    """Where a workload's base model can be cut, as run.json keeps it (the report plots it)."""
    from workloads.split_analysis import split_candidates
    from workloads.split_codec import payload_bytes

    return {"input_bytes": payload_bytes(sample_shape, "fp32"),
            "input_bytes_uint8": payload_bytes(sample_shape, "int8"),
            "candidates": [asdict(c) for c in split_candidates(onnx_path, tuple(sample_shape))]}


def split_columns(artifact: Artifact, m, planned: PlannedLink | None, shaping: str,
                  quota_share: float | None) -> dict:
    """The split-computing columns of a row (the strategy on every row)."""
    columns = {"strategy": (artifact.split or {}).get("strategy", LOCAL)}
    if quota_share is not None:
        columns["device_cpu_quota"] = quota_share
    if not artifact.split:
        return columns
    split = artifact.split
    columns.update(split_point=split["point"], payload_dtype=split["payload_dtype"],
                   input_bytes=split["input_bytes"], head_macs=split["head_macs"], tail_macs=split["tail_macs"],
                   head_bytes=split["head_bytes"])
    if planned is not None:
        columns.update(link_rate_mbit=planned.setting.rate_mbit, link_delay_ms=planned.setting.delay_ms,
                       link_shaping=shaping)
    if m is not None and m.split_times:
        columns.update({part: round(value, 4) for part, value in m.split_times.items()})
        columns.update(payload_bytes=m.payload_bytes, link_measured_mbit=m.link_measured_mbit,
                       link_rtt_ms=m.link_rtt_ms)
    return columns
