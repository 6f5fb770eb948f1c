"""Matplotlib figures as inline SVG for the HTML reports: crisp at any zoom, and every plotted point can
carry a tooltip (an SVG <title>, which browsers show on hover, no script needed).

Several figures sit inline in one page, so each figure's element ids get a prefix of their own: matplotlib
names clip paths and glyphs by content, and two figures with the same id would borrow each other's."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET

import matplotlib

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
ET.register_namespace("", SVG_NS)
ET.register_namespace("xlink", XLINK_NS)

_URL_REF = re.compile(r"url\(#([^)]+)\)")


def tag(name: str) -> str:
    return f"{{{SVG_NS}}}{name}"


def figure_svg(fig, prefix: str, tooltips: dict[str, list[str]] | None = None) -> str:
    """The figure as <svg> markup (closed). `tooltips` maps the gid given to a scatter collection
    (`collection.set_gid(...)`) to one text per point, in the collection's order; the texts are escaped
    here, so they may hold anything a user's file named."""
    buffer = io.StringIO()
    # text as <text> (escaped by matplotlib), not as glyph outlines: a tenth of the size and the time
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    root = ET.fromstring(buffer.getvalue())
    for gid, texts in (tooltips or {}).items():
        _add_titles(root, gid, texts)
    _prefix_ids(root, prefix)
    root.set("role", "img")
    return ET.tostring(root, encoding="unicode")


def _add_titles(root: ET.Element, gid: str, texts: list[str]) -> None:
    group = next((g for g in root.iter(tag("g")) if g.get("id") == gid), None)
    if group is None:
        raise ValueError(f"no element with gid {gid!r} in the figure")
    # one <path> or <use> per point, in the order of the collection's offsets (matplotlib draws them so);
    # a clip group may sit in between
    marks = [el for el in group.iter() if el.tag in (tag("path"), tag("use")) and el is not group
             and not _inside_defs(group, el)]
    if len(marks) != len(texts):
        raise ValueError(f"{gid}: {len(marks)} marks drawn for {len(texts)} tooltips")
    for mark, text in zip(marks, texts):
        title = ET.SubElement(mark, tag("title"))
        title.text = text


def _inside_defs(group: ET.Element, element: ET.Element) -> bool:
    return any(element in defs.iter() for defs in group.iter(tag("defs")))


def _prefix_ids(root: ET.Element, prefix: str) -> None:
    href = f"{{{XLINK_NS}}}href"
    for element in root.iter():
        if element.get("id"):
            element.set("id", f"{prefix}-{element.get('id')}")
        for attribute in (href, "href"):
            value = element.get(attribute)
            if value and value.startswith("#"):
                element.set(attribute, f"#{prefix}-{value[1:]}")
        for attribute, value in list(element.attrib.items()):
            if "url(#" in value:
                element.set(attribute, _URL_REF.sub(lambda m: f"url(#{prefix}-{m.group(1)})", value))
