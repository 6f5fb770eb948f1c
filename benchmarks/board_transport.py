"""What reaching a board over SSH costs per job, and how well its clock maps onto the host's.

Starts a real sshd on 127.0.0.1 (as the board tests do) and, interleaved, starts agents locally (the cpu
target's way) and over SSH (a board target's way, ControlMaster warm, the bundle already staged), each
up to its hello; then measures the clock mapping's uncertainty (half the shortest of 16 ping round trips).
Loopback has no network: on a real link add its round trips (about 4 per job plus 16 clock pings).

    .venv/bin/python benchmarks/board_transport.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from sshd import start_board  # noqa: E402  (the test suite's throwaway sshd)

from harness.core.config import load_toml  # noqa: E402
from harness.core.jobs import Job  # noqa: E402
from targets.agent_driver import ClockMap  # noqa: E402
from targets.board import BoardSession  # noqa: E402
from targets.cpu import LocalAgent  # noqa: E402
from targets.spec import parse_target  # noqa: E402


def timed_hello(start) -> float:
    begin = time.perf_counter()
    with start() as agent:
        agent.client.hello()
    return time.perf_counter() - begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        board = start_board(Path(tmp) / "board")
        try:
            path = Path(tmp) / "board.toml"
            path.write_text(board.target_toml("ssh", ["onnxruntime"]))
            session = BoardSession(parse_target(load_toml(path), path))
            session.info()  # ships the agent once
            job = Job("w", "v", "baseline", "fp32", "ssh", "onnxruntime", 1, 1)  # a job's agent: no smoke tests
            local, remote, uncertainty = [], [], []
            for _ in range(args.rounds):
                local.append(timed_hello(lambda: LocalAgent(1)))
                remote.append(timed_hello(lambda: session.start_agent(job)))
                with session.start_agent(job) as agent:
                    agent.client.hello()
                    uncertainty.append(ClockMap.measure(agent.client).uncertainty_ns / 1e3)
            session.close()
        finally:
            board.stop()

    print(f"{'median over ' + str(args.rounds) + ' rounds':32s} {'value':>10s}")
    print(f"{'local agent start to hello':32s} {statistics.median(local) * 1e3:8.0f} ms")
    print(f"{'SSH agent start to hello':32s} {statistics.median(remote) * 1e3:8.0f} ms")
    print(f"{'SSH cost per agent start':32s} {(statistics.median(remote) - statistics.median(local)) * 1e3:8.0f} ms")
    print(f"{'clock mapping uncertainty':32s} {statistics.median(uncertainty):8.1f} us "
          f"(max {max(uncertainty):.1f} us)")


if __name__ == "__main__":
    main()
