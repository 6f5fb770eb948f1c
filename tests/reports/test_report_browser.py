"""The HTML reports open in a real browser (headless Chromium) cleanly: something is drawn, nothing is logged
as an error, nothing is fetched from outside, every figure decodes, and names from user files stay text."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from browser import render
from helpers import FIXTURES, fake_run

from reports.compare import write_comparison
from reports.report import write_report

# A real run (tiny-digits fp32 and int8 on onnxruntime, skipped on litert); see tests/fixtures/runs/README.txt
REAL_RUN = FIXTURES / "runs" / "format-1"
XSS = '<img src=x onerror="window.__xss=1">'


def real_run(tmp_path: Path) -> Path:
    return Path(shutil.copytree(REAL_RUN, tmp_path / "runs" / REAL_RUN.name))


def assert_drawn(png: Path) -> None:
    """A real picture: a PNG of some size whose pixels are not all one colour (a blank or crashed tab is)."""
    import matplotlib.image

    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000, png.stat().st_size
    pixels = matplotlib.image.imread(png)[..., :3]
    assert pixels.shape[0] >= 400 and pixels.shape[1] >= 800, pixels.shape
    assert pixels.std() > 0.02 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50


def test_the_renderer_sees_what_a_broken_page_does(tmp_path):
    """The checks below mean something: each fault of a page that is not self-contained is reported."""
    html = tmp_path / "bad.html"
    html.write_text("""<!doctype html><html><body><p>hello</p>
    <img src="missing.png"><img src="http://198.51.100.1/a.png">
    <svg width="9" height="9"><circle r="3"><title>a tip</title></circle></svg>
    <script>console.error("boom"); new WebSocket("ws://198.51.100.1/"); throw new Error("uncaught")</script>
    </body></html>""")
    page = render(html, tmp_path / "bad.png")
    assert "error: boom" in "\n".join(page.console) and page.page_errors == ["uncaught"]
    # the image and the web socket race to be blocked first: their order is not the page's
    assert sorted(page.external_requests) == ["http://198.51.100.1/a.png", "ws://198.51.100.1/"]
    assert page.broken_images == ["missing.png", "http://198.51.100.1/a.png"] and page.n_images == 2
    assert page.n_svgs == 1 and page.svg_titles == ["a tip"] and page.text.startswith("hello")


def test_single_run_report_renders_cleanly(tmp_path):
    html, _ = write_report(real_run(tmp_path))
    page = render(html, tmp_path / "report.png")
    assert page.problems() == []
    # the workload's two trade-off plots and its latency distribution (inline SVG or data: URI images)
    assert page.n_svgs + page.n_images >= 3
    assert any(t.startswith("int8 ") for t in page.svg_titles)  # a point's tooltip names its job
    assert "tiny-digits" in page.text and "Skipped and failed jobs" in page.text
    assert_drawn(page.screenshot)


def test_comparison_renders_cleanly(tmp_path):
    base = fake_run(tmp_path / "runs" / "a", 1.0, 0.95, seed=1)
    slower = fake_run(tmp_path / "runs" / "b", 1.5, 0.90, seed=2)
    (html, _), n_regressions = write_comparison(base, slower, tmp_path / "out")
    assert n_regressions == 1
    page = render(html, tmp_path / "compare.png")
    assert page.problems() == []
    assert "regression" in page.text
    assert_drawn(page.screenshot)


@pytest.mark.parametrize("column", ["workload", "variant"])
def test_a_name_with_markup_runs_nothing_and_shows_as_text(tmp_path, column):
    """If the name reached the page as markup, the <img> would fail to load x and its onerror would run."""
    run = real_run(tmp_path)
    with open(run / "results.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, list(reader)
    for row in rows:
        row[column] = XSS if column == "workload" or row["variant"] == "int8" else row[column]
    with open(run / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fields)
        writer.writeheader()
        writer.writerows(rows)
    html, _ = write_report(run)
    page = render(html, tmp_path / "report.png", probe="typeof window.__xss")
    assert page.probe == "undefined"
    assert XSS in page.text
    if column == "variant":  # the points' tooltips name the variant (the workload is in drawn titles)
        assert any(t.startswith(XSS) for t in page.svg_titles)
    assert page.problems() == []
