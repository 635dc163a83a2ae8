"""Tables for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

MAX_CELL = 48
ELLIPSIS = "…"


def cell_text(value: object, max_width: int = MAX_CELL) -> str:
    """One table cell: None shows as "-", newlines fold, long text is cut with an ellipsis."""
    if value is None or value == "":
        text = "-"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, dict | list):
        text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    else:
        text = str(value)
    text = " ".join(text.split()) if "\n" in text or "\t" in text else text
    if len(text) > max_width:
        text = text[: max_width - 1] + ELLIPSIS
    return text


def format_table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], *, max_width: int = MAX_CELL
) -> str:
    """Left-aligned columns under an upper-case header; the last column is not padded."""
    cells = [[cell_text(value, max_width) for value in row] for row in rows]
    titles = [header.upper() for header in headers]
    widths = [len(title) for title in titles]
    for row in cells:
        for index, text in enumerate(row):
            widths[index] = max(widths[index], len(text))
    lines = []
    for row in [titles, *cells]:
        padded = [text.ljust(widths[i]) for i, text in enumerate(row[:-1])]
        lines.append("  ".join([*padded, row[-1]]).rstrip())
    return "\n".join(lines)


def print_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    empty: str = "(none)",
    stream: TextIO | None = None,
) -> None:
    out = stream or sys.stdout
    if not rows:
        print(empty, file=out)
        return
    print(format_table(headers, rows), file=out)


def print_json(data: Any, *, stream: TextIO | None = None) -> None:
    print(json.dumps(data, indent=2, sort_keys=False, default=str), file=stream or sys.stdout)
