"""The one writer of every .xlsx the system hands out (ledger, briefing, later exports): safe and readable.

Safe: every text cell is written as text, never as a formula. A value that a spreadsheet would read as a
formula — starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return — gets a leading apostrophe, as
OWASP's CSV-injection guidance says, so ``=HYPERLINK(...)`` typed into the public form reaches the supervisor
as the text it is. Characters a workbook cannot hold (C0 controls such as NUL or vertical tab) are replaced
by U+FFFD instead of failing the whole export, and over-long text is cut at Excel's cell limit.

Readable: a title, the filter used, the export time and who exported it, and the time-zone note above a bold
header row that stays frozen and carries an autofilter; columns as wide as their header and the first
200 rows' text (a Chinese character counts double, at most 60); instants written as
Asia/Shanghai wall time in date cells.

Rows are streamed (openpyxl's write-only mode), so an export of a whole year never holds all rows at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from io import BytesIO
from itertools import chain, islice
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter

from engine.clock import SHANGHAI

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
MAX_CELL_TEXT = 32767
TIME_ZONE_NOTE = "时间均为北京时间（Asia/Shanghai，UTC+8）"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_WIDTH = 60.0
WIDTH_SAMPLE = 200  # rows read ahead to fit the column widths (the rest stream as before)
_FORMATS = {"datetime": "yyyy-mm-dd hh:mm", "date": "yyyy-mm-dd", "percent": "0.0%", "number": "General"}


def safe_text(value: str) -> str:
    """Text a spreadsheet shows as it is: no formula, no characters it cannot store, within the cell limit."""
    text = ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)
    if text.startswith(FORMULA_STARTS):
        text = "'" + text
    return text[:MAX_CELL_TEXT]


def text_width(text: str) -> float:
    """Display width in Excel's character units: a CJK character is about two Latin ones."""
    return sum(2.0 if ord(ch) > 0x2E80 else 1.0 for ch in text)


@dataclass(frozen=True)
class Column:
    """One column: its header, what its cells hold (text, datetime, date, number, percent), and a width."""

    title: str
    kind: str = "text"
    width: float | None = None  # characters; default: fits the header and typical values of the kind

    def fitted_width(self) -> float:
        if self.width is not None:
            return self.width
        typical = {"datetime": 17, "date": 11, "number": 8, "percent": 8}.get(self.kind, 12)
        return max(typical, text_width(self.title) + 2)


@dataclass
class Sheet:
    """What one worksheet shows; ``rows`` may be a generator (it is consumed once, while writing)."""

    name: str
    title: str
    columns: Sequence[Column]
    rows: Iterable[Sequence[Any]]
    notes: list[str] = field(default_factory=list)  # the filter, the export time and who exported it


def export_notes(filters: dict[str, str], *, exported_by: str, at: datetime) -> list[str]:
    """The header block every export carries: the filter used, when and by whom (Beijing time)."""
    shown = "；".join(f"{k}：{v}" for k, v in filters.items() if v) or "无（全部）"
    return [f"筛选条件：{shown}",
            f"导出时间：{at.astimezone(SHANGHAI):%Y-%m-%d %H:%M}　导出人：{exported_by}", TIME_ZONE_NOTE]


def _cell(ws: Any, value: Any, kind: str) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is not None:  # workbooks hold wall time: show it as the pages do, in Beijing time
            value = value.astimezone(SHANGHAI).replace(tzinfo=None)
        cell = WriteOnlyCell(ws, value)
        cell.number_format = _FORMATS["date" if kind == "date" else "datetime"]
        return cell
    if isinstance(value, date):
        cell = WriteOnlyCell(ws, value)
        cell.number_format = _FORMATS["date"]
        return cell
    if isinstance(value, bool):
        return WriteOnlyCell(ws, "是" if value else "否")
    if isinstance(value, (int, float)):
        cell = WriteOnlyCell(ws, value)
        if kind == "percent":
            cell.number_format = _FORMATS["percent"]
        return cell
    cell = WriteOnlyCell(ws, None if value is None else safe_text(str(value)))
    cell.data_type = "s"  # text, whatever it looks like
    return cell


def _shown_width(value: Any) -> float:
    """How wide a cell's text shows (dates and numbers by their formats, text by its characters)."""
    if value is None:
        return 0.0
    if isinstance(value, datetime):
        return 16.0
    if isinstance(value, date):
        return 10.0
    if isinstance(value, bool):
        return 2.0
    if isinstance(value, float):
        return len(f"{value:.2f}")
    return max((text_width(line) for line in str(value).splitlines()), default=0.0)


def fitted_widths(columns: Sequence[Column], sample: Sequence[Sequence[Any]]) -> list[float]:
    """Each column as wide as its header and the widest value of ``sample`` (the first rows), CJK counted
    double, within [the column's own width, :data:`MAX_WIDTH`]."""
    widths = []
    for i, column in enumerate(columns):
        widest = max((_shown_width(row[i]) for row in sample if i < len(row)), default=0.0)
        widths.append(min(MAX_WIDTH, max(column.fitted_width(), widest + 2)))
    return widths


def _write_sheet(wb: Workbook, sheet: Sheet) -> None:
    ws = wb.create_sheet(safe_text(sheet.name)[:31].lstrip("'") or "Sheet")
    rows = iter(sheet.rows)
    sample = list(islice(rows, WIDTH_SAMPLE))  # the widths go before the first row: fit them to the first rows
    for i, width in enumerate(fitted_widths(sheet.columns, sample), start=1):
        ws.column_dimensions[get_column_letter(i)].width = width
    header_row = len(sheet.notes) + 2
    ws.freeze_panes = f"A{header_row + 1}"
    title = WriteOnlyCell(ws, safe_text(sheet.title))
    title.font = Font(bold=True, size=14)
    ws.append([title])
    for note in sheet.notes:
        ws.append([_cell(ws, note, "text")])
    bold, centre = Font(bold=True), Alignment(horizontal="center", vertical="center", wrap_text=True)
    header = []
    for column in sheet.columns:
        cell = _cell(ws, column.title, "text")
        cell.font, cell.alignment = bold, centre
        header.append(cell)
    ws.append(header)
    last = header_row
    for row in chain(sample, rows):
        ws.append([_cell(ws, value, column.kind) for value, column in zip(row, sheet.columns, strict=True)])
        last += 1
    ws.auto_filter.ref = f"A{header_row}:{get_column_letter(len(sheet.columns))}{last}"


def workbook_bytes(*sheets: Sheet) -> bytes:
    """The workbook holding ``sheets``, as the bytes of an .xlsx file."""
    wb = Workbook(write_only=True)
    for sheet in sheets:
        _write_sheet(wb, sheet)
    buffer = BytesIO()
    wb.save(buffer)
    return buffer.getvalue()

