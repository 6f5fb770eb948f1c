"""The report's board-to-board spread: one line per job that ran on several boards."""

from __future__ import annotations

import pandas as pd
import pytest

from reports.boards import HEADERS, board_spread_table


def row(board: str, p50_ms: float, variant: str = "fp32", batch: int = 1, link: str = "") -> dict:
    return {"job_id": f"w__{variant}__onnxruntime__t1__b{batch}__on-{board.split('/')[0]}", "workload": "w",
            "variant": variant, "target": "lab", "backend": "onnxruntime", "precision": "fp32", "threads": 1,
            "batch_size": batch, "link": link, "board": board, "latency_p50_ms": p50_ms, "status": "ok"}


def test_a_job_on_three_boards_gets_its_min_median_max_and_spread():
    rows = pd.DataFrame([row("rpi-1/pi-a", 1.0), row("rpi-2/pi-b", 1.2), row("rpi-3/pi-c", 1.1),
                         row("rpi-1/pi-a", 2.0, batch=2)])
    headers, body = board_spread_table(rows)
    assert headers == HEADERS
    assert body == [["w/fp32 onnxruntime t1 b1", "rpi-1/pi-a, rpi-2/pi-b, rpi-3/pi-c", "3", "1.0000", "1.1000",
                     "1.2000", "18.2"]]


@pytest.mark.parametrize("rows", [
    [],                                                             # nothing ran
    [row("rpi-1/pi-a", 1.0), row("rpi-1/pi-a", 1.5, variant="int8")],   # each job on one board
    [{**row("", 1.0)}, {**row("", 1.2)}],                           # the local cpu: no board
], ids=["empty", "one-board-each", "no-board"])
def test_no_job_on_several_boards_gives_an_empty_body(rows):
    assert board_spread_table(pd.DataFrame(rows)) == (HEADERS, [])


def test_jobs_are_told_apart_by_every_key_column():
    rows = pd.DataFrame([row("a/x", 1.0), row("b/y", 3.0), row("a/x", 5.0, link="loopback"),
                         row("b/y", 5.0, link="loopback")])
    _, body = board_spread_table(rows)
    assert [line[0] for line in body] == ["w/fp32 onnxruntime t1 b1", "w/fp32 onnxruntime t1 b1 loopback"]
    assert [line[-1] for line in body] == ["100.0", "0.0"]
