"""The two-agent data plane of a split job on 127.0.0.1: real agent processes (the cpu target's), real
ONNX head and tail models run by onnxruntime, real TCP between them."""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from helpers import write
from onnx import TensorProto, helper, numpy_helper

from harness.core.errors import ConfigError, JobError, SkipJob
from harness.core.jobs import Artifact, Job
from harness.core.measurement import MeasurementProtocol
from targets.agent import dataplane
from targets.agent_driver import serve_request, wait_serving
from targets.base import SplitPlan
from targets.cpu import CpuSession, LocalAgent
from targets.spec import find_target

N_IN, N_MID, N_CLASSES, N_EVAL = 16, 24, 5, 300
SCALE = 0.05
PROTOCOL = MeasurementProtocol(warmup_min_iterations=3, warmup_min_s=0.01, n_windows=2, window_min_s=0.05,
                               window_min_iterations=20)
LOOPBACK = "127.0.0.1"


def _model(path: Path, nodes, inputs, outputs, weights) -> str:
    graph = helper.make_graph(nodes, path.stem, inputs, outputs,
                              [numpy_helper.from_array(v, k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return str(path)


def _tensor(name, elem, width):
    return helper.make_tensor_value_info(name, elem, ["N", width])


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """A two-layer classifier, whole and cut after its first layer: an fp32 cut (payload = the hidden
    activations) and a uint8 cut (QuantizeLinear in the head, DequantizeLinear in the tail)."""
    root = tmp_path_factory.mktemp("split-models")
    rng = np.random.default_rng(0)
    weights = {"w1": rng.normal(size=(N_IN, N_MID)).astype(np.float32),
               "w2": rng.normal(size=(N_MID, N_CLASSES)).astype(np.float32),
               "b2": rng.normal(size=N_CLASSES).astype(np.float32),
               "scale": np.array(SCALE, np.float32), "zero": np.array(0, np.uint8)}
    first = [helper.make_node("MatMul", ["x", "w1"], ["h0"]), helper.make_node("Relu", ["h0"], ["h"])]
    second = [helper.make_node("MatMul", ["h", "w2"], ["m"]), helper.make_node("Add", ["m", "b2"], ["logits"])]
    x_in, logits = _tensor("x", TensorProto.FLOAT, N_IN), _tensor("logits", TensorProto.FLOAT, N_CLASSES)
    h_f32, h_u8 = _tensor("h", TensorProto.FLOAT, N_MID), _tensor("q", TensorProto.UINT8, N_MID)
    pick = lambda *names: {k: weights[k] for k in names}  # noqa: E731
    files = {
        "whole": _model(root / "whole.onnx", first + second, [x_in], [logits], pick("w1", "w2", "b2")),
        "head": _model(root / "head.onnx", first, [x_in], [h_f32], pick("w1")),
        "tail": _model(root / "tail.onnx", second, [h_f32], [logits], pick("w2", "b2")),
        "head_u8": _model(root / "head_u8.onnx", first + [helper.make_node("QuantizeLinear", ["h", "scale", "zero"],
                                                                           ["q"])],
                          [x_in], [h_u8], pick("w1", "scale", "zero")),
        "tail_u8": _model(root / "tail_u8.onnx", [helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["h"])]
                          + second, [h_u8], [logits], pick("w2", "b2", "scale", "zero")),
    }
    x = rng.normal(size=(N_EVAL, N_IN)).astype(np.float32)
    predicted = run_onnx(files["whole"], x).argmax(axis=1)
    y = np.where(rng.random(N_EVAL) < 0.7, predicted, (predicted + 1) % N_CLASSES).astype(np.int64)
    np.savez(root / "eval.npz", x=x, y=y)
    files["eval"] = str(root / "eval.npz")
    files["x"], files["y"] = x, y
    return files


def run_onnx(path: str, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def local_accuracy(models: dict, *stages: str) -> float:
    out = models["x"]
    for stage in stages:
        out = run_onnx(models[stage], out)
    return float((out.argmax(axis=1) == models["y"]).mean())


def artifact(models: dict, strategy: str, head: str | None, tail: str, dtype: str, payload_per_sample: int) -> dict:
    """The artifact as a local agent sees it."""
    return split_artifact(models, strategy, head, tail, dtype, payload_per_sample).to_dict()


def split_artifact(models: dict, strategy: str, head: str | None, tail: str, dtype: str,
                   payload_per_sample: int) -> Artifact:
    files = {"tail": models[tail]} if head is None else {"head": models[head], "tail": models[tail]}
    return Artifact(
        workload="w", variant=strategy, family=strategy, precision="fp32", files=files, eval_data=models["eval"],
        n_eval=N_EVAL, n_classes=N_CLASSES, model_bytes=1, params=1, macs=1,
        split={"strategy": strategy, "point": "input" if head is None else "h", "point_index": None,
               "payload_dtype": dtype, "payload_shape": [N_MID], "payload_bytes": payload_per_sample,
               "input_bytes": N_IN * 4, "head_macs": 1, "tail_macs": 1, "head_params": 1, "head_bytes": 1},
    )


def job(batch: int = 1, backend: str = "onnxruntime") -> Job:
    return Job("w", "split", "split", "fp32", "cpu", backend, 1, batch, "loopback")


@pytest.fixture(scope="module")
def cpu():
    return CpuSession(find_target("cpu"))


def run_split(cpu, staged: dict, batch: int = 1, delay_ms: float = 0.0, protocol=PROTOCOL, server_wrapper=()):
    with cpu.serve(job(batch), staged, {}, LOOPBACK, delay_ms=delay_ms, wrapper=server_wrapper) as (host, port):
        assert host == LOOPBACK and port > 0
        plan = SplitPlan(host, port, delay_ms, probe_bytes=1 << 20)
        return cpu.run(job(batch), staged, protocol, {}, lambda *_: None, split=plan)


def check_parts(m, head: bool = True) -> None:
    """The four parts are positive (offload has no head: ~0), and head + serialise + reply (= transfer +
    tail) fits in end to end."""
    parts = m.split_times
    assert sorted(parts) == ["head_ms", "serialize_ms", "tail_ms", "transfer_ms"]
    assert all(v > 0 for k, v in parts.items() if head or k != "head_ms"), parts
    assert parts["head_ms"] > 0.005 if head else 0 <= parts["head_ms"] < 0.005, parts
    end_to_end_ms = float(np.median(m.latency_ns)) / 1e6
    inside = sum(parts.values())
    assert inside <= end_to_end_ms * 1.15 + 0.05, (parts, end_to_end_ms)
    assert inside >= end_to_end_ms * 0.5, (parts, end_to_end_ms)  # bookkeeping is not the bulk of a call


def test_a_split_job_runs_its_head_here_and_its_tail_in_the_server_agent(cpu, models):
    m = run_split(cpu, artifact(models, "split", "head", "tail", "fp32", N_MID * 4), batch=4)
    assert m.n_eval == N_EVAL and m.accuracy == local_accuracy(models, "whole")  # the cut changes nothing
    assert 0.5 < m.accuracy < 0.9  # the labels are not the model's own: a broken chain would show
    check_parts(m)
    assert m.payload_bytes == 4 * N_MID * 4  # batch 4 of fp32 hidden activations
    assert 0 < m.link_rtt_ms < 5 and m.link_measured_mbit > 100  # loopback
    assert m.backend_info["runtime"] == "onnxruntime" and m.backend_info["split_server"].startswith("server agent")
    assert len(m.latency_ns) >= 2 * PROTOCOL.window_min_iterations


def test_a_uint8_payload_crosses_as_one_byte_per_value_and_keeps_the_accuracy(cpu, models):
    m = run_split(cpu, artifact(models, "split", "head_u8", "tail_u8", "int8", N_MID))
    assert m.accuracy == local_accuracy(models, "head_u8", "tail_u8")
    assert m.payload_bytes == N_MID
    check_parts(m)


def test_offload_sends_the_raw_input_and_runs_the_whole_model_on_the_server(cpu, models):
    m = run_split(cpu, artifact(models, "offload", None, "whole", "fp32", N_IN * 4), batch=2)
    assert m.accuracy == local_accuracy(models, "whole")
    assert m.payload_bytes == 2 * N_IN * 4
    assert m.backend_info == {"split_server": m.backend_info["split_server"]}  # no head ran on the device
    check_parts(m, head=False)


def test_the_data_planes_delay_is_added_once_each_way(cpu, models):
    m = run_split(cpu, artifact(models, "split", "head", "tail", "fp32", N_MID * 4), delay_ms=20.0)
    transfer = m.split_times["transfer_ms"]
    assert 40.0 <= transfer < 40.0 + 15.0, m.split_times  # loopback itself costs well under 1 ms
    assert 40.0 <= m.link_rtt_ms < 55.0
    assert float(np.median(m.latency_ns)) / 1e6 >= 40.0
    assert m.split_times["tail_ms"] < 5.0  # the server's hold is not its compute time
    check_parts(m)


def test_a_server_agent_killed_mid_job_fails_the_job_naming_the_server(cpu, models, tmp_path):
    staged = artifact(models, "split", "head", "tail", "fp32", N_MID * 4)
    long = MeasurementProtocol(warmup_min_iterations=1, warmup_min_s=0.0, n_windows=3, window_min_s=30.0,
                               window_min_iterations=1)
    with LocalAgent(1) as server:
        server.client.hello()
        serving = wait_serving(server.client, serve_request(job(), staged, {}, LOOPBACK), 60)
        timing, outcome = threading.Event(), {}

        def device():
            plan = SplitPlan(serving.host, serving.port, 0.0, 1 << 16, timeout_s=30.0)
            try:
                cpu.run(job(), staged, long, {}, lambda phase, *_: phase == "warmup" and timing.set(), split=plan)
            except JobError as exc:
                outcome["error"], outcome["at"] = exc, time.monotonic()

        thread = threading.Thread(target=device)
        thread.start()
        assert timing.wait(60), "the device job never started timing"
        time.sleep(0.3)
        killed_at = time.monotonic()
        server.process.kill()
        thread.join(30)
    assert not thread.is_alive()
    error = outcome["error"]
    assert not isinstance(error, SkipJob)
    assert f"server agent at {LOOPBACK}:{serving.port} lost" in str(error)
    assert outcome["at"] - killed_at < 5.0


def test_a_server_that_does_not_answer_fails_the_job_at_the_plans_timeout(cpu, models):
    """A dropped link sends no reset: the device's socket timeout ends the job, not the host's idle bound."""
    silent = socket.create_server((LOOPBACK, 0))  # accepts (the kernel's backlog) and never answers
    try:
        plan = SplitPlan(LOOPBACK, silent.getsockname()[1], 0.0, 0, timeout_s=1.5)
        started = time.monotonic()
        with pytest.raises(JobError, match=rf"server agent at {LOOPBACK}:\d+ did not answer within 1.5 s"):
            cpu.run(job(), artifact(models, "split", "head", "tail", "fp32", N_MID * 4), PROTOCOL, {},
                    lambda *_: None, split=plan)
        assert time.monotonic() - started < 15
    finally:
        silent.close()


def test_nothing_listening_fails_the_job_naming_the_address(cpu, models):
    with socket.create_server((LOOPBACK, 0)) as taken:
        port = taken.getsockname()[1]
    with pytest.raises(JobError, match=rf"server agent at {LOOPBACK}:{port} unreachable"):
        cpu.run(job(), artifact(models, "split", "head", "tail", "fp32", N_MID * 4), PROTOCOL, {},
                lambda *_: None, split=SplitPlan(LOOPBACK, port, 0.0, 0))


def test_a_split_artifact_without_its_head_is_refused_before_connecting(cpu, models):
    staged = artifact(models, "split", None, "tail", "fp32", N_MID * 4)
    staged["split"]["strategy"] = "split"  # only offload may send the raw input
    with pytest.raises(JobError, match=r"a split artifact without files\['head'\] \(it has tail\)"):
        cpu.run(job(), staged, PROTOCOL, {}, lambda *_: None, split=SplitPlan(LOOPBACK, 9, 0.0, 0))


def test_a_backend_that_runs_no_onnx_cannot_serve_a_tail(cpu, models):
    staged = artifact(models, "split", "head", "tail", "fp32", N_MID * 4)
    with pytest.raises(SkipJob, match="server agent: backend torch cannot run the tail of a split model"):
        with cpu.serve(job(backend="torch"), staged, {}, LOOPBACK):
            pass


# --- frames, in process: a TailServer over a real onnxruntime tail ---------------------------------------


class OrtStage:
    def __init__(self, path: str):
        self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        self.name = self.session.get_inputs()[0].name

    def predict(self, x):
        return self.session.run(None, {self.name: x})[0]


@pytest.fixture
def server(models):
    server = dataplane.TailServer(OrtStage(models["tail"]), LOOPBACK).start()
    yield server
    server.close()


def raw_frame(header: dict | bytes, payload: bytes = b"") -> bytes:
    data = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack(">I", len(data)) + data + payload


def exchange_raw(server, data: bytes) -> tuple:
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(data)
        return dataplane.recv_frame(sock)[:2]


def test_a_tensor_frame_comes_back_as_the_tails_logits_with_its_time(server, models):
    h = run_onnx(models["head"], models["x"][:8])
    header, payload = exchange_raw(server, dataplane.tensor_frame(h))
    assert header["kind"] == "tensor" and header["tail_ns"] > 0
    np.testing.assert_array_equal(dataplane.tensor_of(header, payload), run_onnx(models["tail"], h))


@pytest.mark.parametrize("data, reason", [
    (struct.pack(">I", dataplane.MAX_HEADER_BYTES + 1), "a frame header of 16385 bytes; at most 16384"),
    (raw_frame({"kind": "tensor", "dtype": "object", "shape": [1], "n_bytes": 8}), "tensor dtype 'object'"),
    (raw_frame({"kind": "tensor", "dtype": "float32", "shape": [2, 24], "n_bytes": 8}, b"\0" * 8),
     r"tensor of shape \[2, 24\] float32 is 192 bytes; the frame says 8"),
    (raw_frame({"kind": "tensor", "dtype": "float32", "shape": [1], "n_bytes": 2 ** 40}),
     "tensor frame n_bytes 1099511627776"),
    (raw_frame({"kind": "pickle", "n_bytes": 0}), "frame kind 'pickle'"),
    (raw_frame(b"\xff{not json"), "not UTF-8 JSON"),
])
def test_a_bad_frame_is_refused_with_the_reason_and_the_connection_closed(server, data, reason):
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(data)
        header, _, _ = dataplane.recv_frame(sock)
        assert header["kind"] == "error"
        assert "the server refused a frame" in header["message"]
        assert re.search(reason, header["message"]), header["message"]
        assert sock.recv(1) == b""  # closed: a stream cannot be trusted after a bad frame
    assert server.frames_served == 0


def test_a_tail_that_fails_answers_with_its_reason(server):
    wrong = np.zeros((1, 3), np.float32)  # the tail takes 24 features
    header, _ = exchange_raw(server, dataplane.tensor_frame(wrong))
    assert header["kind"] == "error" and "the tail failed on the server" in header["message"]


def test_the_device_refuses_a_bad_reply_and_names_the_server():
    with socket.create_server((LOOPBACK, 0)) as listener:
        port = listener.getsockname()[1]

        def answer_badly():
            conn, _ = listener.accept()
            with conn:
                dataplane.recv_frame(conn)
                conn.sendall(raw_frame({"kind": "tensor", "dtype": "complex64", "shape": [1], "n_bytes": 8},
                                       b"\0" * 8))

        thread = threading.Thread(target=answer_badly)
        thread.start()
        link = dataplane.ServerLink(LOOPBACK, port, timeout_s=10)
        with pytest.raises(dataplane.LinkError, match=rf"server agent at {LOOPBACK}:{port} sent a bad frame: "
                                                      r"tensor dtype 'complex64'"):
            link.exchange(dataplane.tensor_frame(np.zeros(2, np.float32)))
        link.close()
        thread.join(10)


def test_pings_and_probes_measure_the_link(server):
    link = dataplane.ServerLink(server.host, server.port, timeout_s=10)
    try:
        rtt_ms = link.rtt_ms()
        assert 0 < rtt_ms < 5
        assert link.throughput_mbit(4 << 20, rtt_ms) > 100  # loopback moves gigabits
        assert link.throughput_mbit(0, rtt_ms) is None
    finally:
        link.close()


def test_the_session_interface_says_which_targets_cannot_split(tmp_path):
    from targets.base import Session

    class Bare(Session):
        class spec:  # noqa: N801
            name = "fpga-box"

        def info(self):
            return {}

        def run(self, *args, **kwargs):
            raise AssertionError

    with pytest.raises(SkipJob, match="target fpga-box cannot serve the tail of a split job"):
        Bare().serve(job(), {}, {}, LOOPBACK)
    Bare().set_agent_wrapper([])  # nothing to wrap: fine anywhere
    with pytest.raises(ConfigError, match="target fpga-box cannot run its agent inside 'ip netns exec dev'"):
        Bare().set_agent_wrapper(["ip", "netns", "exec", "dev"])


def test_the_cpu_targets_agents_run_under_the_wrappers_they_are_given(cpu, models, tmp_path):
    def wrapper(name: str) -> str:
        script = tmp_path / f"{name}.sh"
        script.write_text(f'#!/bin/sh\ntouch "{tmp_path / name}.ran"\nexec "$@"\n')
        script.chmod(0o755)
        return str(script)

    cpu.set_agent_wrapper([wrapper("device")])
    try:
        m = run_split(cpu, artifact(models, "split", "head", "tail", "fp32", N_MID * 4),
                      server_wrapper=[wrapper("server")])
        assert (tmp_path / "device.ran").exists() and (tmp_path / "server.ran").exists()
        assert m.accuracy == local_accuracy(models, "whole")
        cpu.set_agent_wrapper([str(tmp_path / "missing")])
        with pytest.raises(JobError, match="cannot start the agent as"):
            cpu.run(job(), {}, PROTOCOL, {}, lambda *_: None)
    finally:
        cpu.set_agent_wrapper([])


# --- a board (the test sshd on 127.0.0.1) as the device, and as the server ------------------------------


@pytest.fixture(scope="module")
def board_session(tmp_path_factory):
    from sshd import SSHD, start_board

    from targets.registry import load_adapter

    if not os.path.exists(SSHD):
        pytest.skip("OpenSSH server not installed (apt-get install openssh-server; .ci/run does)")
    root = tmp_path_factory.mktemp("board")
    board = start_board(root)
    spec = find_target(str(write(root / "rpi.toml", board.target_toml("rpi", ["onnxruntime"]))))
    session = load_adapter(spec.adapter, "test")(spec).open()
    yield session
    session.close()
    board.stop()


def test_a_board_runs_the_head_and_reaches_the_server_at_the_address_it_is_given(cpu, board_session, models):
    staged_here = artifact(models, "split", "head", "tail", "fp32", N_MID * 4)
    staged_there = board_session.stage(split_artifact(models, "split", "head", "tail", "fp32", N_MID * 4))
    assert staged_there["files"]["head"] != models["head"]  # the board runs its own copy
    with cpu.serve(job(), staged_here, {}, LOOPBACK) as (host, port):
        m = board_session.run(job(), staged_there, PROTOCOL, {}, lambda *_: None,
                              split=SplitPlan(host, port, 0.0, 1 << 16))
    assert m.accuracy == local_accuracy(models, "whole") and m.payload_bytes == N_MID * 4
    check_parts(m)
    assert abs(m.clock_offset_ns) <= m.clock_uncertainty_ns + 50_000  # the board's windows map to this clock


def test_a_board_serves_the_tail_without_a_wrapper(cpu, board_session, models):
    staged_there = board_session.stage(split_artifact(models, "split", "head", "tail", "fp32", N_MID * 4))
    with board_session.serve(job(), staged_there, {}, LOOPBACK) as (host, port):
        m = cpu.run(job(), artifact(models, "split", "head", "tail", "fp32", N_MID * 4), PROTOCOL, {},
                    lambda *_: None, split=SplitPlan(host, port, 0.0, 1 << 16))
    assert m.accuracy == local_accuracy(models, "whole")
    with pytest.raises(ConfigError, match="target rpi-local cannot run its agent inside 'ip netns exec srv'"):
        with board_session.serve(job(), staged_there, {}, LOOPBACK, wrapper=["ip", "netns", "exec", "srv"]):
            pass


def test_a_payload_larger_than_one_buffer_arrives_whole_and_memory_follows_what_arrives():
    a, b = socket.socketpair()
    tensor = np.arange(3 * dataplane.GROW_BYTES // 4 + 12345, dtype=np.float32)  # 3x one buffer, and a bit
    sender = threading.Thread(target=lambda: a.sendall(dataplane.tensor_frame(tensor)))
    sender.start()
    header, payload, _ = dataplane.recv_frame(b)
    sender.join()
    assert header["n_bytes"] == tensor.nbytes and np.array_equal(dataplane.tensor_of(header, payload), tensor)
    # a header that promises 512 MiB and then stops: what was allocated is what arrived, not 512 MiB
    a.sendall(dataplane.frame_header({"kind": "tensor", "dtype": "uint8", "shape": [512 << 20],
                                      "n_bytes": 512 << 20}) + b"x" * 1000)
    a.close()
    with pytest.raises(ConnectionError, match="1000 of 4194304 bytes"):
        dataplane.recv_frame(b)
    b.close()
