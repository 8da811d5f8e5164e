"""Tables as people read them: GitHub Markdown and CSV files (`write_table`), and HTML for the
notebooks in pieces that fit a notebook's width (`html_table`). Cells are shown as they are: the
tables of `aoi.tables` are strings already.
"""

from __future__ import annotations

import html
import math
import os
from pathlib import Path

import pandas as pd

from aoi.files import write_text

ID_COLUMNS = ("dataset", "source", "method", "reset gradient", "width", "seeds", "chosen", "ε")  # what names a row
# The widest table a notebook shows in one piece (`html_table`): JupyterLab's output area in a
# window 1600 px wide with the file browser open (tests/test_browser.py checks that tables fit),
# estimated with CHAR_PX per character of its 13 px table font plus PADDING_PX per cell.
TABLE_WIDTH_PX, CHAR_PX, PADDING_PX = 1050, 7.5, 18


def markdown_table(table: pd.DataFrame) -> str:
    """``table`` as a GitHub Markdown table (cells as they are)."""
    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"


def column_pieces(table: pd.DataFrame, width_px: float = TABLE_WIDTH_PX) -> list[list[str]]:
    """The columns of ``table`` in the fewest pieces whose estimated rendered width fits
    ``width_px``, the other columns shared out evenly and in order, the identifying columns
    (`ID_COLUMNS`) in every piece.

    A column's width is estimated from its longest cell and the longest word of its heading
    (headings wrap between words, cells never): `CHAR_PX` per character plus `PADDING_PX`."""

    def width(column: str) -> float:
        longest = max([len(str(cell)) for cell in table[column]] + [len(word) for word in str(column).split()])
        return CHAR_PX * longest + PADDING_PX

    ids = [column for column in table if column in ID_COLUMNS]
    values = [column for column in table if column not in ids]
    room = width_px - sum(width(column) for column in ids)
    for count in range(1, len(values) + 1):
        size = math.ceil(len(values) / count)
        pieces = [values[i : i + size] for i in range(0, len(values), size)]
        if all(sum(width(column) for column in piece) <= room for piece in pieces):
            break
    return [ids + piece for piece in pieces] if values else [ids]


def html_table(table: pd.DataFrame, caption: str, key: str) -> str:
    """``table`` as HTML for a notebook, in as many pieces as it takes to fit `TABLE_WIDTH_PX`
    (`column_pieces`; the caption says which part): no index, cells never wrapped (headings
    between words), the paper's rows (``source`` starting with "paper") in grey italics; ``key``
    makes the element ids deterministic (the same bytes on every run)."""
    pieces = column_pieces(table)
    parts = []
    for number_, columns in enumerate(pieces, 1):
        title = caption if len(pieces) == 1 else f"{caption} (part {number_} of {len(pieces)})"
        parts.append(_html_piece(table[columns], title, key if len(pieces) == 1 else f"{key}_{number_}"))
    return "\n".join(parts)


def _html_piece(table: pd.DataFrame, caption: str, key: str) -> str:
    """One HTML table of `html_table`."""
    styler = table.style.hide(axis="index").set_uuid(key).set_caption(html.escape(caption))
    styler = styler.set_table_styles(
        [
            {"selector": "td", "props": "white-space: nowrap; padding: 2px 8px; text-align: right;"},
            {"selector": "th", "props": "white-space: normal; padding: 2px 8px; text-align: right;"},
            {"selector": "caption", "props": "caption-side: top; text-align: left; font-weight: bold;"},
        ]
    )
    if "source" in table:
        paper = table["source"].str.startswith("paper")
        styler = styler.apply(
            lambda row: ["color: #666; font-style: italic" if paper[row.name] else ""] * len(row), axis=1
        )
    return styler.to_html()


def write_table(table: pd.DataFrame, stem: str | os.PathLike, title: str, notes=()) -> list[Path]:
    """Write ``table`` as ``<stem>.csv`` and ``<stem>.md`` (title, notes, Markdown table), atomically."""
    csv, md = Path(f"{stem}.csv"), Path(f"{stem}.md")
    write_text(csv, table.to_csv(index=False))
    write_text(md, f"# {title}\n\n" + "".join(f"- {note}\n" for note in notes) + "\n" + markdown_table(table))
    return [csv, md]
