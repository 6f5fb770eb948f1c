"""The result schema: every column of results.csv defined once (name, kind, unit, meaning, and how the
report's table shows it). The CSV header, the reports' numeric types and results table, and the README's
column table are all derived from COLUMN_DEFS.

RESULT_FORMAT_VERSION is the format of a run directory (run.json keys and results.csv columns); run.json
carries it as "format_version". Changing a column or a run.json key means a new version and a step in
harness.core.migrations, so that older runs stay readable.

`python -m harness.core.schema` prints the README's column table; `--update-readme [README.md]` rewrites
it in place between the markers.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.core.jobs import KEY_COLUMNS

# 1: what edgebench wrote up to commit 39f6013 (no "format_version" in run.json; the measurement protocol
#    under "protocol"). 2: run.json says "format_version" and names the protocol "measurement_protocol".
# 3: split computing: the key column `link` and the split / link columns.
# 4: a user's model: `metric` and `notes`. 5: noise around each job (`load_avg_1m`, `other_cpu_cores`,
#    `cpu_steal_pct`) and the `board` that ran it (a board farm runs one run on several boards).
# 6: which rule ended the timed windows (`stopping_rule`) and how well the median is known
#    (`latency_p50_ci_pct`); how an early exit ran (`exit_path`, `exit_skip_rate`).
RESULT_FORMAT_VERSION = 6

KINDS = ("str", "int", "float", "bool", "json")


@dataclass(frozen=True)
class Column:
    name: str
    kind: str                 # one of KINDS: how the CSV text is read back
    unit: str                 # "" for names, counts and ratios without a unit
    meaning: str              # one sentence: the README's column table shows it
    header: str | None = None   # the report's results table: its heading ...
    fmt: str | None = None      # ... and format spec (None: as written)
    only_when_present: bool = False  # the report shows it only when some row has a value
    # the values that make sense (numbers only; None: no bound): a row outside them is not trusted
    low: float | None = None
    high: float | None = None

    def accepted(self) -> str:
        """What a cell of this column may hold, for an error: 'number from 0 to 1', 'integer >= 1', ..."""
        what = {"int": "integer", "float": "finite number", "bool": "True or False",
                "json": "JSON value"}.get(self.kind, self.kind)
        if self.low is not None and self.high is not None:
            return f"{what} from {self.low} to {self.high}"
        if self.low is not None:
            return f"{what} >= {self.low}"
        if self.high is not None:
            return f"{what} <= {self.high}"
        return what


C = Column
COLUMN_DEFS: tuple[Column, ...] = (
    C("run_id", "str", "", "The run's id, the name of its directory under `runs/`."),
    C("job_id", "str", "", "The job's stable id (workload, variant, backend, threads, batch), file-name "
                           "safe; `--resume` skips the ids already `ok` or `skipped`; a farm run with "
                           "`replicate = true` suffixes `__on-<place>`: one row per job and board."),
    C("status", "str", "", "`ok`, `skipped` (the backend cannot run this artifact, by design) or `failed` "
                           "(`--resume` runs it again)."),
    C("reason", "str", "", "Why the job was skipped or failed; empty when `ok`."),
    C("workload", "str", "", "The workload's name (part of the job's key).", "workload"),
    C("variant", "str", "", "The variant's name within its workload (key).", "variant"),
    C("target", "str", "", "The target the job ran on (key)."),
    C("board", "str", "", "The board that ran the job: a farm's place and the board's hostname "
                          "(`place/hostname`), the hostname of a single board reached over SSH; empty on the "
                          "local CPU.", "board", only_when_present=True),
    C("backend", "str", "", "The runtime that ran the job (key).", "backend"),
    C("precision", "str", "", "The variant's numeric precision: `fp32`, `fp16`, `int8`, `w4a4`, ... (key).",
      "precision"),
    C("threads", "int", "", "Threads the backend was given (key).", "threads", "d", low=1),
    C("batch_size", "int", "samples", "Samples per inference (key); latency, throughput and energy are per "
                                      "inference at this batch size.", "batch", "d", low=1),
    C("link", "str", "", "Split computing: the link setting the job ran over (`10mbit-5ms`, `loopback`, ...) "
                         "(key); empty for a job that runs whole on the device.", "link",
      only_when_present=True),
    C("family", "str", "", "The variant's family: `baseline`, `quantize`, `tflite`, `qat`, `fpga`, `prune`, "
                           "`distill`, `early_exit`, `offload`, `split` or `bottleneck`."),
    C("strategy", "str", "", "Where the network runs: `local` (whole on the device), `offload` (the raw input "
                             "sent, whole model on the server), `split` (head on the device, tail on the "
                             "server) or `bottleneck` (BottleFit: a trained encoder at the cut)."),
    C("variant_params", "json", "", "The variant's parameters from the workload file, defaults filled in."),
    C("accuracy", "float", "", "Accuracy (0 to 1) by `metric` over the whole evaluation split, same backend "
                               "and artifact as timed; empty with metric `none` (see `notes`).", "accuracy",
      ".4f", low=0, high=1),
    C("metric", "str", "", "How `accuracy` scores the model: `top1` (argmax of class scores), `label` (an "
                           "integer label output), `binary@<threshold>` (one score per sample) or `none`."),
    C("accuracy_delta", "float", "", "`accuracy` minus the same workload's fp32 baseline's on the same "
                                     "target, same backend when it ran there (else another backend's: a "
                                     "`.tflite` variant against the ONNX model it came from).",
      "Δ acc", "+.4f", low=-1, high=1),
    C("n_eval", "int", "samples", "Evaluation samples behind `accuracy`.", low=0),
    C("latency_mean_ms", "float", "ms", "Mean latency per inference, over every iteration of every window.",
      "mean ms", ".4f", low=0),
    C("latency_std_ms", "float", "ms", "Standard deviation of the latency, over every iteration of every "
                                       "window.", "std ms", ".4f", low=0),
    C("latency_min_ms", "float", "ms", "The fastest iteration's latency.", low=0),
    C("latency_max_ms", "float", "ms", "The slowest iteration's latency.", low=0),
    C("latency_p50_ms", "float", "ms", "Median latency, over every iteration of every window.",
      "p50 ms", ".4f", low=0),
    C("latency_p90_ms", "float", "ms", "90th percentile of the latency.", "p90 ms", ".4f", low=0),
    C("latency_p95_ms", "float", "ms", "95th percentile of the latency.", low=0),
    C("latency_p99_ms", "float", "ms", "99th percentile of the latency.", "p99 ms", ".4f", low=0),
    C("throughput_ips", "float", "inferences/s", "Median over windows of `batch_size` x iterations / window "
                                                 "wall time.", "inf/s", ",.0f", low=0),
    C("n_iterations", "int", "", "Timed iterations, all windows together.", low=0),
    C("n_windows", "int", "", "Timed windows.", low=0),
    C("window_min_s", "float", "s", "The shortest window's wall time.", low=0),
    C("stopping_rule", "str", "", "What ended the timed windows: `fixed` (`n_windows` windows, MLPerf Tiny), "
                                  "`statistical` (the median known to the suite's `median_ci_pct`) or `ceiling` "
                                  "(the statistical rule's `max_windows` / `max_timed_s` came first; the row "
                                  "warns).", "stopped by", only_when_present=True),
    C("latency_p50_ci_pct", "float", "%", "Half-width of the median's 99% confidence interval, in % of the "
                                          "median: the wider of order statistics over every sample and batch "
                                          "means over the windows' medians (one window: the first alone).",
      "p50 99% CI ±%", ".2f", only_when_present=True, low=0),
    C("warmup_iterations", "int", "", "Untimed iterations run before the first window.", low=0),
    C("model_bytes", "int", "bytes", "Size of the model file(s) the backend loads.", "bytes", ",.0f", low=0),
    C("params", "int", "", "Parameters (weights and biases) of the model.", "params", ",.0f", low=0),
    C("macs", "int", "MACs", "Multiply-accumulates of convolutions and matrix products per sample at batch 1 "
                             "(onnx-tool); early exits: every part, exit predictor included (the worst case).",
      "MACs", ",.0f", low=0),
    C("weight_sparsity", "float", "", "Share of exact zeros among the weight matrices (unstructured "
                                      "pruning).", "sparsity", ".2f", low=0, high=1),
    C("exit_rate", "float", "", "Early exits: share of evaluation samples that left at the exit; empty "
                                "otherwise.", "exits", ".3f", only_when_present=True, low=0, high=1),
    C("expected_macs", "float", "MACs", "Early exits: the MACs per sample the measured rates imply (the body "
                                        "and any predictor for all, the head for those not sent past it, the "
                                        "rest of the network for those that do not exit).",
      "expected MACs", ",.0f", only_when_present=True, low=0),
    C("exit_path", "str", "", "How an early-exit job ran: `one-call` (the runtime branches inside one graph, "
                               "ONNX If), `two-stage` (two runtime calls), `one-call+predictor` (an exit "
                               "predictor sends samples it deems hard past the exit head); empty otherwise.",
      "exit path", only_when_present=True),
    C("exit_skip_rate", "float", "", "Early exits with an exit predictor: share of samples the predictor sent "
                                     "straight past the exit head.", "skipped exit", ".3f",
      only_when_present=True, low=0, high=1),
    C("split_point", "str", "", "Split computing: the tensor the network is cut at (`input` for offload)."),
    C("payload_dtype", "str", "", "Split computing: how the payload crosses the link: `fp32`, `fp16` or `int8` "
                                  "(quantised at the cut, dequantised at the tail)."),
    C("payload_bytes", "int", "bytes", "Split computing: tensor bytes sent to the server per inference at "
                                       "`batch_size` (frame headers excluded).", low=0),
    C("input_bytes", "int", "bytes", "Split computing: one raw input sample as an fp32 tensor, for the "
                                     "payload's compression.", low=0),
    C("head_ms", "float", "ms", "Split computing: median time of the head on the device per inference.",
      low=0),
    C("serialize_ms", "float", "ms", "Split computing: median time to frame the payload (header and bytes).",
      low=0),
    C("transfer_ms", "float", "ms", "Split computing: median of (reply time - the server's tail time): the "
                                    "payload there and the logits back, on the device's clock.", low=0),
    C("tail_ms", "float", "ms", "Split computing: median time of the tail on the server, as the server timed "
                                "it.", low=0),
    C("head_macs", "int", "MACs", "Split computing: MACs of the head (on the device) per sample.", low=0),
    C("tail_macs", "int", "MACs", "Split computing: MACs of the tail (on the server) per sample.", low=0),
    C("head_bytes", "int", "bytes", "Split computing: bytes of the head's parameters (sc2bench's encoder "
                                    "size).", low=0),
    C("link_rate_mbit", "float", "Mbit/s", "Split computing: the link's nominal rate as shaped; empty when "
                                           "unshaped.", low=0),
    C("link_delay_ms", "float", "ms", "Split computing: one-way delay added to each direction.", low=0),
    C("link_measured_mbit", "float", "Mbit/s", "Split computing: the link's throughput as the device measured "
                                               "it over the data plane right before the job.", low=0),
    C("link_rtt_ms", "float", "ms", "Split computing: the round trip time the device measured (median of "
                                    "pings over the data plane).", low=0),
    C("link_shaping", "str", "", "Split computing: what shaped the link (tbf in the kernel, delay in the data "
                                 "plane, loopback unshaped, or the real network)."),
    C("device_cpu_quota", "float", "cores", "The device agent's CPU quota (cgroup) when the device's speed is "
                                            "emulated; empty when it ran at the machine's speed.", low=0),
    C("peak_rss_mb", "float", "MiB", "Peak resident memory (VmHWM) of the agent process that ran the job.",
      "peak RSS MB", ".0f", low=0),
    C("clock_offset_us", "float", "us", "Device clock minus host clock (0 on the local cpu target): how a "
                                        "board's windows were placed on a host-side meter's trace."),
    C("clock_uncertainty_us", "float", "us", "Bound on the error of `clock_offset_us`.", low=0),
    C("load_avg_1m", "float", "", "The machine's 1-minute load average around the timed windows (the larger "
                                  "of before and after; it counts the agent too).", low=0),
    C("other_cpu_cores", "float", "cores", "CPU time other processes used during the timed windows, per "
                                           "second of wall time (from /proc/stat minus the agent's own), "
                                           "in cores: 0 on a quiet machine.", "others' CPU cores", ".2f",
      only_when_present=True, low=0),
    C("cpu_steal_pct", "float", "%", "Share of the CPUs' time a hypervisor gave to other guests during the "
                                    "timed windows (/proc/stat steal).", low=0, high=100),
    C("h2d_ms", "float", "ms", "GPU backends: one batch's host-to-device copy, timed apart from the latency "
                               "columns (which time compute on data already on the GPU).",
      "H2D ms", ".4f", only_when_present=True, low=0),
    C("d2h_ms", "float", "ms", "GPU backends: one batch's device-to-host copy, timed apart from the latency "
                               "columns.", "D2H ms", ".4f", only_when_present=True, low=0),
    C("backend_info", "json", "", "What the backend says of itself: runtime and version, threads, providers, "
                                  "`qdq_fusion`, XNNPACK, GPU, TensorRT engine, ..."),
    C("energy_per_inference_mj", "float", "mJ", "Median over windows of (window energy / inferences in the "
                                                "window); empty with energy source `none`.",
      "mJ/inf", ".4g", only_when_present=True, low=0),
    C("energy_per_inference_above_idle_mj", "float", "mJ", "The same after subtracting `idle_power_w` x "
                                                           "window duration: the inference's own share.",
      "mJ/inf above idle", ".4g", only_when_present=True),
    C("avg_power_w", "float", "W", "Median power over the windows.", "avg W", ".3f", only_when_present=True,
      low=0),
    C("idle_power_w", "float", "W", "Idle power, measured before the first job in the same state.", low=0),
    C("energy_source", "str", "", "The power source: `none`, a meter, a source on the board (`... (on the "
                                   "device)`), or `emulated-...` for an emulator.", "energy source"),
    C("power_samples", "int", "", "Power samples inside the job's windows.", low=0),
    C("power_trace_file", "str", "", "`raw/<job_id>.power.npz`: the job's power trace (t_ns, voltage_v, "
                                     "current_a, power_w)."),
    C("valid", "bool", "", "False when an MLPerf rule is broken (window < 10 s, < 5 windows, < 662 samples "
                           "for p99, < 64 for p90) or a power rule is (< `min_samples` power samples in a "
                           "window, a silent or unplugged meter).", "valid"),
    C("invalid_reasons", "str", "", "Why `valid` is false, `; `-separated."),
    C("warnings", "str", "", "pyperf-style: stdev >= 10% of the mean, min or max >= 50% from the mean, "
                             "throughput spread between windows >= 10%; power frames dropped and "
                             "resynchronised; `; `-separated."),
    C("notes", "str", "", "Why a column is empty: no metric for the model's output, MACs onnx-tool cannot "
                          "count; `; `-separated."),
    C("raw_latency_file", "str", "", "`raw/<job_id>.npz`: `latency_ns` (every iteration, int64) and "
                                     "`windows` (start_ns, end_ns, iterations)."),
    C("finished_at", "str", "", "When the row was written (ISO 8601, UTC)."),
)
del C

# The report's results table: identity first, then accuracy, latency, cost and energy (not CSV order). A split
# job's stages (payload, head, transfer, tail, the measured link) are in the report's split-computing section.
REPORT_ORDER = (
    "workload", "variant", "backend", "precision", "threads", "batch_size", "link", "accuracy",
    "accuracy_delta", "latency_p50_ms", "latency_p50_ci_pct", "latency_p90_ms", "latency_p99_ms",
    "latency_mean_ms", "latency_std_ms",
    "h2d_ms", "d2h_ms", "throughput_ips", "macs", "params", "model_bytes", "weight_sparsity", "exit_rate",
    "expected_macs", "exit_path", "exit_skip_rate", "peak_rss_mb",
    "other_cpu_cores", "board",
    "energy_per_inference_mj", "energy_per_inference_above_idle_mj",
    "avg_power_w", "energy_source", "stopping_rule", "valid",
)

BY_NAME: dict[str, Column] = {c.name: c for c in COLUMN_DEFS}

# results.csv's header, in order
COLUMNS: list[str] = [c.name for c in COLUMN_DEFS]
# the job's key: the columns that identify a job across runs (compare joins on them)
KEY: list[str] = list(KEY_COLUMNS)
# read as numbers by the reports (empty cells become NaN)
NUMERIC: list[str] = [c.name for c in COLUMN_DEFS if c.kind in ("int", "float")]
BOOLEAN: list[str] = [c.name for c in COLUMN_DEFS if c.kind == "bool"]
# (column, header, format spec) for the report's results table
REPORT_COLUMNS: list[tuple[str, str, str | None]] = [(n, BY_NAME[n].header, BY_NAME[n].fmt)
                                                      for n in REPORT_ORDER]
REPORT_WHEN_PRESENT: frozenset[str] = frozenset(c.name for c in COLUMN_DEFS if c.only_when_present)


def _check() -> None:
    """Mistakes in the definitions above fail at import, not in a report."""
    if len(BY_NAME) != len(COLUMN_DEFS):
        raise AssertionError("harness/core/schema.py: a column is defined twice")
    for c in COLUMN_DEFS:
        if c.kind not in KINDS:
            raise AssertionError(f"harness/core/schema.py: column {c.name}: kind {c.kind!r}; accepted: "
                                 f"{', '.join(KINDS)}")
        if (c.low is not None or c.high is not None) and c.kind not in ("int", "float"):
            raise AssertionError(f"harness/core/schema.py: column {c.name}: a range on a {c.kind} column")
        if c.only_when_present and not c.header:
            raise AssertionError(f"harness/core/schema.py: column {c.name}: only_when_present without a header "
                                 f"(the flag is the report table's)")
        if not c.meaning.endswith("."):
            raise AssertionError(f"harness/core/schema.py: column {c.name}: its meaning is one sentence")
    with_header = {c.name for c in COLUMN_DEFS if c.header}
    if set(REPORT_ORDER) != with_header or len(REPORT_ORDER) != len(with_header):
        raise AssertionError(f"harness/core/schema.py: REPORT_ORDER must list each column with a header "
                             f"once; differs by {sorted(set(REPORT_ORDER) ^ with_header)}")
    if not set(KEY) <= set(COLUMNS):
        raise AssertionError("harness/core/schema.py: a key column is not a column")


_check()


def parse_cell(name: str, text: str):
    """A results.csv cell read back as its column's kind (None for an empty cell); ValueError when the
    text is not one that kind writes, or a number is not finite or outside the column's range."""
    column = BY_NAME[name]
    kind = column.kind
    if text == "":
        return None
    if kind == "str":
        return text
    if kind in ("int", "float"):
        if kind == "int":
            if text.strip() != text:
                raise ValueError(f"column {name}: {text!r} is not an integer")
            value = int(text)
        else:
            value = float(text)
            if not math.isfinite(value):
                raise ValueError(f"column {name}: {text!r} is not a finite number")
        if (column.low is not None and value < column.low) or (column.high is not None and value > column.high):
            raise ValueError(f"column {name}: {text!r}; accepted: {column.accepted()}")
        return value
    if kind == "bool":
        if text not in ("True", "False"):
            raise ValueError(f"column {name}: {text!r}; accepted: True or False")
        return text == "True"
    return json.loads(text)  # "json"


