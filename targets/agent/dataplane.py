"""The data plane of a split job: the device agent sends each inference's payload straight to the server
agent over TCP, and the server answers with the logits and its own compute time. Board-side: Python 3.8,
the standard library and numpy.

A frame is a 4-byte big-endian header length, the header (UTF-8 JSON) and header["n_bytes"] raw bytes:

    tensor  {"kind": "tensor", "dtype", "shape", "n_bytes"}  a payload; the server's reply (the first output
                                                              of the tail) adds "tail_ns"
    ping    {"kind": "ping", "n_bytes": 0}                    answered at once by "pong" (round trip time)
    probe   {"kind": "probe", "n_bytes": N}                   N bytes the server discards, then answers "ack"
    close   {"kind": "close", "n_bytes": 0}                   the device is done
    error   {"kind": "error", "message", "n_bytes": 0}        what the server could not serve, and why

No pickle: tensors are raw bytes of an allow-listed dtype, and header and payload sizes are bounded, so a
stray connection cannot make either side execute anything, nor allocate more than the bytes it sends
(and at most MAX_CONNECTIONS at once). Delay: `delay_ms` is a one-way delay
added at each receiver (a frame is held until its last byte's arrival + delay_ms), so a request and its
reply cost 2 x delay_ms more; the rate is the kernel's (tbf on a veth pair) or the real network's.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from array import array

import numpy as np

from targets.backends.base import ModelCalls

clock_ns = time.monotonic_ns

LENGTH = struct.Struct(">I")
MAX_HEADER_BYTES = 16 * 1024
MAX_PAYLOAD_BYTES = 1 << 30        # a batch of 64 ImageNet images in fp32 is 38 MB
MAX_MESSAGE_CHARS = 2000           # an error frame's message
DTYPES = ("float32", "float16", "float64", "uint8", "int8", "int32", "int64", "bool")
TENSOR, PING, PONG, PROBE, ACK, CLOSE, ERROR = KINDS = ("tensor", "ping", "pong", "probe", "ack", "close", "error")
PROBE_CHUNK_BYTES = 1 << 16
GROW_BYTES = 1 << 22               # a payload up to this size is received into one buffer
MAX_CONNECTIONS = 4                # a server serves one device; a few spare for a reconnect
IDLE_TIMEOUT_S = 600.0             # a connection silent this long (a device gone without a FIN) is closed
# Looked up, not computed, per frame: numpy's dtype.name and np.prod cost microseconds each, and a frame's
# framing time is part of what the data plane measures.
DTYPE_NAMES = {np.dtype(name).str: name for name in DTYPES}   # "<f4" -> "float32" (byte order included)
ITEMSIZES = {name: np.dtype(name).itemsize for name in DTYPES}


class FrameError(ValueError):
    """Bytes that are not a frame of this data plane."""


def frame_header(header: dict) -> bytes:
    """The length prefix and the JSON header of a frame (its raw bytes follow)."""
    data = json.dumps(header).encode()
    if len(data) > MAX_HEADER_BYTES:
        raise FrameError("a frame header of {} bytes; at most {} are accepted".format(len(data), MAX_HEADER_BYTES))
    return LENGTH.pack(len(data)) + data


def dtype_name(array_: np.ndarray) -> str:
    name = DTYPE_NAMES.get(array_.dtype.str)
    if name is None:
        raise FrameError("tensor dtype {!r} ({}); accepted: {} in this machine's byte order".format(
            array_.dtype.name, array_.dtype.str, ", ".join(DTYPES)))
    return name


def tensor_header(array_: np.ndarray, **extra) -> bytes:
    header = {"kind": TENSOR, "dtype": dtype_name(array_), "shape": list(array_.shape), "n_bytes": array_.nbytes}
    header.update(extra)
    return frame_header(header)


def tensor_frame(array_: np.ndarray, **extra) -> bytes:
    """One frame holding `array_` (C-contiguous) as raw bytes: one copy, into the frame."""
    array_ = np.ascontiguousarray(array_)
    return b"".join((tensor_header(array_, **extra), array_))


def control_frame(kind: str, **extra) -> bytes:
    header = {"kind": kind, "n_bytes": 0}
    header.update(extra)
    return frame_header(header)


def error_frame(message: str) -> bytes:
    return control_frame(ERROR, message=message[:MAX_MESSAGE_CHARS])


def parse_header(data: bytes) -> dict:
    """The header, checked: a known kind, a bounded size, a tensor's dtype from the allow-list and a shape
    that matches its byte count."""
    try:
        header = json.loads(data.decode())
    except ValueError:
        raise FrameError("a frame header that is not UTF-8 JSON: {!r}".format(data[:80])) from None
    if not isinstance(header, dict) or header.get("kind") not in KINDS:
        kind = header.get("kind") if isinstance(header, dict) else type(header).__name__
        raise FrameError("frame kind {!r}; accepted: {}".format(kind, ", ".join(KINDS)))
    n_bytes = header.get("n_bytes")
    if not isinstance(n_bytes, int) or isinstance(n_bytes, bool) or not 0 <= n_bytes <= MAX_PAYLOAD_BYTES:
        raise FrameError("{} frame n_bytes {!r}; accepted: an integer in 0..{}".format(
            header["kind"], n_bytes, MAX_PAYLOAD_BYTES))
    if header["kind"] == TENSOR:
        dtype, shape = header.get("dtype"), header.get("shape")
        if dtype not in DTYPES:
            raise FrameError("tensor dtype {!r}; accepted: {}".format(dtype, ", ".join(DTYPES)))
        if not isinstance(shape, list) or len(shape) > 16:
            raise FrameError("tensor shape {!r}; accepted: a list of at most 16 integers >= 0".format(shape))
        expected = ITEMSIZES[dtype]
        for dim in shape:
            if not isinstance(dim, int) or isinstance(dim, bool) or dim < 0:
                raise FrameError("tensor shape {!r}; accepted: a list of at most 16 integers >= 0".format(shape))
            expected *= dim
        if expected != n_bytes:
            raise FrameError("tensor of shape {} {} is {} bytes; the frame says {}".format(
                shape, dtype, expected, n_bytes))
    elif header["kind"] != PROBE and n_bytes:
        raise FrameError("{} frame with {} payload bytes; it carries none".format(header["kind"], n_bytes))
    return header


def recv_into(sock: socket.socket, view: memoryview) -> None:
    """Fill `view` from the socket; the peer closing first is a ConnectionError saying how far it got."""
    got, total = 0, len(view)
    while got < total:
        n = sock.recv_into(view[got:])
        if not n:
            raise ConnectionError("connection closed by the peer ({} of {} bytes of a frame read)".format(got, total))
        got += n


def recv_frame(sock: socket.socket) -> tuple:
    """(header, payload bytearray, arrival time in ns): a probe's bytes are read and dropped, not kept."""
    prefix = bytearray(LENGTH.size)
    recv_into(sock, memoryview(prefix))
    (length,) = LENGTH.unpack(prefix)
    if length > MAX_HEADER_BYTES:
        raise FrameError("a frame header of {} bytes; at most {} are accepted".format(length, MAX_HEADER_BYTES))
    raw = bytearray(length)
    recv_into(sock, memoryview(raw))
    header = parse_header(bytes(raw))
    if header["kind"] == PROBE:
        scratch = memoryview(bytearray(min(PROBE_CHUNK_BYTES, header["n_bytes"]) or 1))
        left = header["n_bytes"]
        while left:
            chunk = min(left, len(scratch))
            recv_into(sock, scratch[:chunk])
            left -= chunk
        return header, bytearray(), clock_ns()
    return header, recv_payload(sock, header["n_bytes"]), clock_ns()


