"""The Markdown reports (report.md, compare.md, the cross-run report.md, history.md, `edgebench runs` into a
file) show the names and texts that came from user files as they are: a CommonMark viewer (markdown-it-py,
with GFM tables and strikethrough) renders a report of hostile names exactly as it renders the same report of
plain names, each name in its place, and makes no emphasis, link, code, heading or HTML of them; numbers and
plain names stay readable in the .md file itself."""

from __future__ import annotations

import re
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from reports.render import markdown_inline, markdown_table, markdown_text

VIEWER = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def rendered(markdown: str) -> str:
    """What a viewer shows: its tags (without attributes) and its text (HTML-escaped again, so that a tag
    is told from a text that reads like one), as one string."""
    events: list[str] = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            events.append(f"<{tag}>")

        def handle_startendtag(self, tag, attrs):
            events.append(f"<{tag}/>")

        def handle_endtag(self, tag):
            events.append(f"</{tag}>")

        def handle_data(self, data):
            events.append(escape(data, quote=False))

    parser = Collect()
    parser.feed(VIEWER.render(markdown))
    parser.close()
    return "".join(events)


def shown(text: str) -> str:
    """What a viewer can show of a text, as rendered() writes it: a line break (and the blanks around it) is
    one space, the ends are not shown."""
    return escape(re.sub(r"\s*(?:\r\n|\r|\n)\s*", " ", text).strip(), quote=False)


# ---------------------------------------------------------------- the escaper, wherever the reports put text

CONTEXTS = {  # how the reports write a text into Markdown, and what a viewer then shows
    "paragraph": (lambda t: t, lambda s: f"<p>{s}</p>"),
    "heading": (lambda t: f"## {t}", lambda s: f"<h2>{s}</h2>"),
    "list item": (lambda t: f"- {t}", lambda s: f"<ul>\n<li>{s}</li>\n</ul>"),
    "quote": (lambda t: f"> {t}", lambda s: f"<blockquote>\n<p>{s}</p>\n</blockquote>"),
    "fact": (lambda t: f"- **run**: {t}", lambda s: f"<ul>\n<li><strong>run</strong>: {s}</li>\n</ul>"),
    "figure": (lambda t: f"- *{t}* (in report.html): {t}",
               lambda s: f"<ul>\n<li><em>{s}</em> (in report.html): {s}</li>\n</ul>"),
}

MARKDOWN_ALPHABET = st.sampled_from(list("\\`*_{}[]()<>#+-.!|~&;:@/=?$%^'\" \t\naZ09é") +
                                    ["1.", "1)", "&amp;", "&#x41;", "<b>", "http://x", "---", "    "])


@settings(max_examples=400, deadline=None)
@given(st.lists(MARKDOWN_ALPHABET, min_size=1, max_size=10).map("".join))
def test_any_text_renders_as_itself_wherever_a_report_puts_it(text):
    expected = shown(text)
    for context, (write, view) in CONTEXTS.items():
        if not expected:
            continue
        assert rendered(write(markdown_text(text))).strip() == view(expected), context
    table = markdown_table(["name", "n"], [[text, "1"]])
    assert rendered(table).replace("\n", "") == (
        f"<table><thead><tr><th>name</th><th>n</th></tr></thead><tbody><tr><td>{expected}</td><td>1</td>"
        f"</tr></tbody></table>")


@pytest.mark.parametrize("text", [
    "my_model_v2_*fast*", "[click](javascript:alert(1))", "![x](http://x/y.png)", "# heading", "###", "name #",
    "`code`", "``a``", "**bold**", "__bold__", "~~struck~~", "<img src=x onerror=alert(1)>", "<1@x.y>",
    "a &amp; b", "&#60;b&#62;", "1. first", "2) second", "- item", "+ item", "* item", "> quoted", "---",
    "***", "- - -", "[x]: http://x", "[ ] task", "a | b", "C:\\Users\\", "trailing \\", "line\n# two\n- three",
])
def test_what_would_be_markdown_is_shown_literally(text):
    for context, (write, view) in CONTEXTS.items():
        assert rendered(write(markdown_text(text))).strip() == view(shown(text)), context


