"""Jobs and artifacts: what the harness hands a target, with stable keys for results and resume."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from harness.core.errors import ConfigError

# Workload and variant names (and any other name that becomes part of a job id, a file or a directory
# name) are from this alphabet: job ids joined by "__" stay injective and paths stay inside their directory.
NAME_MAX = 64
NAME_RE = re.compile(r"(?!.*__)[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
NAME_RULE = (f"letters, digits and . _ - (at most {NAME_MAX}), starting and ending with a letter or digit, "
             f"no '__'")


def check_name(name: str, where: str) -> str:
    """`name` if it is in the safe alphabet; else one ConfigError line (`where`: the file and key)."""
    if not isinstance(name, str) or len(name) > NAME_MAX or not NAME_RE.fullmatch(name):
        raise ConfigError(f"{where} = {name!r}: accepted: {NAME_RULE}")
    return name


# A job's thread count and batch size: past these a runtime fails in its own words (an int32 argument, a
# 512 GiB allocation) after the run has started, so they are refused when the matrix is read.
MAX_THREADS = 1024
MAX_BATCH_SIZE = 65536

KEY_COLUMNS = ("workload", "variant", "target", "backend", "precision", "threads", "batch_size", "link")

# A variant whose artifact spans a device and a server over a link (its family's STRATEGY); every other
# family runs whole on the device.
LOCAL = "local"


# Artifact.split's keys: where the network is cut and what crosses the link, per sample at batch 1.
SPLIT_KEYS = ("strategy", "point", "point_index", "payload_dtype", "payload_shape", "payload_bytes",
              "input_bytes", "head_macs", "tail_macs", "head_params", "head_bytes")


STAGE_FORMATS = ("onnx", "tflite")  # the model files a stage of `Artifact.stages` may have


def stage_files(stage: dict) -> dict:
    """A stage's model files, format -> path."""
    return {fmt: stage[fmt] for fmt in STAGE_FORMATS if fmt in stage}


@dataclass
class Artifact:
    """A built variant: one or more files a backend can run, its nominal cost and what it was built from.

    `files` maps a format ("onnx", "torch_state", ...) to a path; `stages` leaves room for artifacts that
    run as several models (early exits): each stage maps formats of STAGE_FORMATS to paths, and "macs".
    """

    workload: str
    variant: str
    family: str
    precision: str
    files: dict[str, str]
    eval_data: str            # .npz with x, y
    n_eval: int
    n_classes: int
    model_bytes: int
    params: int | None
    macs: int | None
    torch_model: dict | None = None   # eager PyTorch: {"class", "kwargs"}; files["torch_code"] defines it
    variant_params: dict = field(default_factory=dict)
    stages: list[dict] = field(default_factory=list)
    host_accuracy: float | None = None
    weight_sparsity: float | None = None   # share of zero-valued conv / matmul weights
    exit: dict | None = None               # early exits: {"threshold", "criterion"} between the stages
    # split computing (strategy offload / split / bottleneck): files["head"] runs on the device (absent for
    # offload), files["tail"] on the server; see SPLIT_KEYS
    split: dict | None = None
    # per backend, options this artifact needs over the target's (e.g. onnxruntime qdq_fusion = false)
    backend_options: dict = field(default_factory=dict)
    # a user's model: its inputs as the evaluation file holds them and how its output is scored
    # (harness.core.model_io; None: one input `x`, top-1 of the first output)
    inputs: list | None = None
    scoring: dict | None = None
    notes: list = field(default_factory=list)   # why a column stays empty (no metric, MACs not counted)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Job:
    workload: str
    variant: str
    family: str
    precision: str
    target: str
    backend: str
    threads: int
    batch_size: int
    link: str = ""   # split computing: the link setting's name; "" for a job that runs whole on the device

    @property
    def job_id(self) -> str:
        """A stable, file-name-safe identifier (the target is the run's, so it is left out)."""
        text = f"{self.workload}__{self.variant}__{self.backend}__t{self.threads}__b{self.batch_size}"
        if self.link:
            text += f"__{self.link}"
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)


def expand(workloads: list, target: str, backends: list[str], threads: list[int],
           batch_sizes: list[int], suite: str, links: list[str] = ()) -> list[Job]:
    """workloads x variants (those meant for this suite) x backends x threads x batch sizes, and x link
    settings for variants that span a link (`variant.strategy` other than local; without links, they are
    left out), baselines first within
    each workload: the accuracy deltas then have their reference while the run goes (and where one has
    not, harness.core.baselines says how it is filled in)."""
    jobs = []
    for workload in workloads:
        variants = [v for v in workload.variants if v.suites is None or suite in v.suites]
        variants.sort(key=lambda v: v.family != "baseline")
        for variant in variants:
            for backend in backends:
                for n_threads in threads:
                    for batch in batch_sizes:
                        for link in (("",) if getattr(variant, "strategy", LOCAL) == LOCAL else links):
                            jobs.append(Job(workload.name, variant.name, variant.family, variant.precision,
                                            target, backend, n_threads, batch, link))
    check_unique_ids(jobs)
    return jobs


def check_unique_ids(jobs: list[Job]) -> None:
    """Refuse, before anything runs, two jobs that would share a job id: their raw files would overwrite
    each other, resume would take one for the other and the report would drop a row."""
    seen: dict[str, Job] = {}
    for job in jobs:
        other = seen.setdefault(job.job_id, job)
        if other is not job:
            if (other.workload, other.variant) == (job.workload, job.variant):
                what = f"workload {job.workload!r} variant {job.variant!r} is planned twice"
            else:
                what = (f"workload {other.workload!r} variant {other.variant!r} and workload "
                        f"{job.workload!r} variant {job.variant!r} map to the same id")
            raise ConfigError(f"job id {job.job_id!r}: {what}; accepted: workload and variant names "
                              f"that differ in letters, digits or . _ - (each workload once per run)")
