"""Reading the workbooks web.spreadsheet writes: the column headers are the row above the frozen pane."""

from __future__ import annotations

from typing import Any


def header_row(ws: Any) -> int:
    assert ws.freeze_panes, "every export freezes its header row"
    return int("".join(ch for ch in ws.freeze_panes if ch.isdigit())) - 1


def table(ws: Any) -> tuple[list[Any], list[tuple[Any, ...]]]:
    """(header values, body rows) of an exported sheet."""
    rows = list(ws.iter_rows(min_row=header_row(ws), values_only=True))
    return list(rows[0]), rows[1:]
