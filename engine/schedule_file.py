"""Official schedule files (``qifu workdays import FILE``): read, parse and check one year's special days.

The format (``docs/calendar.md``): one ``year=YYYY`` line, then ``YYYY-MM-DD,holiday|workday[,note]`` per special
day. Parsing is strict and collects every problem with its line number, because an import rewrites a whole
year of deadlines: a typo must stop it, not become a working day. :meth:`engine.calendar.CalendarService.load_year`
writes the year.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from .calendar import MAX_NOTE_CHARS, MAX_YEAR, MIN_YEAR
from .errors import QifuError

MAX_SCHEDULE_BYTES = 64 * 1024  # a whole year, one line per day with notes, is ~15 KB; more is a wrong file
SCHEDULE_TYPES: dict[str, bool] = {"holiday": False, "休": False, "workday": True, "班": True}
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_YEAR_RE = re.compile(r"^year\s*=\s*(.*)$", re.IGNORECASE)
_WEEKDAYS = "一二三四五六日"


def statutory_fixed_holidays(year: int) -> frozenset[tuple[int, int]]:
    """Fixed-date days the holiday law of ``year`` makes rest days; an official schedule must list them.

    Labour Day was 1–3 May until 2007, 1 May from 2008 to 2024, and 1–2 May since the 2025 revision.
    """
    may = {(5, 1), (5, 2), (5, 3)} if year < 2008 else {(5, 1)} if year < 2025 else {(5, 1), (5, 2)}
    return frozenset({(1, 1), (10, 1), (10, 2), (10, 3)} | may)


@dataclass(frozen=True)
class ScheduleDay:
    """One line of a schedule file: a rest day (``holiday``) or a make-up working day (``workday``)."""

    day: date
    is_workday: bool
    note: str | None
    line: int


@dataclass(frozen=True)
class Schedule:
    """An official schedule for one year: its special days; every other day follows Mon–Fri working."""

    year: int
    special: dict[date, ScheduleDay]

    def rows(self, source: str) -> list[dict[str, Any]]:
        """Every day of the year as ``workday`` rows, so the year needs nothing from the fallback rule."""
        out, day = [], date(self.year, 1, 1)
        while day.year == self.year:
            entry = self.special.get(day)
            if entry is not None:
                note = entry.note or ("调休上班" if entry.is_workday else "放假")
                out.append({"day": day, "is_workday": entry.is_workday, "note": note, "source": source})
            else:
                out.append({"day": day, "is_workday": day.weekday() < 5, "note": None, "source": source})
            day += timedelta(days=1)
        return out


def _schedule_error(name: str, problems: list[str]) -> QifuError:
    shown = problems[:20] + ([f"……另有 {len(problems) - 20} 处错误"] if len(problems) > 20 else [])
    return QifuError(f"作息安排文件 {name} 有误，未做任何修改：\n  " + "\n  ".join(shown),
                     file=name, problems=problems)


def parse_schedule(text: str, *, name: str = "<schedule>") -> Schedule:
    """Parse and validate the text of a schedule file (format: ``docs/calendar.md``).

    Strict on purpose: an import rewrites a whole year of deadlines, so a typo must stop it, not become a
    working day. All problems are collected (with line numbers) so one run shows everything to fix.
    """
    problems: list[str] = []
    year: int | None = None
    year_line = 0
    entries: list[ScheduleDay] = []
    meaningful = 0
    for lineno, raw in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        meaningful += 1
        match = _YEAR_RE.match(line)
        if match:
            value = match.group(1).strip()
            if year_line:
                problems.append(f"第 {lineno} 行: 重复的 year= 行 (第 {year_line} 行已声明)；一个文件只能载入一个年度")
            elif not re.fullmatch(r"\d{4}", value) or not MIN_YEAR <= int(value) <= MAX_YEAR:
                problems.append(f"第 {lineno} 行: 年份应为 {MIN_YEAR}–{MAX_YEAR} 之间的四位数字: {value!r}")
                year_line = lineno
            else:
                year, year_line = int(value), lineno
            continue
        try:
            fields = [f.strip() for f in next(csv.reader([line]))]
        except csv.Error as exc:
            problems.append(f"第 {lineno} 行: 不是合法的 CSV ({exc})")
            continue
        if [f.lower() for f in fields[:2]] == ["date", "type"]:
            continue  # the optional column header
        if len(fields) not in (2, 3):
            problems.append(f"第 {lineno} 行: 应为 日期,类型[,说明] 两到三列，实际 {len(fields)} 列: {line}")
            continue
        day_text, kind = fields[0], fields[1].lower()
        note = fields[2] if len(fields) == 3 and fields[2] else None
        day = None
        if _DATE_RE.match(day_text):
            try:
                day = date.fromisoformat(day_text)
            except ValueError:
                pass
        if day is None:
            problems.append(f"第 {lineno} 行: 日期无效 (应为 YYYY-MM-DD): {day_text!r}")
            continue
        if kind not in SCHEDULE_TYPES:
            problems.append(f"第 {lineno} 行: 未知类型 {fields[1]!r} (应为 holiday 放假 或 workday 调休上班)")
            continue
        if note is not None and len(note) > MAX_NOTE_CHARS:
            problems.append(f"第 {lineno} 行: 说明超过 {MAX_NOTE_CHARS} 字")
            continue
        entries.append(ScheduleDay(day, SCHEDULE_TYPES[kind], note, lineno))
    if meaningful == 0:
        raise _schedule_error(name, ["文件为空 (没有 year= 行，也没有任何日期)"])
    if year is None and not year_line:
        problems.append("缺少 year=YYYY 行 (声明本文件载入的年度)")
    if not entries:
        problems.append("文件中没有任何日期行")
    special: dict[date, ScheduleDay] = {}
    for entry in entries:
        if year is not None and entry.day.year != year:
            problems.append(f"第 {entry.line} 行: {entry.day} 不在声明的年度 {year} 内"
                            f" (跨年的调休日请用 qifu workdays set 单独设置)")
            continue
        first = special.get(entry.day)
        if first is not None:
            problems.append(f"第 {entry.line} 行: 日期 {entry.day} 重复 (第 {first.line} 行已出现)")
            continue
        if entry.is_workday and entry.day.weekday() < 5:
            problems.append(f"第 {entry.line} 行: {entry.day} 是周{_WEEKDAYS[entry.day.weekday()]}，本来就是工作日；"
                            f"workday 只用于周末调休上班")
            continue
        special[entry.day] = entry
    if year is not None and not problems:
        for month, dom in sorted(statutory_fixed_holidays(year)):
            day = date(year, month, dom)
            if day not in special or special[day].is_workday:
                problems.append(f"法定节假日 {day} 未标为 holiday (文件可能不完整)")
    if problems:
        raise _schedule_error(name, problems)
    assert year is not None
    return Schedule(year, special)


def read_schedule_file(path: str | os.PathLike[str]) -> Schedule:
    """Read (size-limited, UTF-8 with or without BOM) and parse a schedule file."""
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise QifuError(f"作息安排文件不存在或不是普通文件: {path}")
    with path.open("rb") as fh:
        data = fh.read(MAX_SCHEDULE_BYTES + 1)
    if len(data) > MAX_SCHEDULE_BYTES:
        raise _schedule_error(name, [f"文件过大 (上限 {MAX_SCHEDULE_BYTES // 1024} KB)，不像一年的作息安排"])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _schedule_error(name, ["文件不是 UTF-8 编码 (请用 UTF-8 另存)"]) from None
    return parse_schedule(text, name=name)


def import_source(filename: str) -> str:
    """``import:FILENAME`` cut to the width of ``workday.source``."""
    return f"import:{Path(filename).name}"[:50]
