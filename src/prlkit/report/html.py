"""Building blocks of one self-contained HTML page: escaped tables, PNGs as data URIs, inline CSS.

No JavaScript and no external reference: the file can be mailed, archived or opened offline.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Sequence
from html import escape

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 1.5em auto;
       max-width: 1150px; padding: 0 1em; color: #1d1d1f; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.8em; }
.note { color: #555; font-size: 0.92em; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #d0d0d0; padding: 0.25em 0.55em; text-align: right; white-space: nowrap; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
tr.rim td { background: #fff1e6; }
img { max-width: 100%; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
.gallery { display: flex; flex-wrap: wrap; gap: 0.8em; }
.card { border: 1px solid #ccc; border-radius: 6px; padding: 0.4em; width: 540px; }
.card.rim { border-color: #d9480f; border-width: 2px; }
.card p { margin: 0.2em 0; font-size: 0.9em; }
details { margin: 0.5em 0 1em; } summary { cursor: pointer; color: #333; }
.table-wrap { overflow-x: auto; max-width: 100%; }
"""


def number(value: object, digits: int = 3) -> str:
    """A table cell for a number: fixed decimals, 'n/a' for missing or NaN."""
    if value is None or value == "" or math.isnan(float(value)):
        return "n/a"
    return f"{float(value):.{digits}f}"


def table(header: Sequence[str], rows: Iterable[Sequence[object]], row_ids: Sequence[str] | None = None,
          row_classes: Sequence[str] | None = None, raw_columns: frozenset[int] = frozenset()) -> str:
    """An HTML table; every cell is escaped except the columns in `raw_columns` (already HTML). A wide table
    scrolls inside its own box rather than widening the page."""
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = []
    for n, row in enumerate(rows):
        attributes = ""
        if row_ids is not None:
            attributes += f' id="{escape(row_ids[n])}"'
        if row_classes is not None and row_classes[n]:
            attributes += f' class="{escape(row_classes[n])}"'
        cells = "".join(f"<td>{cell if i in raw_columns else escape(str(cell))}</td>" for i, cell in enumerate(row))
        body.append(f"<tr{attributes}>{cells}</tr>")
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def png_image(data: bytes, alt: str) -> str:
    """An <img> whose source is the PNG itself (base64 data URI), so the page needs no other file."""
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img src="data:image/png;base64,{encoded}" alt="{escape(alt)}">'


def link(anchor: str, text: str) -> str:
    """A link to an element of the same page."""
    return f'<a href="#{escape(anchor)}">{escape(text)}</a>'


def section(title: str, body: str, anchor: str | None = None) -> str:
    """A titled part of the page; `body` is HTML."""
    attribute = f' id="{escape(anchor)}"' if anchor else ""
    return f"<section{attribute}><h2>{escape(title)}</h2>\n{body}\n</section>"


def paragraph(text: str, css_class: str | None = None) -> str:
    """An escaped paragraph of plain text."""
    attribute = f' class="{css_class}"' if css_class else ""
    return f"<p{attribute}>{escape(text)}</p>"


def preformatted(text: str) -> str:
    """Escaped text in a <pre> block (configurations, file listings)."""
    return f"<pre>{escape(text)}</pre>"


def collapsible(summary: str, body: str) -> str:
    """A <details> block: closed by default, opens without JavaScript."""
    return f"<details><summary>{escape(summary)}</summary>\n{body}\n</details>"


def document(title: str, subtitle: str, parts: Iterable[str]) -> str:
    """The whole page: inline CSS, a heading and the given HTML parts."""
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{escape(title)}</h1>\n{paragraph(subtitle, 'note')}\n{body}\n</body>\n</html>\n"
    )
