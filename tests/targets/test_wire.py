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
    wire.Progress("window", 1, 5),
    wire.JobResult(0.97, 97, 100, [[1, 2, 3]], 10, 0.5, 80.0, {"runtime": "onnxruntime"},
                   latency_ns_b64="AAAA", exit_rate=0.4, warnings=["slow"],
                   device_energy=wire.DeviceEnergy({"avg_power_w": 3.1}, [], ["few samples"], "UEsD", {"name": "t"})),
    wire.JobFailed("skip", "no GPU here"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips_through_its_json_line(message):
    direction = wire.HOST_TO_AGENT if type(message) in (wire.ClockPing, wire.JobRequest) else wire.AGENT_TO_HOST
    line = wire.encode(message)
    assert "\n" not in line
    assert wire.decode(line, direction) == message


def test_a_result_carries_board_side_energy_as_a_typed_message():
    decoded = wire.decode(wire.encode(MESSAGES[5]), wire.AGENT_TO_HOST)
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


def test_an_agent_of_another_version_is_named_by_its_version():
    old = json.dumps({"type": "hello", "protocol": 2, "facts": {}})  # what edgebench's wire version 2 sent
    with pytest.raises(wire.WireError, match=f"speaks wire version 2, this host speaks {wire.WIRE_VERSION}"):
        wire.decode(old, wire.AGENT_TO_HOST)


def test_a_message_in_the_wrong_direction_is_refused():
    with pytest.raises(wire.WireError, match="unexpected message type 'result'"):
        wire.decode(wire.encode(MESSAGES[5]), wire.HOST_TO_AGENT)
