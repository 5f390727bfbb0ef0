"""The working-day calendar of the Chinese statutory schedule (holidays and 调休 make-up days).

Days of years whose official schedule is loaded come from the ``workday`` table (seeded from the
``chinesecalendar`` package, 2004–2026, and editable). Any other year follows the **fallback rule**:
Monday–Friday are working days except the fixed-date statutory holidays (1 January; 1–2 May; 1–3 October);
Saturdays and Sundays are rest days; lunar holidays (Spring Festival, Qingming, Dragon Boat, Mid-Autumn) and
make-up days cannot be known in advance. Every answer that looked at such a day is *provisional*: callers
learn it through :func:`track_provisional`.

Conventions (settings with documented defaults, see :class:`CalendarSettings`):

- counting starts the day after receipt: ``n`` working days after a case received on day D are the first
  ``n`` working days strictly after D;
- a deadline ends at the end (23:59:59) of its last working day, Asia/Shanghai.

An administrator loads an official schedule with ``qifu workdays import FILE`` (:func:`read_schedule_file`,
:func:`import_schedule`, then :func:`recompute_deadlines`) and edits single days with ``qifu workdays set``
(:func:`set_day`). The file format and the rules are documented in ``docs/calendar.md``.
"""

from __future__ import annotations

import contextvars
import csv
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from .clock import SHANGHAI, to_utc
from .errors import QifuError
from .models import CalendarYear, Instance, Timer, Workday

if TYPE_CHECKING:  # runtime imports this module; the type is only needed for annotations
    from .runtime import Runtime

FIXED_HOLIDAYS: frozenset[tuple[int, int]] = frozenset({(1, 1), (5, 1), (5, 2), (10, 1), (10, 2), (10, 3)})
MAX_WORKING_DAYS = 3660  # ten years of counting is a mistake, not a deadline


@dataclass(frozen=True)
class CalendarSettings:
    """The counting conventions, from the environment (documented in ``docs/calendar.md``).

    ``QIFU_COUNT_FROM``: ``next_day`` (default) or ``same_day``. ``QIFU_DEADLINE_END_OF_DAY``: the local
    Asia/Shanghai wall time a deadline day ends at, ``HH:MM[:SS]``, default ``23:59:59``. A misspelt value is
    an error rather than silently the default: a wrong convention would quietly shift every deadline.
    """

    count_from_next_day: bool = True
    end_of_day: time = time(23, 59, 59)

    @classmethod
    def from_env(cls) -> CalendarSettings:
        count_from = os.environ.get("QIFU_COUNT_FROM", "next_day").strip()
        if count_from not in ("next_day", "same_day"):
            raise QifuError(f"QIFU_COUNT_FROM 只能是 next_day 或 same_day，当前为: {count_from!r}")
        text = os.environ.get("QIFU_DEADLINE_END_OF_DAY", "23:59:59").strip()
        try:
            end = time.fromisoformat(text)
        except ValueError:
            raise QifuError(f"QIFU_DEADLINE_END_OF_DAY 应为 HH:MM[:SS]，当前为: {text!r}") from None
        if end.tzinfo is not None:
            raise QifuError("QIFU_DEADLINE_END_OF_DAY 不能带时区：期限一律按北京时间 (Asia/Shanghai) 计算")
        return cls(count_from_next_day=count_from == "next_day", end_of_day=end)


@dataclass
class _Tracker:
    provisional: bool = False
    years: set[int] = field(default_factory=set)


_tracker: contextvars.ContextVar[_Tracker | None] = contextvars.ContextVar("qifu_calendar_tracker", default=None)


@contextmanager
def track_provisional() -> Iterator[_Tracker]:
    """Collect whether any calendar answer inside the block relied on the fallback rule."""
    tracker = _Tracker()
    token = _tracker.set(tracker)
    try:
        yield tracker
    finally:
        _tracker.reset(token)


def fallback_is_workday(day: date) -> bool:
    """The documented rule for a year without an official schedule: Mon–Fri except fixed-date holidays."""
    return day.weekday() < 5 and (day.month, day.day) not in FIXED_HOLIDAYS