def recv_payload(sock: socket.socket, n_bytes: int) -> bytearray:
    """`n_bytes` raw bytes; memory grows with what arrives (a header alone cannot make this side allocate
    up to MAX_PAYLOAD_BYTES), in one piece when the payload is at most GROW_BYTES."""
    payload = bytearray(min(n_bytes, GROW_BYTES))
    recv_into(sock, memoryview(payload))
    while len(payload) < n_bytes:
        start = len(payload)
        payload.extend(bytes(min(n_bytes - start, start)))  # doubling: amortised copies
        recv_into(sock, memoryview(payload)[start:])
    return payload


def tensor_of(header: dict, payload: bytearray) -> np.ndarray:
    return np.frombuffer(payload, dtype=header["dtype"]).reshape(header["shape"])


def hold(arrived_ns: int, delay_ns: int) -> None:
    """The emulated one-way delay: return at `arrived_ns + delay_ns`."""
    if delay_ns:
        left = arrived_ns + delay_ns - clock_ns()
        if left > 0:
            time.sleep(left / 1e9)


def nodelay(sock: socket.socket) -> socket.socket:
    """Small frames (pings, replies) leave at once instead of waiting for Nagle's algorithm."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class TailServer:
    """The server's side: listens on (bind_host, port) and answers each connection's frames on its own
    thread, running `tail` (a loaded backend: `predict(x)` -> its first output) on each tensor."""

    def __init__(self, tail, bind_host: str, port: int = 0, delay_ms: float = 0.0):
        self.tail = tail
        self.delay_ns = int(round(delay_ms * 1e6))
        family, kind, proto, _, address = socket.getaddrinfo(bind_host, port, 0, socket.SOCK_STREAM, 0,
                                                             socket.AI_PASSIVE)[0]
        self.listener = socket.socket(family, kind, proto)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(address)
        self.listener.listen(8)
        self.host, self.port = self.listener.getsockname()[:2]
        self.lock = threading.Lock()  # one tail run at a time: each reply's tail_ns is that run alone
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.frames_served = 0
        self._reply_heads = {}

    def start(self) -> TailServer:
        threading.Thread(target=self._accept, name="tail-server", daemon=True).start()
        return self

    def close(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread (close alone does not)
        except OSError:
            pass
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:  # closed
                return
            if not self.slots.acquire(blocking=False):
                try:
                    _refuse(nodelay(conn), "the server takes at most {} connections".format(MAX_CONNECTIONS))
                except OSError:
                    pass
                conn.close()
                continue
            conn.settimeout(IDLE_TIMEOUT_S)
            threading.Thread(target=self._serve_slot, args=(nodelay(conn),), name="tail-connection",
                             daemon=True).start()

    def _serve_slot(self, conn: socket.socket) -> None:
        try:
            self._serve(conn)
        finally:
            self.slots.release()

    def _serve(self, conn: socket.socket) -> None:
        try:
            while True:
                try:
                    header, payload, arrived = recv_frame(conn)
                except FrameError as exc:  # the stream cannot be resynchronised after a bad frame
                    _refuse(conn, "the server refused a frame: {}".format(exc))
                    return
                hold(arrived, self.delay_ns)
                kind = header["kind"]
                if kind == TENSOR:
                    conn.sendall(self._run_tail(tensor_of(header, payload)))
                elif kind == PING:
                    conn.sendall(control_frame(PONG))
                elif kind == PROBE:
                    conn.sendall(control_frame(ACK, received=header["n_bytes"]))
                elif kind == CLOSE:
                    return
                else:
                    _refuse(conn, "the server takes tensor, ping, probe and close frames, not {!r}".format(kind))
                    return
        except OSError:
            return  # the device went away: its job reports it
        finally:
            conn.close()

    def _reply(self, logits: np.ndarray, tail_ns: int) -> bytes:
        """The logits' frame with the tail's time: the header's JSON up to tail_ns is made once per dtype
        and shape (its time lands in the device's transfer time)."""
        key = (logits.dtype.str, logits.shape)
        start = self._reply_heads.get(key)
        if start is None:
            if key[0] not in DTYPE_NAMES:
                return self._reply(logits.astype(np.float32), tail_ns)
            text = json.dumps({"kind": TENSOR, "dtype": dtype_name(logits), "shape": list(logits.shape),
                               "n_bytes": logits.nbytes, "tail_ns": 0})
            start = self._reply_heads[key] = text[:text.rindex("0}")]
        data = (start + str(tail_ns) + "}").encode()
        return b"".join((LENGTH.pack(len(data)), data, logits))

    def _run_tail(self, x: np.ndarray) -> bytes:
        try:
            with self.lock:
                t0 = clock_ns()
                logits = self.tail.predict(x)
                t1 = clock_ns()
                self.frames_served += 1
            return self._reply(np.ascontiguousarray(logits), t1 - t0)
        except Exception as exc:  # the device's job fails with the server's reason
            return error_frame("the tail failed on the server: {}: {}".format(type(exc).__name__, exc))


def _refuse(conn: socket.socket, message: str, drain_s: float = 1.0) -> None:
    """Answer with an error frame, then end the connection in order: what the peer still sends is read
    and dropped for a moment, since closing with unread bytes resets the connection and the peer could
    lose the error frame before reading it."""
    conn.sendall(error_frame(message))
    conn.shutdown(socket.SHUT_WR)
    conn.settimeout(drain_s)
    deadline = clock_ns() + int(drain_s * 1e9)
    try:
        while clock_ns() < deadline and conn.recv(PROBE_CHUNK_BYTES):
            pass
    except OSError:
        pass


class LinkError(ConnectionError):
    """The server agent could not be reached, went away or answered with an error."""


class ServerLink:
    """The device's side: one TCP connection to the server agent, and per inference the four parts of its
    time on this clock (head, serialise, send-to-reply; the server's tail time comes in the reply)."""

    PINGS = 20

    def __init__(self, host: str, port: int, delay_ms: float = 0.0, timeout_s: float = 60.0):
        self.where = "server agent at {}:{}".format(host, port)
        self.delay_ns = int(round(delay_ms * 1e6))
        self.timeout_s = timeout_s
        try:
            self.sock = nodelay(socket.create_connection((host, port), timeout=timeout_s))
        except OSError as exc:
            raise LinkError("{} unreachable: {}".format(self.where, exc)) from None
        self.closed = False

    def exchange(self, frame: bytes, expect: str = TENSOR) -> tuple:
        """Send one frame, wait for the reply (of kind `expect`) and hold it for the one-way delay:
        (header, payload)."""
        try:
            self.sock.sendall(frame)
            header, payload, arrived = recv_frame(self.sock)
        except socket.timeout:
            raise LinkError("{} did not answer within {:g} s".format(self.where, self.timeout_s)) from None
        except FrameError as exc:
            raise LinkError("{} sent a bad frame: {}".format(self.where, exc)) from None
        except OSError as exc:  # ConnectionError included
            raise LinkError("{} lost: {}".format(self.where, exc)) from None
        hold(arrived, self.delay_ns)
        if header["kind"] != expect:
            if header["kind"] == ERROR:
                raise LinkError("{}: {}".format(self.where, header.get("message", "")))
            raise LinkError("{} answered with a {} frame where a {} frame belongs".format(
                self.where, header["kind"], expect))
        if expect == TENSOR and not isinstance(header.get("tail_ns"), int):
            raise LinkError("{} answered without its tail time (tail_ns)".format(self.where))
        return header, payload

    def rtt_ms(self, pings: int = PINGS) -> float:
        """The median round trip of `pings` empty frames (the data plane's delay included)."""
        frame = control_frame(PING)
        times = []
        for _ in range(pings):
            t0 = clock_ns()
            self.exchange(frame, PONG)
            times.append(clock_ns() - t0)
        return float(np.median(times)) / 1e6

    def throughput_mbit(self, n_bytes: int, rtt_ms: float) -> float | None:
        """8 * n_bytes / (time to the server's ack - one round trip), in Mbit/s; None when n_bytes is 0."""
        if n_bytes <= 0:
            return None
        block = memoryview(bytearray(min(n_bytes, PROBE_CHUNK_BYTES * 16)))
        t0 = clock_ns()
        try:
            self.sock.sendall(frame_header({"kind": PROBE, "n_bytes": n_bytes}))
            left = n_bytes
            while left:
                chunk = min(left, len(block))
                self.sock.sendall(block[:chunk])
                left -= chunk
        except socket.timeout:
            raise LinkError("{} took more than {:g} s to take a {}-byte probe".format(
                self.where, self.timeout_s, n_bytes)) from None
        except OSError as exc:
            raise LinkError("{} lost: {}".format(self.where, exc)) from None
        self.exchange(b"", ACK)
        elapsed_s = (clock_ns() - t0) / 1e9 - rtt_ms / 1e3
        return 8 * n_bytes / max(elapsed_s, 1e-9) / 1e6

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.sock.sendall(control_frame(CLOSE))
        except OSError:
            pass
        self.sock.close()


class SplitRunner(ModelCalls):
    """A split model on the device: `head` (a loaded backend, or None for offload: the input itself is the
    payload), then the server over `link`. It has a backend's interface for the accuracy pass (`predict`)
    and the timed loop (`runner`); each timed call records its four parts."""

    measurement_note = None
    copy_times = None
    accuracy_batch = None       # samples per frame in the accuracy pass (None: the agent's default)
    link_rtt_ms = None          # the link as probed before the job
    link_measured_mbit = None

    def __init__(self, head, link: ServerLink):
        self.head, self.link = head, link
        self.fixed_batch = head.fixed_batch if head is not None else None
        self.head_ns, self.serialize_ns, self.reply_ns, self.tail_ns = (array("q") for _ in range(4))
        self.payload_bytes = 0
        self._headers = {}

    def _frame(self, payload) -> bytes:
        """The payload framed: its header is built once per dtype and shape."""
        payload = np.ascontiguousarray(payload)
        key = (payload.dtype.str, payload.shape)
        header = self._headers.get(key)
        if header is None:
            header = self._headers[key] = tensor_header(payload)
        return b"".join((header, payload))

    def predict(self, x: np.ndarray) -> np.ndarray:
        payload = self.head.predict(x) if self.head is not None else x
        header, data = self.link.exchange(self._frame(payload))
        return tensor_of(header, data)

    def infer(self, x: np.ndarray) -> None:
        """One timed inference: only clock reads and four appends beside the work itself."""
        t0 = clock_ns()
        payload = self.head.predict(x) if self.head is not None else x
        t1 = clock_ns()
        frame = self._frame(payload)
        t2 = clock_ns()
        header, _ = self.link.exchange(frame)
        t3 = clock_ns()
        self.head_ns.append(t1 - t0)
        self.serialize_ns.append(t2 - t1)
        self.reply_ns.append(t3 - t2)
        self.tail_ns.append(header["tail_ns"])

    def runner(self, x: np.ndarray):
        """The timed call on `x`; the payload's size is taken here, once, outside the timed loop."""
        self.payload_bytes = int(np.asarray(self.head.predict(x) if self.head is not None else x).nbytes)
        return self.infer, (x,)

    def split_times(self, last: int) -> dict:
        """Medians (ms) over the `last` recorded calls (the timed windows, not the warm-up); transfer is
        each call's send-to-reply time less the server's tail time, so no two clocks are compared."""
        def tail(values):
            return np.frombuffer(values, dtype=np.int64)[-last:]

        reply, tail_ns = tail(self.reply_ns), tail(self.tail_ns)
        return {"head_ms": float(np.median(tail(self.head_ns))) / 1e6,
                "serialize_ms": float(np.median(tail(self.serialize_ns))) / 1e6,
                "transfer_ms": float(np.median(reply - tail_ns)) / 1e6,
                "tail_ms": float(np.median(tail_ns)) / 1e6}

    def info(self) -> dict:
        info = dict(self.head.info()) if self.head is not None else {}
        info["split_server"] = self.link.where
        return info

    def close(self) -> None:
        self.link.close()