def test_numbers_and_plain_names_stay_readable():
    # what a results table is made of: escaped, they would read 0\.95, \-1\.2
    for cell in ("0.95", "-1.2", "+1.20", "97.8%", "1,234", "0.8 (edge: lowest measured)", "1.5x", "[8, 4, 4]",
                 "tiny-digits", "w__fp32__onnxruntime__t1__b1", "pool$1", "p50 ms", "B/A p50", "Δ acc (pts)", "#",
                 "a * b", "transfer time ~ bytes / bandwidth", "C:\\Users\\me"):
        assert markdown_inline(cell, table_cell=True) == cell
    for text in ("p < 0.01 and the p50 ratio is >= 1.1 (or <= 0.909)", "cpu #2", "-1.2 points", "97.8% valid",
                 "edgebench report: r1", "tiny-digits/int8: only in cpu-ort, cpu-ort-2t", "Tom & Jerry"):
        assert markdown_text(text) == text
    assert markdown_text("my_model_v2_*fast*") == "my_model_v2\\_\\*fast\\*"
    assert markdown_text("[click](javascript:alert(1))") == "\\[click\\](javascript:alert(1))"
    assert markdown_text("# 1. x") == "\\# 1. x" and markdown_text("1. x") == "1\\. x"


# ---------------------------------------------------------------- every Markdown report, built from runs

TARGETS = ("[cpu](http://evil.example) _board_", "`pi` # 2")
WORKLOAD = "# my_model_v2_*fast* `net`"
RUN_ID = "run_*1* ~~x~~"
VARIANTS = [  # (name, family, precision, p50 ms, accuracy)
    ("fp32", "baseline", "fp32", 2.0, 0.95),
    ("my_model_v2_*fast*", "quantize", "int8", 1.0, 0.948),
    ("[click](javascript:alert(1))", "prune", "fp32", 1.5, 0.93),
    ("<img src=x onerror=alert(1)> &amp; ~~old~~", "quantize", "fp16", 1.8, 0.95),
    ("1. first | second", "distill", "fp32", 1.2, 0.90),
    ("- item \\*", "prune", "fp32", 1.7, 0.94),
]
WARNING = "the fan was <b>loud</b> _and_ `hot`"
REASON = "Traceback:\n# boom\n- [x](y) *z*"


def plain_names() -> dict[str, str]:
    """Each hostile name and a plain one in its place, in the same sort order (the reports sort names)."""
    names = sorted({WORKLOAD, RUN_ID, WARNING, *TARGETS, *(v[0] for v in VARIANTS)} - {"fp32"})
    return {name: f"{'a' if name < 'fp32' else 'z'}plain{i:02d}" for i, name in enumerate(names)}


def make_run(root: Path, run_id: str, target: str, names: dict[str, str], slower: float = 1.0,
             seed: int = 0, skip: str = "") -> Path:
    """A run of the variants above but `skip` on `target` (names taken through `names`): ok jobs, one with
    a warning, and a failed one with a multi-line reason."""
    import numpy as np

    from harness.core.measurement import Window
    from harness.core.rundir import RunStore
    from harness.core.schema import COLUMNS
    from harness.core.stats import summarize

    def name(text: str) -> str:
        return names.get(text, text)

    run_id = name(run_id)
    store = RunStore.create(root, run_id, {
        "run_id": run_id, "config": {"target": {"name": name(target)}, "suite": {"name": name(WORKLOAD)}},
        "measurement_protocol": {"n_windows": 3, "window_min_s": 1.0, "window_min_iterations": 50}})
    rng = np.random.default_rng(seed)
    windows = [Window(0, 10**9, 100)] * 3
    workload = name(WORKLOAD)
    for i, (variant, family, precision, p50_ms, accuracy) in enumerate(VARIANTS):
        if variant == skip:
            continue
        job_id = f"{workload}__{name(variant)}__onnxruntime__t1__b1"
        row = {c: "" for c in COLUMNS}
        row.update(run_id=run_id, job_id=job_id, target=name(target), threads=1, batch_size=1, workload=workload,
                   variant=name(variant), family=family, precision=precision, backend="onnxruntime",
                   strategy="local", metric="top1", n_eval=1000, energy_source="none")
        if i == len(VARIANTS) - 1:
            row.update(status="failed", reason=REASON)
        else:
            latency_ns = (rng.normal(p50_ms * slower, p50_ms * 0.02, 300) * 1e6).astype(np.int64)
            row.update(summarize(latency_ns, windows, 1))
            row.update(status="ok", accuracy=accuracy, accuracy_delta=accuracy - VARIANTS[0][4], peak_rss_mb=100.0,
                       raw_latency_file=store.save_latency(job_id, latency_ns, windows))
            if i == 2:
                row.update(warnings=f"{row['warnings']}; {name(WARNING)}" if row["warnings"] else name(WARNING))
        store.append(row)
    store.close()
    return store.dir


