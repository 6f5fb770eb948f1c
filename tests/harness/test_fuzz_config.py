"""Every config file, fuzzed the way a hostile user would edit it (hypothesis): any key of a valid target,
suite or workload file set to any TOML value (nan, inf, huge, negative, empty, wrong type, a table), or an
unknown key added. Reading it either succeeds or fails with ONE line naming the file: never another
exception, never a traceback."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import tomllib
from helpers import tiny_workload_toml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.app.suite import parse_suite
from harness.core.errors import ConfigError
from power.registry import power_spec
from targets.spec import check_backend_options, parse_target
from workloads.models import check_params
from workloads.spec import parse_workload

FILE = Path("/fuzz/file.toml")

SCALARS = st.one_of(
    st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["", "all", "none", "-oProxyCommand=x", "../x", "a/b", "x" * 300, "UINT8", "cpu-load"]))
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(st.text(max_size=6), SCALARS, max_size=2))

SUITE = {"suite": {"name": "s", "description": "", "workloads": ["digits-cnn"]},
         "protocol": {"warmup_min_iterations": 3, "warmup_min_s": 0.01, "n_windows": 2, "window_min_s": 0.05,
                      "window_min_iterations": 20},
         "matrix": {"backends": ["onnxruntime"], "threads": [1, "all"], "batch_sizes": [1]}}
CPU_TARGET = {"target": {"name": "t", "adapter": "cpu", "description": "", "backends": ["onnxruntime", "litert"],
                         "job_timeout_s": 900},
              "backends": {"onnxruntime": {"graph_optimization_level": "all", "allow_spinning": True},
                           "litert": {"use_xnnpack": True}},
              "power": {"source": "emulated-ina219", "rate_hz": 1000.0, "idle_s": 1.0, "min_samples": 20,
                        "strict": False, "profile": "cpu-load"}}
BOARD_TARGET = {"target": {"name": "b", "adapter": "rpi", "backends": ["onnxruntime"], "host": "raspberrypi",
                           "user": "pi", "port": 22, "python": "~/eb/bin/python", "workdir": "~/.cache/eb",
                           "strict_host_key_checking": "yes", "pin_cpus": "2-3"},
                "power": {"source": "um25c", "port": "/dev/rfcomm0", "baud": 9600, "rate_hz": 2.0}}
WORKLOAD = tomllib.loads(tiny_workload_toml().replace("    ", "") + """
[[variants]]
name = "int8"
family = "quantize"
scheme = "ort-static"
calibration_samples = 50
[[variants]]
name = "half"
family = "prune"
amount = 0.5
""")


def read_target(data: dict) -> None:
    target = parse_target(data, FILE)
    power_spec(target.power_table, f"{FILE}: [power]")  # resolved by the runner before anything runs
    for name, options in target.backend_options.items():
        check_backend_options(name, options, f"{FILE}: [backends.{name}]")


def read_workload(data: dict) -> None:
    workload = parse_workload(data, FILE)
    if workload.model.arch:
        check_params(workload.model.arch, workload.model.params, str(FILE))


def paths(data, prefix=()):
    """Every (table path, key) of a document, [[arrays]] of tables included."""
    for key, value in data.items():
        yield prefix, key
        if isinstance(value, dict):
            yield from paths(value, prefix + (key,))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for i, item in enumerate(value):
                yield from paths(item, prefix + (key, i))


def mutated(base: dict, choice: int, value, new_key: str | None) -> dict:
    doc = copy.deepcopy(base)
    places = list(paths(doc))
    prefix, key = places[choice % len(places)]
    table = doc
    for part in prefix:
        table = table[part]
    if new_key is not None:
        table[new_key] = value
    else:
        table[key] = value
    return doc


@pytest.mark.parametrize("base, read", [(SUITE, lambda d: parse_suite(d, FILE)), (CPU_TARGET, read_target),
                                        (BOARD_TARGET, read_target), (WORKLOAD, read_workload)],
                         ids=["suite", "cpu-target", "board-target", "workload"])
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(choice=st.integers(min_value=0, max_value=10_000), value=VALUES,
       new_key=st.one_of(st.none(), st.text(min_size=1, max_size=8)))
def test_any_value_for_any_key_is_accepted_or_refused_in_one_line(base, read, choice, value, new_key):
    doc = mutated(base, choice, value, new_key)
    try:
        read(doc)
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message and str(FILE) in message, message
