"""Read back what a panel shows: the cells of the HTML tables in a widget's value."""

from __future__ import annotations

import html as html_module
import re
from html.parser import HTMLParser


class _Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self.tables and self.tables[-1]:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def tables(html: str) -> list[list[list[str]]]:
    """Every table as a list of rows of cell texts (header rows included)."""
    parser = _Tables()
    parser.feed(html)
    return [[row for row in table if row] for table in parser.tables]


def records(html: str, table: int = 0) -> list[dict[str, str]]:
    """One table's body rows as dicts keyed by the header; an index column (pandas' blank
    corner header) is keyed ""."""
    rows = tables(html)[table]
    header = rows[0]
    body = [r for r in rows[1:] if len(r) == len(header)]
    return [dict(zip(header, row)) for row in body]


def text(html: str) -> str:
    """The visible text of an HTML fragment (entities decoded), whitespace collapsed."""
    return html_module.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip())
