"""Rendering: HTML through Jinja2 with autoescaping (a report shows names that came from user files),
Markdown through an escaper (markdown_text, markdown_inline) and a small table writer."""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape

from harness.core.errors import ConfigError
from harness.core.schema import REPORT_COLUMNS, REPORT_WHEN_PRESENT

TEMPLATES = Path(__file__).resolve().parent / "templates"

def fmt(value, spec: str | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if spec is None:
        return str(value)
    try:
        return format(int(value) if spec.endswith("d") else float(value), spec)
    except (TypeError, ValueError):
        return str(value)


def table_cells(rows: pd.DataFrame, columns=REPORT_COLUMNS) -> tuple[list[str], list[list[str]]]:
    # an empty text cell is read as "", not NaN: a column of "" only is absent too (`link` of local jobs)
    columns = [c for c in columns if c[0] not in REPORT_WHEN_PRESENT
               or (c[0] in rows and (rows[c[0]].notna() & rows[c[0]].ne("")).any())]
    headers = [h for _, h, _ in columns]
    body = [[fmt(row.get(c), f) for c, _, f in columns] for _, row in rows.iterrows()]
    return headers, body


# Markdown: every text that came from a user's file (a workload, variant, target, tensor name, an error
# message) and every text these reports make from them is written through markdown_text (a paragraph, a
# heading, a list item, a quote) or markdown_table (cells), so that a Markdown viewer shows it as it is: a
# variant called `my_model_v2_*fast*`, `[click](javascript:...)`, `# 1` or `<img onerror=...>` is shown,
# not rendered as emphasis, a link, a heading or HTML. CommonMark backslash escapes are put only where a
# character can open or close a construct there, so that names (`tiny-digits`, `w__fp32__onnxruntime`) and
# numbers (`0.95`, `-1.2`, `97.8%`, `p < 0.01`) stay readable in the .md file.
_ASCII_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_LINE_BREAK = re.compile(r"\s*(?:\r\n|\r|\n)\s*")
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_EMAIL_AUTOLINK = re.compile(r"<[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9]"
                             r"(?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*>")
_DELIMITER_RUN = re.compile(r"\*+|_+|~+")
# at the start of a block: an ATX heading, a quote, a bullet or ordered list item, a thematic break (`---`, or
# `--` after a list item's `- `; `***` and `___` are escaped as delimiter runs), a link reference definition
# or a task-list box (`[`)
_BLOCK_START = re.compile(r"#{1,6}(?=\s|$)|>|[-+](?=\s|$)|-(?=[-\s]*$)|\[")
_ORDERED_ITEM = re.compile(r"(\d{1,9})([.)])(?=\s|$)")
_CLOSING_HASHES = re.compile(r"(?<=\s)#(?=#*$)")  # `## name #`: a heading's optional closing sequence


def _inert_run(text: str, start: int, end: int) -> bool:
    """Whether the run of `*`, `_` or `~` at text[start:end] can neither open nor close emphasis (or GFM
    strikethrough): `_` between two letters or digits (`my_model`), `*`/`~` between two spaces (`a * b`).
    The edges of the text count as punctuation: what the report writes around it is not known here."""
    before = text[start - 1] if start > 0 else ""
    after = text[end] if end < len(text) else ""
    if text[start] == "_":
        return before.isalnum() and after.isalnum()
    return _is_space(before) and _is_space(after)


def _is_space(ch: str) -> bool:
    """CommonMark's Unicode whitespace (a space separator, tab, line feed, form feed, carriage return)."""
    return ch != "" and (ch in "\t\n\f\r" or unicodedata.category(ch) == "Zs")


def markdown_inline(text, table_cell: bool = False) -> str:
    """`text` as Markdown inline content that renders as `text` itself (line breaks become spaces, the ends
    are stripped: a Markdown viewer shows neither). Escaped: a backslash before punctuation or at the end,
    every backtick and `|`, `<` where it could open a tag or an autolink (not in `p < 0.01`), `&` where it
    spells an entity, `]` before `(` (an inline link or image; no report defines link references) and at
    the end of the text, and a run of `*`, `_` or `~` unless it cannot delimit emphasis or strikethrough
    there. In a table cell (parsed on its own) a `]` at the end is left as it is."""
    text = _LINE_BREAK.sub(" ", str(text)).strip()
    inert = set()
    for run in _DELIMITER_RUN.finditer(text):
        if _inert_run(text, run.start(), run.end()):
            inert.update(range(run.start(), run.end()))
    out = []
    for i, ch in enumerate(text):
        after = text[i + 1] if i + 1 < len(text) else ""
        if ch == "\\":
            escape = after in _ASCII_PUNCTUATION or not after
        elif ch in "`|":
            escape = True
        elif ch == "<":  # `p < 0.01`, `<= 1.1` stay; a tag, an autolink or an email autolink does not
            escape = bool(after) and not after.isspace() and (after not in "=0123456789" or
                                                              _EMAIL_AUTOLINK.match(text, i) is not None)
        elif ch == "&":
            escape = _ENTITY.match(text, i) is not None
        elif ch == "]":
            escape = after == "(" or (not after and not table_cell)
        elif ch in "*_~":
            escape = i not in inert
        else:
            escape = False
        out.append("\\" + ch if escape else ch)
    return "".join(out)


def markdown_text(text) -> str:
    """Text for a report's .md, shown as it is wherever a line or a block starts with it (a paragraph, a
    heading's or a list item's text, a quote) and mid-line: markdown_inline, and what would start a block
    escaped (`# `, `>`, `- `, `+ `, `1. `, `[`), and a heading's closing `#`s."""
    text = markdown_inline(text)
    ordered = _ORDERED_ITEM.match(text)
    if ordered:
        text = f"{ordered.group(1)}\\{text[ordered.end(1):]}"
    elif _BLOCK_START.match(text):
        text = "\\" + text
    return _CLOSING_HASHES.sub(r"\\#", text)


def markdown_table(headers: list[str], body: list[list[str]]) -> str:
    """A GFM table; every cell through markdown_inline (numbers such as `-1.2` or `97.8%` stay as they are)."""
    def esc(cell) -> str:
        return markdown_inline(cell, table_cell=True)
    lines = ["| " + " | ".join(map(esc, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in body]
    return "\n".join(lines)


def default_out_dir(run_dirs: list[Path], prefix: str) -> Path:
    """<the first run's parent>/<prefix>-<digest of the runs' names>: the same runs land in the same place."""
    names = "\n".join(sorted(Path(p).resolve().name for p in run_dirs))
    return Path(run_dirs[0]).resolve().parent / f"{prefix}-{hashlib.sha256(names.encode()).hexdigest()[:10]}"


def make_out_dir(path: Path) -> Path:
    """Where a report goes, made if missing; one line naming it when that cannot be."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {path}: cannot write a report there ({exc.strerror or exc}); give a "
                          f"directory that can be created or written") from None
    return path


def render_html(template: str, **context) -> str:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    return env.get_template(template).render(**context)


def markdown_section(section: dict, level: int) -> list[str]:
    """A report section ({name, tables: [{title, headers, body, note}], figures}) as Markdown lines: its
    tables, then a line per figure (figures are in report.html) with its caption."""
    md = [f"{'#' * level} {markdown_text(section['name'])}", ""]
    for table in section["tables"]:
        md += [f"{'#' * (level + 1)} {markdown_text(table['title'])}", "",
               markdown_table(table["headers"], table["body"]), "", markdown_text(table["note"]), ""]
    return md + [f"- *{markdown_text(f.title)}* (in report.html): {markdown_text(f.caption)}"
                 for f in section["figures"]] + [""]
