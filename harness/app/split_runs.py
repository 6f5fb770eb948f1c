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

import numpy as np

from harness.core.errors import ConfigError
from harness.core.jobs import LOCAL, Artifact, Job
from targets.base import Session, SplitPlan
from targets.link import CpuQuota, LinkSetting, LoopbackLink, NamespaceLink, require_namespaces

NAMESPACES, LOOPBACK, NETWORK = "namespaces", "loopback", "network"
NETWORK_SHAPING = "none: the real network between device and server, as it is"

# The device measures the link's throughput with this much data before a job: about half a second at the
# nominal rate, so a slow link does not cost minutes and a fast one is not measured on a few packets.
PROBE_S = 0.5
PROBE_MIN_BYTES = 64 * 1024
PROBE_UNSHAPED_BYTES = 8 * 1024 * 1024


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
        return max(PROBE_MIN_BYTES, int(self.setting.rate_mbit * 1e6 / 8 * PROBE_S))


def has_split_variants(workloads, suite: str) -> bool:
    return any(v.strategy != LOCAL and (v.suites is None or suite in v.suites)
               for w in workloads for v in w.variants)


def plan_links(run, device_is_local: bool) -> list[PlannedLink]:
    """The links split jobs run over (none when the run has no split variant)."""
    settings = run.suite.split
    if settings.device_cpu_quota is not None and device_is_local:
        CpuQuota(settings.device_cpu_quota).check()
    if settings.device_cpu_quota is not None and not device_is_local:
        raise ConfigError(f"{run.suite.file}: key 'split.device_cpu_quota' emulates a slower device on this "
                          f"machine; the device {run.target.name} is a board, measured at its own speed: "
                          f"leave the key out")
    if not has_split_variants(run.workloads, run.suite.name):
        return []
    if not device_is_local:
        if not settings.server_address:
            raise ConfigError(f"{run.suite.file}: key 'split.server_address' is required when the device is a "
                              f"board ({run.target.name}): the address at which the board reaches the server")
        return [PlannedLink(NETWORK, NETWORK, LinkSetting(None, 0.0))]
    if run.request.link == "none" or not settings.links:
        return [PlannedLink(LOOPBACK, LOOPBACK, LinkSetting(None, 0.0))]
    # root and iproute2, checked before anything is built (the links are made when their jobs run)
    require_namespaces(tc=any(s.rate_mbit is not None for s in settings.links))
    return [PlannedLink(s.name, NAMESPACES, s) for s in settings.links]


def check_server(run, server_backends: list[str], where: str) -> None:
    """Every backend of the run's split jobs must run on the server too, or no tail could run."""
    missing = [b for b in run.backends if b not in server_backends]
    if missing:
        raise ConfigError(f"{where}: the server target runs {', '.join(server_backends)}, not "
                          f"{', '.join(missing)}, which this run's split jobs use; choose a server that lists "
                          f"them or run with --backend {' --backend '.join(server_backends)}")


class SplitJobs:
    """The device's emulated speed for the whole run, and per link setting, the link; opened by the runner,
    closed on every exit (namespaces and cgroups removed on Ctrl-C too)."""

    def __init__(self, device: Session, server: Session | None, links: list[PlannedLink],
                 device_cpu_quota: float | None, server_address: str | None):
        self.device, self.server = device, server
        self.links = {link.name: link for link in links}
        self.quota_share = device_cpu_quota
        self.server_address = server_address
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
            if self.quota_share is not None or self.link is not None:
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

    @property
    def quota_label(self) -> str | None:
        return self.quota.label if self.quota is not None else None

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
    def shaping(self) -> str:
        if self.planned is None:
            return ""
        if self.planned.kind == NETWORK:
            return NETWORK_SHAPING
        return self.link.shaping

    @contextlib.contextmanager
    def serving(self, job: Job, artifact: Artifact, backend_options: dict) -> Iterator[SplitPlan]:
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
        with self.server.serve(job, staged, backend_options, bind_host=bind, delay_ms=delay_ms,
                               wrapper=wrapper) as (_, port):
            yield SplitPlan(address, port, delay_ms, self.planned.probe_bytes,
                            accuracy_pass=self._accuracy_key(job) not in self.accuracies)


def split_analysis(onnx_path, sample_shape: tuple) -> dict:
    """Where a workload's base model can be cut, as run.json keeps it (the report plots it)."""
    from workloads.split_analysis import split_candidates

    elements = int(np.prod(sample_shape))
    return {"input_bytes": 4 * elements, "input_bytes_uint8": elements,
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
        columns.update({f"{part}": round(value, 4) for part, value in m.split_times.items()})
        columns.update(payload_bytes=m.payload_bytes, link_measured_mbit=m.link_measured_mbit,
                       link_rtt_ms=m.link_rtt_ms)
    return columns
