"""The agent's main loop: say hello, then answer the host's messages (targets/agent/wire.py) one line at a
time until the host goes away (a split job's server agent serves its tail on threads meanwhile).
Board-side, Python 3.8."""

from __future__ import annotations

import os
import sys
import time
import traceback

from targets.agent.facts import device_facts
from targets.agent.wire import (
    FAIL,
    HOST_TO_AGENT,
    SKIP,
    ClockPing,
    ClockReply,
    Hello,
    JobFailed,
    ServeRequest,
    decode,
    encode,
)


def send(message) -> None:
    sys.stdout.write(encode(message) + "\n")
    sys.stdout.flush()


def host_lines():
    """The host's lines, read on their own thread: when the host goes away (EOF: Ctrl-C on the host, a
    dropped SSH link) the agent stops at once, even mid-job, instead of measuring for nobody and loading
    the board while the next run starts."""
    import queue
    import threading

    from targets.agent.measure import stop_all_monitors

    lines = queue.Queue()

    def read():
        for line in sys.stdin:
            lines.put(line)
        stop_all_monitors()
        os._exit(0)

    threading.Thread(target=read, name="host-lines", daemon=True).start()
    while True:
        yield lines.get()


def hello_facts(board: str | None, smoke: str) -> dict:
    facts = device_facts()
    facts["agent"] = os.path.abspath(__file__)  # inside the shipped .pyz on a board
    if board:
        from targets.agent.board_facts import board_facts
        facts["board"] = dict(board_facts(board), kind=board)
    if smoke:
        from targets.smoke import smoke_tests
        facts["smoke"] = smoke_tests(smoke.split(","))
    return facts


def answer(line: str) -> None:
    from targets.agent.measure import run_job
    from targets.backends.base import Unsupported

    try:
        message = decode(line, HOST_TO_AGENT)
        if isinstance(message, ClockPing):
            send(ClockReply(time.monotonic_ns()))
        elif isinstance(message, ServeRequest):
            # the tail is served on its own threads from now on; this loop goes on answering the host
            from targets.agent.measure import backend_class, stage_options
            from targets.agent.split import serve

            send(serve(message, backend_class(message), stage_options(message)))
        else:
            send(run_job(message, send))
    except Unsupported as exc:
        send(JobFailed(SKIP, str(exc)))
    except Exception as exc:  # every failure goes back to the host as a message, not a dead pipe
        send(JobFailed(FAIL, "{}: {}".format(type(exc).__name__, exc), traceback.format_exc(limit=6)))


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="edgebench-agent")
    parser.add_argument("--board", default=None, help="rpi | jetson | pynq: add that board's facts")
    parser.add_argument("--smoke", default="", help="comma-separated runtimes to smoke-test in hello")
    args = parser.parse_args(argv)
    send(Hello(hello_facts(args.board, args.smoke)))
    for line in host_lines():
        if line.strip():
            answer(line)
    return 0
