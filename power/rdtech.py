"""RDTech UM24C / UM25C / UM34C USB meters: poll with 0xF0, read a 130-byte big-endian frame.

Frames are checked (UM24C/UM25C end with 0xFFF1; UM34C carries an XOR checksum in byte 129) and a stream
that lost its place is resynchronised by scanning for a known model id. Energy comes from the
instantaneous V and I samples: the meters' own mWh accumulators are far too coarse per inference.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from power.source import SerialSource, clock_ns

FRAME_BYTES = 130
POLL = b"\xf0"
MODELS = {0x0963: "UM24C", 0x09C9: "UM25C", 0x0D4C: "UM34C"}
# (volts per count, amps per count): the UM25C has ten times the resolution of the others
SCALES = {"UM24C": (0.01, 0.001), "UM25C": (0.001, 0.0001), "UM34C": (0.01, 0.001)}
UM34C_CHECKSUM_BYTES = (1, 3, 7, 9, 15, 17, 19, 23, 31, 39, 41, 45, 49, 53, 55, 57, 59, 63, 67, 69, 73, 79,
                        83, 89, 97, 99, 109, 111, 113, 119, 121, 127)
CHARGING_MODES = {0: "unknown", 1: "QC2.0", 2: "QC3.0", 3: "APP2.4A", 4: "APP2.1A", 5: "APP1.0A",
                  6: "APP0.5A", 7: "DCP1.5A", 8: "SAMSUNG"}


@dataclass(frozen=True)
class Reading:
    model: str
    voltage_v: float
    current_a: float
    power_w: float          # the meter's own power field (1 mW resolution)
    temperature_c: int
    data_plus_v: float
    data_minus_v: float
    charging_mode: str
    resistance_ohm: float


def um34c_checksum(frame: bytes) -> int:
    value = 0
    for index in UM34C_CHECKSUM_BYTES:
        value ^= frame[index]
    return value


def frame_ok(frame: bytes) -> bool:
    if len(frame) != FRAME_BYTES:
        return False
    model = MODELS.get(struct.unpack_from(">H", frame, 0)[0])
    if model is None:
        return False
    if model == "UM34C":
        return um34c_checksum(frame) == frame[129]
    return frame[128:130] == b"\xff\xf1"


def decode(frame: bytes) -> Reading:
    model = MODELS[struct.unpack_from(">H", frame, 0)[0]]
    volt_scale, amp_scale = SCALES[model]
    voltage, current = struct.unpack_from(">HH", frame, 2)
    (power,) = struct.unpack_from(">I", frame, 6)
    (temperature,) = struct.unpack_from(">H", frame, 10)
    d_plus, d_minus, mode = struct.unpack_from(">HHH", frame, 96)
    (resistance,) = struct.unpack_from(">I", frame, 122)
    return Reading(model, voltage * volt_scale, current * amp_scale, power / 1000.0, temperature,
                   d_plus / 100.0, d_minus / 100.0, CHARGING_MODES.get(mode, str(mode)), resistance / 10.0)


def encode(model: str, voltage_v: float, current_a: float, temperature_c: int = 25) -> bytes:
    """A frame as the meter would send it (used by the emulator; fields not set are zero)."""
    model_id = {v: k for k, v in MODELS.items()}[model]
    volt_scale, amp_scale = SCALES[model]
    frame = bytearray(FRAME_BYTES)
    voltage = min(0xFFFF, round(voltage_v / volt_scale))
    current = min(0xFFFF, round(current_a / amp_scale))
    struct.pack_into(">HHHI", frame, 0, model_id, voltage, current,
                     round(voltage * volt_scale * current * amp_scale * 1000))
    struct.pack_into(">HH", frame, 10, temperature_c, round(temperature_c * 9 / 5 + 32))
    if model == "UM34C":
        frame[129] = um34c_checksum(bytes(frame))
    else:
        frame[128:130] = b"\xff\xf1"
    return bytes(frame)


class FrameScanner:
    """Finds valid frames in a byte stream; skipped garbage and bad frames count as dropped."""

    def __init__(self):
        self.buffer = b""
        self.dropped = 0

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        frames = []
        skipped = False
        while len(self.buffer) >= FRAME_BYTES:
            if frame_ok(self.buffer[:FRAME_BYTES]):
                if skipped:
                    self.dropped += 1
                    skipped = False
                frames.append(self.buffer[:FRAME_BYTES])
                self.buffer = self.buffer[FRAME_BYTES:]
                continue
            # lost sync: move to the next place a model id starts
            starts = [self.buffer.find(struct.pack(">H", m), 1) for m in MODELS]
            starts = [s for s in starts if s > 0]
            self.buffer = self.buffer[min(starts):] if starts else self.buffer[-1:]
            skipped = True
        if skipped:
            self.dropped += 1
        return frames


class RdtechSource(SerialSource):
    """Polls at `rate_hz`; each sample is stamped with the time its poll was sent."""

    MODEL = ""  # the subclasses below, one per meter, are what the registry names
    DEFAULTS = {"port": None, "baud": 9600, "rate_hz": 2.0}

    @classmethod
    def from_options(cls, options: dict) -> RdtechSource:
        return cls(cls.MODEL, options["port"], options["baud"], options["rate_hz"])

    def __init__(self, model: str, port: str, baud: int = 9600, rate_hz: float = 2.0,
                 response_timeout_s: float = 0.5):
        super().__init__(port, baud, rate_hz)
        self.model = model.upper()
        self.name = model.lower()
        self.response_timeout_s = response_timeout_s

    def session(self, port) -> None:
        scanner = FrameScanner()
        period_ns = int(1e9 / self.rate_hz)
        next_poll = clock_ns()
        silent_since = None
        while not self._stop.is_set():
            now = clock_ns()
            if now < next_poll:
                self._stop.wait((next_poll - now) / 1e9)
                continue
            next_poll += period_ns
            if next_poll < now:  # fell behind (slow link): keep the rate, skip missed polls
                next_poll = now + period_ns
            port.reset_input_buffer()
            sent = clock_ns()
            port.write(POLL)
            frames, received = self._read_response(port, scanner, sent)
            self.dropped_frames = scanner.dropped
            if self._stop.is_set():
                break
            if not frames:
                if not received and silent_since is None:  # a bad frame is a drop, not silence
                    silent_since = sent
                    self.fault(f"{self.model} on {self.port_name} stopped answering polls")
                continue
            silent_since = None
            reading = decode(frames[-1])
            self.trace.append(sent, reading.voltage_v, reading.current_a,
                              reading.voltage_v * reading.current_a)

    def _read_response(self, port, scanner: FrameScanner, sent_ns: int) -> tuple[list[bytes], int]:
        """Frames answering one poll, and how many bytes came. Once a frame's worth has arrived without a
        valid frame, wait two frame times more for the rest, not the whole timeout."""
        deadline = sent_ns + int(self.response_timeout_s * 1e9)
        frame_time_ns = int(FRAME_BYTES * 10 / self.baud * 1e9)
        frames, received = [], 0
        while not frames and clock_ns() < deadline and not self._stop.is_set():
            data = port.read(port.in_waiting or 1)
            received += len(data)
            frames = scanner.feed(data)
            if received >= FRAME_BYTES and not frames:
                deadline = min(deadline, clock_ns() + 2 * frame_time_ns)
        return frames, received


class Um24cSource(RdtechSource):
    MODEL = "UM24C"


class Um25cSource(RdtechSource):
    MODEL = "UM25C"


class Um34cSource(RdtechSource):
    MODEL = "UM34C"