# ---- the README's column table ----

README_START = "<!-- columns:start -->"
README_END = "<!-- columns:end -->"
REGENERATE = "python -m harness.core.schema --update-readme README.md"


def markdown_table() -> str:
    """The README's results.csv column table: one row per column, in CSV order."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")
    lines = ["| column | type | unit | meaning |", "|---|---|---|---|"]
    lines += [f"| `{c.name}` | {c.kind} | {cell(c.unit)} | {cell(c.meaning)} |" for c in COLUMN_DEFS]
    return "\n".join(lines)


def readme_section(text: str, where: str = "README.md") -> str:
    """What the README has between the markers (without the blank lines around it)."""
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"{where}: no column table between {README_START} and {README_END}; "
                         f"add the two markers and run: {REGENERATE}")
    return text[start + len(README_START):end].strip("\n")


def with_readme_section(text: str, where: str = "README.md") -> str:
    """The README's text with the table between the markers replaced by markdown_table()."""
    readme_section(text, where)  # both markers present, in order
    start, end = text.find(README_START) + len(README_START), text.find(README_END)
    return f"{text[:start]}\n{markdown_table()}\n{text[end:]}"


def main(argv: list[str]) -> int:
    if argv[:1] == ["--update-readme"]:
        path = Path(argv[1] if len(argv) > 1 else "README.md")
        text = path.read_text()
        new = with_readme_section(text, str(path))
        if new != text:
            path.write_text(new)
        print(f"{path}: column table {'updated' if new != text else 'already up to date'}")
        return 0
    if argv:
        print("usage: python -m harness.core.schema [--update-readme [README.md]]", file=sys.stderr)
        return 2
    print(markdown_table())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
