"""A report's figure: its title, a caption that says what was measured and how, and the picture: inline SVG
(crisp, with a tooltip per point) or, where the SVG would be too big, a PNG data URI. Both open from disk:
report.html carries everything it shows."""

from __future__ import annotations

import base64
import io
import itertools
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # no display on a build machine or in CI
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from reports.svg import figure_svg

# past this many points (or bytes of SVG) a figure is a PNG: a browser slows down on huge inline SVGs, and
# the points' tooltips are then in the tables beside it
MAX_SVG_POINTS = 1500
MAX_SVG_BYTES = 1_500_000

_figure_ids = itertools.count()


@dataclass(frozen=True)
class Figure:
    title: str
    caption: str      # what is measured and how
    uri: str = ""     # a PNG data URI ...
    svg: str = ""     # ... or inline <svg> markup


def to_data_uri(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def finish(fig, title: str, caption: str, tooltips: dict[str, list[str]] | None = None,
           n_points: int | None = None) -> Figure:
    """The figure as inline SVG with its tooltips, or as a PNG where that is too big (the caption says so).
    `n_points`: how many points the figure has, where no tooltips were made for them."""
    if n_points is None:
        n_points = sum(len(texts) for texts in (tooltips or {}).values())
    if n_points <= MAX_SVG_POINTS:
        svg = figure_svg(fig, f"fig{next(_figure_ids)}", tooltips)
        if len(svg) <= MAX_SVG_BYTES:
            plt.close(fig)
            return Figure(title, caption, svg=svg)
        why = f"{len(svg) / 1e6:.1f} MB as SVG"
    else:
        why = f"{n_points:,} points"
    return Figure(title, f"{caption} Drawn as PNG ({why}): the values are in the tables.", uri=to_data_uri(fig))


def plain(text) -> str:
    """Text for a matplotlib label: a '$' from a tensor name would start mathtext (and fail to draw)."""
    return str(text).replace("$", r"\$")


def log_scale(ax, which: str = "x") -> None:
    """A log x (or y) axis labelled in plain numbers (200, 0.8), not 2 x 10^2."""
    getattr(ax, f"set_{which}scale")("log")
    axis = getattr(ax, f"{which}axis")
    plain_number = FuncFormatter(lambda value, _: f"{value:g}")
    axis.set_major_formatter(plain_number)
    lo, hi = getattr(ax, f"get_{which}lim")()
    if hi / lo < 100:  # within two decades the 2s and 5s are labelled too; beyond, they would crowd
        axis.set_minor_locator(LogLocator(subs=(2, 5)))
        axis.set_minor_formatter(plain_number)
    else:
        axis.set_minor_formatter(NullFormatter())


def spans_decades(values, decades: float = 1.0) -> bool:
    """A log axis serves values whose largest is >= 10^decades times their smallest (all positive)."""
    positive = [v for v in values if v == v and v > 0]
    return len(positive) >= 2 and max(positive) >= 10 ** decades * min(positive)