class WorkdayCalendar:
    """An in-memory snapshot of the calendar table; cheap to query, reloaded when the table changes."""

    def __init__(
        self,
        days: dict[date, bool],
        official_years: Iterable[int],
        settings: CalendarSettings | None = None,
        revision: tuple = (),
    ) -> None:
        self.days = days
        self.official_years = frozenset(official_years)
        self.settings = settings or CalendarSettings.from_env()
        self.revision = revision

    # --- single days -------------------------------------------------------------------------------
    def is_official(self, day: date) -> bool:
        return day.year in self.official_years

    def is_workday(self, day: date) -> bool:
        if day.year in self.official_years:
            known = self.days.get(day)
            if known is not None:
                return known
        tracker = _tracker.get()
        if tracker is not None:
            tracker.provisional = True
            tracker.years.add(day.year)
        known = self.days.get(day)  # an admin may have entered single days of an unofficial year
        return known if known is not None else fallback_is_workday(day)

    # --- counting ----------------------------------------------------------------------------------
    def add_working_days(self, start: date, n: int) -> date:
        """The n-th working day after ``start`` (``n`` ≥ 1); n = 0 gives the first working day on/after start."""
        if n < 0 or n > MAX_WORKING_DAYS:
            raise ValueError(f"工作日数必须在 0 到 {MAX_WORKING_DAYS} 之间: {n}")
        day = start
        if n == 0:
            while not self.is_workday(day):
                day += timedelta(days=1)
            return day
        if not self.settings.count_from_next_day:
            n -= 1
            while not self.is_workday(day):
                day += timedelta(days=1)
            if n == 0:
                return day
        counted = 0
        while counted < n:
            day += timedelta(days=1)
            if self.is_workday(day):
                counted += 1
        return day

    def end_of(self, day: date) -> datetime:
        """The instant a deadline on ``day`` ends (aware, UTC)."""
        return datetime.combine(day, self.settings.end_of_day, SHANGHAI).astimezone(UTC)

    def deadline(self, start: datetime | str, n: int) -> datetime:
        """End of the n-th working day after the instant ``start`` (local date in Asia/Shanghai)."""
        local = to_utc(start).astimezone(SHANGHAI).date()
        return self.end_of(self.add_working_days(local, n))

    def end_of_working_day(self, start: datetime | str) -> datetime:
        """End of the day of ``start`` if it is a working day, else end of the next working day."""
        local = to_utc(start).astimezone(SHANGHAI).date()
        return self.end_of(self.add_working_days(local, 0))

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in (start, end]; negative when end is before start."""
        if end < start:
            return -self.working_days_between(end, start)
        count, day = 0, start
        while day < end:
            day += timedelta(days=1)
            count += self.is_workday(day)
        return count


# --- the table ---------------------------------------------------------------------------------------
_cache: dict[tuple[str, CalendarSettings], WorkdayCalendar] = {}


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive UTC; PostgreSQL hands back aware values in the session's zone."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_REVISION = select(func.count(CalendarYear.__table__.c.year), func.max(CalendarYear.__table__.c.loaded_at))


def _revision(session: Session) -> tuple:
    row = session.connection().execute(_REVISION).one()  # Core, built once: this runs in steps
    return (row[0], str(row[1]))


def load_calendar(session: Session) -> WorkdayCalendar:
    """The calendar as the table holds it now; a cached snapshot unless a year was (re)loaded or edited."""
    settings = CalendarSettings.from_env()
    key = (str(session.get_bind().url), settings)
    revision = _revision(session)
    cached = _cache.get(key)
    if cached is not None and cached.revision == revision:
        return cached
    days = {d: w for d, w in session.execute(select(Workday.day, Workday.is_workday))}
    official = [y for (y,) in session.execute(select(CalendarYear.year).where(CalendarYear.source != "admin"))]
    cal = WorkdayCalendar(days, official, settings, revision=revision)
    _cache[key] = cal
    return cal


def touch_year(session: Session, year: int, source: str, now: datetime) -> None:
    """Mark ``year`` as changed (and official unless ``source`` is ``admin``) so every process reloads.

    Caches compare (number of years, newest ``loaded_at``), so the stamp written here is strictly newer than
    every stamp in the table, even when ``now`` is not (a fixed test clock, clock skew between servers):
    otherwise an edit of an older year would leave the revision unchanged and other processes would keep
    answering from the stale snapshot.
    """
    latest = session.scalar(select(func.max(CalendarYear.loaded_at)))
    stamp = now if latest is None else max(now, _utc(latest) + timedelta(microseconds=1))
    row = session.get(CalendarYear, year)
    if row is None:
        session.add(CalendarYear(year=year, source=source, loaded_at=stamp))
    else:
        if source != "admin":
            row.source = source
        row.loaded_at = stamp


def seed_from_chinesecalendar(session: Session, now: datetime) -> int:
    """Fill the table from the ``chinesecalendar`` package for every year it knows. Returns days written."""
    import chinese_calendar
    from chinese_calendar import constants

    chinese_names = {h.value: h.chinese for h in chinese_calendar.Holiday}
    years = sorted({d.year for d in constants.holidays} | {d.year for d in constants.workdays})
    have = {y for (y,) in session.execute(select(CalendarYear.year).where(CalendarYear.source != "admin"))}
    written = 0
    for year in years:
        if year in have:
            continue
        day = date(year, 1, 1)
        rows = []
        while day.year == year:
            working = chinese_calendar.is_workday(day)
            _, name = chinese_calendar.get_holiday_detail(day)
            name = chinese_names.get(name, name)  # the clerks read Chinese: 国庆节, not "National Day"
            if working and day.weekday() >= 5:
                note = f"调休上班 ({name})" if name else "调休上班"
            else:
                note = name or None
            rows.append({"day": day, "is_workday": working, "note": note, "source": "chinesecalendar"})
            day += timedelta(days=1)
        session.execute(Workday.__table__.delete().where(Workday.day.between(date(year, 1, 1), date(year, 12, 31))))
        session.execute(Workday.__table__.insert(), rows)
        touch_year(session, year, "chinesecalendar", now)
        written += len(rows)
    return written


# --- official schedules: ``qifu workdays import FILE`` ----------------------------------------------------
MAX_SCHEDULE_BYTES = 64 * 1024  # a whole year, one line per day with notes, is ~15 KB; more is a wrong file
MAX_NOTE_CHARS = 100  # the width of workday.note
MIN_YEAR, MAX_YEAR = 2000, 2100
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


@dataclass(frozen=True)
class ImportResult:
    year: int
    source: str
    days: int
    rest_days: int
    holidays: int  # rest days the file lists (statutory holidays and the days moved next to them)
    makeup_days: int
    replaced: str | None  # source of the official schedule this import replaced, if the year had one


def import_schedule(session: Session, schedule: Schedule, *, source: str, now: datetime) -> ImportResult:
    """Write every day of ``schedule.year`` and mark the year official, inside the caller's transaction.

    The whole year is replaced — including single days an administrator set before — because the official
    notice supersedes them; the caller commits or rolls back everything at once.
    """
    if source == "admin" or not source:
        raise QifuError("导入来源不能为 admin")
    year = schedule.year
    existing = session.get(CalendarYear, year)
    replaced = existing.source if existing is not None and existing.source != "admin" else None
    rows = schedule.rows(source)
    session.execute(delete(Workday).where(Workday.day.between(date(year, 1, 1), date(year, 12, 31))))
    session.execute(insert(Workday), rows)
    touch_year(session, year, source, now)
    session.flush()
    return ImportResult(year=year, source=source, days=len(rows),
                        rest_days=sum(not r["is_workday"] for r in rows),
                        holidays=sum(not d.is_workday for d in schedule.special.values()),
                        makeup_days=sum(d.is_workday for d in schedule.special.values()), replaced=replaced)


# --- single days: ``qifu workdays set`` -------------------------------------------------------------------
def set_day(session: Session, day: date, working: bool, note: str | None, now: datetime) -> bool:
    """An administrator's correction of one day (source ``admin``). Returns whether the year is official.

    The year is touched as ``admin`` so every process reloads its snapshot, without making an unofficial
    year official: one corrected day does not make a whole schedule known.
    """
    if note is not None and len(note) > MAX_NOTE_CHARS:
        raise QifuError(f"说明不能超过 {MAX_NOTE_CHARS} 字")
    if not MIN_YEAR <= day.year <= MAX_YEAR:
        raise QifuError(f"年份应在 {MIN_YEAR}–{MAX_YEAR} 之间: {day}")
    row = session.get(Workday, day)
    if row is None:
        session.add(Workday(day=day, is_workday=working, note=note, source="admin"))
    else:
        row.is_workday, row.note, row.source = working, note, "admin"
    touch_year(session, day.year, "admin", now)
    session.flush()
    year = session.get(CalendarYear, day.year)
    return year is not None and year.source != "admin"


# --- reading a month: ``qifu workdays show`` --------------------------------------------------------------
@dataclass(frozen=True)
class DayInfo:
    day: date
    is_workday: bool
    note: str | None
    source: str | None  # None: the fallback rule decided


@dataclass(frozen=True)
class MonthView:
    year: int
    month: int
    official: bool
    year_source: str | None  # chinesecalendar | import:FILE | admin (only single days edited) | None
    days: list[DayInfo]


def month_view(session: Session, year: int, month: int) -> MonthView:
    """Every day of one month as the engine counts it, with notes and whether the year is official."""
    if not MIN_YEAR <= year <= MAX_YEAR or not 1 <= month <= 12:
        raise QifuError(f"月份无效: {year}-{month:02d}")
    cal = load_calendar(session)
    first = date(year, month, 1)
    last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    rows = {r.day: r for r in session.scalars(select(Workday).where(Workday.day.between(first, last)))}
    days, day = [], first
    while day <= last:
        row = rows.get(day)
        days.append(DayInfo(day, cal.is_workday(day), row.note if row else None, row.source if row else None))
        day += timedelta(days=1)
    year_row = session.get(CalendarYear, year)
    return MonthView(year, month, year in cal.official_years, year_row.source if year_row else None, days)


# --- after a schedule changed: move the deadlines that depended on it ---------------------------------------
@dataclass
class RecomputeReport:
    checked: int = 0
    changes: list[dict[str, Any]] = field(default_factory=list)  # recompute_timer's dicts + business_key
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def moved(self) -> list[dict[str, Any]]:
        return [c for c in self.changes if c["from"] != c["to"]]


def recompute_deadlines(runtime: Runtime, *, reason: str, actor: str | None,
                        everything: bool = False) -> RecomputeReport:
    """Re-evaluate waiting timers against the calendar as it is now; each one in its own step.

    By default only provisional timers (computed from the fallback rule) are checked: they are the ones a
    newly loaded schedule can change. ``everything`` checks every waiting timer — needed when an official
    year was corrected, because nothing records which years a deadline looked at. Run this *after* the
    calendar change is committed: :meth:`Runtime.recompute_timer` opens its own transaction per timer, so
    one case changing concurrently (or failing) leaves the others and the calendar in place; running again
    picks up whatever is still provisional.
    """
    query = select(Timer.id).where(Timer.status == "waiting").order_by(Timer.due_at, Timer.id)
    if not everything:
        query = query.where(Timer.provisional.is_(True))
    with runtime.sessions() as session:
        ids = list(session.scalars(query))
    report = RecomputeReport(checked=len(ids))
    for timer_id in ids:
        try:
            change = runtime.recompute_timer(timer_id, reason=reason, actor=actor)
        except Exception as exc:  # noqa: BLE001 - one broken case must not stop the others; reported
            report.failures.append({"timer": timer_id, "error": f"{type(exc).__name__}: {exc}"})
            continue
        if change is not None:
            report.changes.append(change)
    if report.changes:
        with runtime.sessions() as session:
            wanted = {c["instance"] for c in report.changes}
            keys = {i: k for i, k in session.execute(
                select(Instance.id, Instance.business_key).where(Instance.id.in_(wanted)))}
        for change in report.changes:
            change["business_key"] = keys.get(change["instance"])
    return report