def every_markdown_report(root: Path, names: dict[str, str], capsys) -> dict[str, str]:
    from reports.compare import write_comparison
    from reports.cross_report import write_cross_report
    from reports.history_report import write_history
    from reports.report import write_report
    from reports.runs_index import print_runs

    first = make_run(root / "runs", RUN_ID, TARGETS[0], names)
    # the second run lacks a variant: it is named in compare.md's "only in A" and the cross report's list
    second = make_run(root / "runs", "zz-second", TARGETS[1], names, slower=1.5, seed=1, skip=VARIANTS[4][0])
    reports = {"report.md": write_report(first)[1].read_text()}
    reports["compare.md"] = write_comparison(first, second, root / "compare")[0][1].read_text()
    reports["cross report.md"] = write_cross_report([first, second], root / "cross")[1].read_text()
    reports["history.md"] = write_history([first, second], "latency_p50_ms", root / "history")[0][1].read_text()
    capsys.readouterr()
    print_runs(root / "runs")
    reports["edgebench runs"] = capsys.readouterr().out
    return reports


def test_every_markdown_report_shows_the_names_from_user_files_as_they_are(tmp_path, capsys):
    names = plain_names()
    hostile = every_markdown_report(tmp_path / "h", {}, capsys)
    plain = every_markdown_report(tmp_path / "p", names, capsys)
    # every hostile name is in the reports (as a user's file gave it, or escaped)
    assert all(escape(WORKLOAD, quote=False) in rendered(text) for text in hostile.values())
    for report, text in hostile.items():
        view = rendered(text)
        # the viewer shows each name as it is: put the plain names in their place and it is the plain report
        for name in sorted(names, key=len, reverse=True):
            view = view.replace(escape(name, quote=False), names[name])
        view = view.replace(str(tmp_path / "h"), str(tmp_path / "p")).replace(shown(REASON), "REASON")
        assert view == rendered(plain[report]).replace(shown(REASON), "REASON"), report
        # ... and nothing became a link, code, an image, HTML, strikethrough, a rule or a numbered list
        for tag in ("<a>", "<code>", "<img", "<b>", "<s>", "<del>", "<hr", "<ol>", "<pre>"):
            assert tag not in view, (report, tag)
    # what the report writes as Markdown on purpose still is: headings, facts, quotes, figure titles
    report = rendered(hostile["report.md"])
    assert report.startswith(f"<h1>edgebench report: {escape(RUN_ID)}</h1>")
    assert f"<li><strong>target</strong>: {escape(TARGETS[0])}</li>" in report
    assert "<blockquote>\n<p>Not valid for publication" in report
    assert f"<p>{shown(REASON)}</p>" not in report and f"<td>{shown(REASON)}</td>" in report
    cross = rendered(hostile["cross report.md"])
    workload = escape(WORKLOAD, quote=False)
    assert f"<h2>{workload}</h2>" in cross and f"<li><em>{workload}: accuracy vs latency per target</em>" in cross
    assert f"<td>{escape(VARIANTS[1][0])}</td>" in cross and f"<th>{escape(TARGETS[1])}</th>" in cross
    assert f"<li>{workload}/{escape(VARIANTS[4][0])}: only in" in cross
    compare = rendered(hostile["compare.md"])
    assert f"<li><strong>only in A</strong>: {workload}/{escape(VARIANTS[4][0])}/" in compare
    # where a name can start a Markdown construct, the .md file holds it escaped (`_` inside a word cannot)
    assert "## \\# my_model_v2\\_\\*fast\\* \\`net\\`" in hostile["cross report.md"]
    assert "| [cpu\\](http://evil.example) \\_board\\_ |" in hostile["edgebench runs"]
