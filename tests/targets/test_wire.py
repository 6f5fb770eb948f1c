"""The agent's wire contract: every message survives its JSON form, and what is not a message of this
version is refused with a reason."""

from __future__ import annotations

import json

import pytest

from targets.agent import wire

MESSAGES = [
    wire.Hello({"hostname": "rpi", "cpu_count": 4}),
    wire.ClockPing(),
    wire.ClockReply(123_456_789),
    wire.JobRequest("w__v__onnxruntime__t1__b1", "onnxruntime", "targets.backends.ort_backend:OrtBackend", 1, 1,
                    {"allow_spinning": False}, {"files": {"onnx": "/x.onnx"}}, {"n_windows": 2},
                    power={"source": "tegrastats"}),
    wire.JobRequest("w__split__onnxruntime__t1__b1__10mbit-5ms", "onnxruntime",
                    "targets.backends.ort_backend:OrtBackend", 1, 1, {}, {"files": {"head": "/h.onnx"}},
                    {"n_windows": 2}, split={"host": "10.231.0.2", "port": 40123, "delay_ms": 5.0,
                                             "probe_bytes": 65536, "timeout_s": 30.0}),
    wire.ServeRequest("w__split__onnxruntime__t1__b1__10mbit-5ms", "onnxruntime",
                      "targets.backends.ort_backend:OrtBackend", 2, {}, {"files": {"tail": "/t.onnx"}},
                      "10.231.0.2", 0, 5.0),
    wire.Serving("10.231.0.2", 40123),
    wire.Progress("window", 1, 5),
    wire.JobResult(0.97, 97, 100, [[1, 2, 3]], 10, 0.5, 80.0, {"runtime": "onnxruntime"},
                   latency_ns_b64="AAAA", exit_rate=0.4, warnings=["slow"],
                   device_energy=wire.DeviceEnergy({"avg_power_w": 3.1}, [], ["few samples"], "UEsD", {"name": "t"})),
    wire.JobResult(0.9, 90, 100, [[1, 2, 3]], 10, 0.5, 80.0, {}, latency_ns_b64="AAAA",
                   split_times={"head_ms": 1.5, "serialize_ms": 0.01, "transfer_ms": 12.5, "tail_ms": 3.0},
                   payload_bytes=3136, link_measured_mbit=9.6, link_rtt_ms=10.4),
    wire.JobFailed("skip", "no GPU here"),
]
HOST_TO_AGENT_TYPES = (wire.ClockPing, wire.JobRequest, wire.ServeRequest)


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips_through_its_json_line(message):
    direction = wire.HOST_TO_AGENT if isinstance(message, HOST_TO_AGENT_TYPES) else wire.AGENT_TO_HOST
    line = wire.encode(message)
    assert "\n" not in line
    assert wire.decode(line, direction) == message


def test_a_result_carries_board_side_energy_as_a_typed_message():
    decoded = wire.decode(wire.encode(MESSAGES[8]), wire.AGENT_TO_HOST)
    assert isinstance(decoded.device_energy, wire.DeviceEnergy)
    assert decoded.device_energy.warnings == ["few samples"]


@pytest.mark.parametrize("line, reason", [
    ("not json", "not JSON"),
    (json.dumps({"type": "job"}), "missing"),
    (json.dumps({"type": "progress", "phase": "load", "done": 0, "total": 1, "colour": "red"}), "colour"),
    (json.dumps({"type": "launch"}), "unexpected message type 'launch'"),
    (json.dumps([1, 2]), "unexpected message type 'list'"),
    (json.dumps({"type": "progress", "phase": "lunch", "done": 0, "total": 1}), "progress phase 'lunch'"),
    (json.dumps({"type": "error", "kind": "oops", "message": "?"}), "error kind 'oops'"),
])
def test_what_is_not_a_message_is_refused_with_the_reason(line, reason):
    direction = {**wire.HOST_TO_AGENT, **wire.AGENT_TO_HOST}
    with pytest.raises(wire.WireError, match=reason):
        wire.decode(line, direction)


