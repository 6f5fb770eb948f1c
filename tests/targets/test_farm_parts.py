"""The farm's parts that need no lab: [farm] in a target file, and the queue the boards share."""

from __future__ import annotations

import threading

import pytest
from helpers import write

from harness.core.errors import ConfigError
from harness.core.jobs import Job
from harness.core.rundir import complete_row_problem, replica_job_id
from targets.farm.queue import QueuedJob, WorkQueue, on_board
from targets.spec import find_target

FARM_TARGET = """
[target]
name = "lab"
adapter = "rpi"
python = "~/eb/bin/python"
{target}
[farm]
tags = {{ board = "rpi4" }}
{farm}
"""


def job(batch: int = 1) -> Job:
    return Job("w", "fp32", "baseline", "fp32", "lab", "onnxruntime", 1, batch)


def test_a_farm_target_is_read_with_its_defaults(tmp_path):
    spec = find_target(str(write(tmp_path / "lab.toml", FARM_TARGET.format(
        target="", farm='coordinator = "labhost:20408"\nboards = 4'))))
    assert spec.farm.coordinator == "labhost:20408" and spec.farm.tags == {"board": "rpi4"}
    assert (spec.farm.boards, spec.farm.replicate, spec.farm.reserve_timeout_s) == (4, False, 600.0)
    assert "host" not in spec.settings   # each place's NetworkService gives it


@pytest.mark.parametrize("target, farm, says", [
    ('host = "pi"', "", "key 'target.host': a farm target takes host, port and user from each place"),
    ("", "boards = 0", "key 'farm.boards' = 0: accepted: a number of places from 1 to 1024, or \"all\""),
    ("", 'boards = "some"', "accepted: a number of places"),
    ("", 'engine = "lava"', "key 'farm.engine' = 'lava'"),
    ("", 'coordinator = "-oProxyCommand=x"', "key 'farm.coordinator'"),
    ("", "reserve_timeout_s = -1", "key 'farm.reserve_timeout_s' = -1.0"),
    ("", "colour = 1", "colour"),
    ("", 'power_cycle_command = " "', "power_cycle_command"),
], ids=["host-given", "zero-boards", "boards-word", "engine", "coordinator", "timeout", "unknown-key", "empty-command"])
def test_farm_keys_are_checked_naming_the_file_and_key(tmp_path, target, farm, says):
    path = write(tmp_path / "lab.toml", FARM_TARGET.format(target=target, farm=farm))
    with pytest.raises(ConfigError) as error:
        find_target(str(path))
    assert str(path) in str(error.value) and says in str(error.value)


def test_a_farm_needs_a_board_adapter(tmp_path):
    path = write(tmp_path / "lab.toml", FARM_TARGET.format(target="", farm="").replace('"rpi"', '"cpu"')
                 .replace('python = "~/eb/bin/python"', ""))
    with pytest.raises(ConfigError, match="a \\[farm\\] runs a board adapter"):
        find_target(str(path))


def test_a_lost_job_goes_once_to_another_board_and_to_its_own_only_when_no_other_is_left():
    queue = WorkQueue()
    for place in ("a", "b"):
        queue.join(place)
    queue.add([QueuedJob(job(1)), QueuedJob(job(2))])
    first = queue.take("a")
    assert queue.lost(first, "a")               # back in the queue, at its head ...
    assert queue.take("a").job == job(2)        # ... but not for the board it was lost on
    assert queue.take("b") is first             # another board takes it
    assert not queue.lost(first, "b")           # lost twice: not again
    queue.leave("b")
    queue.add([item := QueuedJob(job(4), avoid={"a"})])
    assert queue.take("a") is item              # the only board left takes even a job lost on it


def test_replicated_jobs_stay_on_their_board_with_ids_of_their_own():
    queue = WorkQueue()
    queue.join("a")
    queue.join("b")
    replicas = [QueuedJob(on_board(job(), place), place=place) for place in ("a", "b")]
    queue.add(replicas)
    assert queue.take("b") is replicas[1] and queue.take("a") is replicas[0]
    assert [r.job.job_id for r in replicas] == [f"w__fp32__onnxruntime__t1__b1__on-{p}" for p in "ab"]
    # a place's name made file-name safe, and told apart from the names it could be confused with
    assert replica_job_id("x", "rpi 4/1").startswith("x__on-rpi-4-1-")
    assert len({replica_job_id("x", p) for p in ("rpi4_1", "rpi4-1", "rpi4 1", "pi-α", "pi-β", "pi")}) == 6


def test_a_board_waits_while_a_job_in_flight_may_come_back_and_stops_when_none_can():
    queue = WorkQueue()
    queue.join("a")
    queue.join("b")
    queue.add([QueuedJob(job())])
    item = queue.take("a")
    got = []
    waiter = threading.Thread(target=lambda: got.append(queue.take("b")))
    waiter.start()
    queue.lost(item, "a")                       # the job comes back: b, waiting, takes it
    waiter.join(5)
    assert got == [item]
    queue.done(item)
    assert queue.take("a") is None and queue.finished()


def test_a_replica_row_is_trusted_by_resume_only_with_its_board():
    from harness.core.schema import COLUMNS

    row = {c: "" for c in COLUMNS}
    row.update(run_id="r", job_id="w__fp32__onnxruntime__t1__b1__on-rpi-1", status="skipped", reason="x",
               workload="w", variant="fp32", family="baseline", precision="fp32", target="lab",
               backend="onnxruntime", threads="1", batch_size="1", board="rpi-1/pi",
               finished_at="2026-11-23T00:00:00+00:00")
    assert complete_row_problem([row[c] for c in COLUMNS]) is None
    row["board"] = "rpi-2/pi"
    assert "does not match its key columns" in complete_row_problem([row[c] for c in COLUMNS])