SPLIT = {"host": "10.231.0.2", "port": 40123, "delay_ms": 5.0, "probe_bytes": 65536}


def job_line(split) -> str:
    message = wire.JobRequest("j", "onnxruntime", "m:C", 1, 1, {}, {}, {}, split=split)
    return wire.encode(message)


@pytest.mark.parametrize("split, reason", [
    ("10.231.0.2:40123", "job split '10.231.0.2:40123'; expected an object with host, port"),
    ({k: v for k, v in SPLIT.items() if k != "port"}, "job split with missing port; expected the keys"),
    (dict(SPLIT, relay="x"), "job split with unknown relay; expected the keys host, port, delay_ms, probe_bytes "
                             r"\(optional: timeout_s, accuracy_pass\)"),
    (dict(SPLIT, host=""), "job split host ''; expected a non-empty string"),
    (dict(SPLIT, port=0), r"job split port 0; expected an integer in 1..65535"),
    (dict(SPLIT, port=True), r"job split port True; expected an integer in 1..65535"),
    (dict(SPLIT, delay_ms=-1), "job split delay_ms -1; expected a number >= 0"),
    (dict(SPLIT, probe_bytes=1.5), "job split probe_bytes 1.5; expected an integer >= 0"),
    (dict(SPLIT, timeout_s=0), "job split timeout_s 0; expected a number > 0"),
])
def test_a_split_plan_that_cannot_be_followed_is_refused(split, reason):
    with pytest.raises(wire.WireError, match=reason):
        wire.decode(job_line(split), wire.HOST_TO_AGENT)


@pytest.mark.parametrize("line, reason", [
    (json.dumps({"type": "serving", "host": "0.0.0.0", "port": 70000}), "serving port 70000"),
    (json.dumps({"type": "serving", "host": None, "port": 1}), "serving host None"),
    (json.dumps({"type": "result", "accuracy": 1.0, "n_correct": 1, "n_eval": 1, "windows": [],
                 "warmup_iterations": 0, "warmup_s": 0.0, "peak_rss_mb": 1.0, "backend_info": {},
                 "split_times": {"head_ms": 1.0}}), "result split_times .*expected the keys head_ms"),
])
def test_split_messages_that_are_not_well_formed_are_refused(line, reason):
    with pytest.raises(wire.WireError, match=reason):
        wire.decode(line, wire.AGENT_TO_HOST)


def test_a_serve_request_with_a_negative_delay_is_refused():
    message = wire.ServeRequest("j", "onnxruntime", "m:C", 1, {}, {}, "127.0.0.1", 0, -5.0)
    with pytest.raises(wire.WireError, match="serve delay_ms -5.0; expected a number >= 0"):
        wire.decode(wire.encode(message), wire.HOST_TO_AGENT)
    with pytest.raises(wire.WireError, match="unexpected message type 'serving'"):
        wire.decode(wire.encode(wire.Serving("127.0.0.1", 1)), wire.HOST_TO_AGENT)


def test_an_agent_of_another_version_is_named_by_its_version():
    old = json.dumps({"type": "hello", "protocol": 2, "facts": {}})  # what edgebench's wire version 2 sent
    with pytest.raises(wire.WireError, match=f"speaks wire version 2, this host speaks {wire.WIRE_VERSION}"):
        wire.decode(old, wire.AGENT_TO_HOST)
    before_split = json.dumps({"type": "hello", "wire_version": 3, "facts": {}})
    with pytest.raises(wire.WireError, match=f"speaks wire version 3, this host speaks {wire.WIRE_VERSION}"):
        wire.decode(before_split, wire.AGENT_TO_HOST)


def test_a_message_in_the_wrong_direction_is_refused():
    with pytest.raises(wire.WireError, match="unexpected message type 'result'"):
        wire.decode(wire.encode(MESSAGES[8]), wire.HOST_TO_AGENT)
