"""The working-day calendar of the Chinese statutory schedule (holidays and 调休 make-up days).

Days of years whose official schedule is loaded come from the ``workday`` table (seeded from the
``chinesecalendar`` package, 2004–2026, and editable). Any other year follows the **fallback rule**:
Monday–Friday are working days except the statutory holidays that can be computed in advance (RC-10): the
fixed dates (1 January; 1–2 May; 1–3 October), the Spring Festival (除夕 to 初三) and the Dragon Boat and
Mid-Autumn festivals from the lunar calendar, and Qingming from its solar term (the ``lunar_python``
package); Saturdays and Sundays are rest days. The days moved next to a holiday and the make-up working days
(调休) cannot be known before the State Council's notice, so every answer that looked at such a day is
*provisional*: callers learn it through :func:`track_provisional`.

Conventions (settings with documented defaults, see :class:`CalendarSettings`):

- counting starts the day after receipt: ``n`` working days after a case received on day D are the first
  ``n`` working days strictly after D;
- a deadline ends at the end (23:59:59) of its last working day, Asia/Shanghai;
- office hours are 08:30–17:30 on working days: a case received outside them counts its same-day limit
  (当场/当日, :meth:`WorkdayCalendar.end_of_receipt_day`) from the next working day's opening.

An administrator loads an official schedule with ``qifu workdays import FILE`` (read by
:mod:`engine.schedule_file`, written by :func:`import_schedule`; the engine's management service then
recomputes the deadlines that depended on it) and edits single days with ``qifu workdays set``
(:func:`set_day`). The file format and the rules are documented in ``docs/calendar.md``. The calendar knows
nothing of cases.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol, cast

from sqlalchemy import Table, delete, func, insert, select, type_coerce
from sqlalchemy.orm import Session

from .clock import SHANGHAI, to_utc
from .errors import QifuError
from .models import CalendarYear, UTCDateTime, Workday
from .sql import Prepared, instant

if TYPE_CHECKING:
    from .db import Database
    from .settings import EngineSettings

FIXED_HOLIDAYS: frozenset[tuple[int, int]] = frozenset({(1, 1), (5, 1), (5, 2), (10, 1), (10, 2), (10, 3)})
FIXED_HOLIDAY_NAMES = {1: "元旦", 5: "劳动节", 10: "国庆节"}
MAX_WORKING_DAYS = 3660  # ten years of counting is a mistake, not a deadline
MAX_NOTE_CHARS = 100  # the width of workday.note
MIN_YEAR, MAX_YEAR = 2000, 2100  # years the calendar may hold


@dataclass(frozen=True)
class CalendarSettings:
    """The counting conventions (documented in ``docs/calendar.md``), from :class:`engine.settings.EngineSettings`:
    ``QIFU_COUNT_FROM`` (``next_day`` or ``same_day``) and ``QIFU_DEADLINE_END_OF_DAY`` (the Asia/Shanghai wall
    time a deadline day ends at)."""

    count_from_next_day: bool = True
    end_of_day: time = time(23, 59, 59)
    office_open: time = time(8, 30)
    office_close: time = time(17, 30)

    @classmethod
    def from_settings(cls, settings: EngineSettings) -> CalendarSettings:
        opens, closes = settings.office_hours
        return cls(count_from_next_day=settings.count_from == "next_day", end_of_day=settings.deadline_end_of_day,
                   office_open=opens, office_close=closes)


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


@lru_cache(maxsize=256)
def statutory_holidays(year: int) -> dict[date, str]:
    """The statutory holidays of ``year`` that can be computed in advance, by the holiday law in force since
    2025 (《全国年节及纪念日放假办法》): 元旦 1 January; 春节 除夕 to 正月初三; 清明 (the day of the solar
    term); 劳动节 1–2 May; 端午 五月初五; 中秋 八月十五; 国庆 1–3 October. Lunar dates and the solar term come
    from ``lunar_python``. Not included, because only the State Council's notice fixes them: the days moved
    next to a holiday and the make-up working days (调休)."""
    from lunar_python import Lunar

    def solar(lunar: Any) -> date:
        s = lunar.getSolar()
        return date(s.getYear(), s.getMonth(), s.getDay())

    out: dict[date, str] = {date(year, m, d): FIXED_HOLIDAY_NAMES[m] for m, d in FIXED_HOLIDAYS}
    new_year = solar(Lunar.fromYmd(year, 1, 1))
    for offset in range(-1, 3):  # 除夕, 初一, 初二, 初三
        out[new_year + timedelta(days=offset)] = "春节"
    qingming = Lunar.fromYmd(year, 1, 1).getJieQiTable()["清明"]
    out[date(qingming.getYear(), qingming.getMonth(), qingming.getDay())] = "清明节"
    out[solar(Lunar.fromYmd(year, 5, 5))] = "端午节"
    out[solar(Lunar.fromYmd(year, 8, 15))] = "中秋节"
    return {day: name for day, name in out.items() if day.year == year}


def fallback_holiday(day: date) -> str | None:
    """The statutory holiday the fallback rule knows on ``day``, if any."""
    if not MIN_YEAR <= day.year <= MAX_YEAR:
        return FIXED_HOLIDAY_NAMES.get(day.month) if (day.month, day.day) in FIXED_HOLIDAYS else None
    return statutory_holidays(day.year).get(day)


def fallback_is_workday(day: date) -> bool:
    """The documented rule for a year without an official schedule: Mon–Fri except the statutory holidays
    computable in advance (:func:`statutory_holidays`)."""
    return day.weekday() < 5 and fallback_holiday(day) is None


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
        self.settings = settings or CalendarSettings()
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

    def receipt_day(self, received: datetime | str) -> date:
        """The working day a case received at ``received`` counts as received on (RC-10): that day if it is a
        working day and the office has not closed yet (before opening counts from that day's opening), else
        the next working day, whose opening starts the count."""
        local = to_utc(received).astimezone(SHANGHAI)
        day = local.date()
        if not (self.is_workday(day) and local.time() < self.settings.office_close):
            day += timedelta(days=1)
        return self.add_working_days(day, 0)

    def end_of_receipt_day(self, received: datetime | str) -> datetime:
        """The same-day limit (当场/当日, 不过夜) of a case received at ``received``: the end of its
        :meth:`receipt_day` — a call at 23:30 is not overdue at midnight."""
        return self.end_of(self.receipt_day(received))

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


_LATEST = type_coerce(func.max(CalendarYear.__table__.c.loaded_at), UTCDateTime)
_REVISION = select(func.count(CalendarYear.__table__.c.year), _LATEST)


_REVISION_NOW = Prepared(_REVISION)  # run in steps: compiled once, on the cursor


def _revision(session: Session) -> tuple:
    row = _REVISION_NOW.execute(session).fetchone()
    return (row[0], str(instant(row[1])))


def load_calendar(session: Session, settings: CalendarSettings | None = None) -> WorkdayCalendar:
    """The calendar as the table holds it now; a cached snapshot unless a year was (re)loaded or edited."""
    settings = settings or CalendarSettings()
    bind = session.get_bind()
    key = (str(getattr(bind, "url", None) or bind.engine.url), settings)  # an Engine, or a Connection (migrations)
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
    latest = session.scalar(select(_LATEST))
    stamp = now if latest is None else max(now, latest + timedelta(microseconds=1))
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
                note: str | None = f"调休上班 ({name})" if name else "调休上班"
            else:
                note = name or None
            rows.append({"day": day, "is_workday": working, "note": note, "source": "chinesecalendar"})
            day += timedelta(days=1)
        workday = cast(Table, Workday.__table__)  # SQLAlchemy types __table__ as FromClause; this is a Table
        session.execute(workday.delete().where(Workday.day.between(date(year, 1, 1), date(year, 12, 31))))
        session.execute(workday.insert(), rows)
        touch_year(session, year, "chinesecalendar", now)
        written += len(rows)
    return written


@dataclass(frozen=True)
class ImportResult:
    year: int
    source: str
    days: int
    rest_days: int
    holidays: int  # rest days the file lists (statutory holidays and the days moved next to them)
    makeup_days: int
    replaced: str | None  # source of the official schedule this import replaced, if the year had one


class YearSchedule(Protocol):
    """An official schedule for one year (:class:`engine.schedule_file.Schedule`)."""

    year: int
    special: dict[date, Any]

    def rows(self, source: str) -> list[dict[str, Any]]: ...


def import_schedule(session: Session, schedule: YearSchedule, *, source: str, now: datetime) -> ImportResult:
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


def month_view(session: Session, year: int, month: int, settings: CalendarSettings | None = None) -> MonthView:
    """Every day of one month as the engine counts it, with notes and whether the year is official."""
    if not MIN_YEAR <= year <= MAX_YEAR or not 1 <= month <= 12:
        raise QifuError(f"月份无效: {year}-{month:02d}")
    cal = load_calendar(session, settings)
    first = date(year, month, 1)
    last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    rows = {r.day: r for r in session.scalars(select(Workday).where(Workday.day.between(first, last)))}
    days, day = [], first
    while day <= last:
        row = rows.get(day)
        note = row.note if row else None
        if row is None and year not in cal.official_years:
            holiday = fallback_holiday(day)
            note = f"{holiday}（暂定）" if holiday else None
        days.append(DayInfo(day, cal.is_workday(day), note, row.source if row else None))
        day += timedelta(days=1)
    year_row = session.get(CalendarYear, year)
    return MonthView(year, month, year in cal.official_years, year_row.source if year_row else None, days)


# --- the service -------------------------------------------------------------------------------------------
class CalendarService:
    """The working-day calendar as the rest of the system uses it: read a snapshot, show a month, and the
    administrator's changes (a single day, an official year). Moving the deadlines that depended on a change
    is the management service's (:meth:`engine.management.ManagementService.recompute_deadlines`)."""

    def __init__(self, db: Database, settings: CalendarSettings, clock: Any) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock

    def snapshot(self) -> WorkdayCalendar:
        """The calendar as the table holds it now (cached until another process changes it)."""
        with self.db.read() as session:
            return load_calendar(session, self.settings)

    def month(self, year: int, month: int) -> MonthView:
        with self.db.read() as session:
            return month_view(session, year, month, self.settings)

    def set_day(self, day: date, working: bool, note: str | None) -> bool:
        """One day corrected by an administrator; returns whether its year is official."""
        with self.db.write() as session:
            return set_day(session, day, working, note, self.clock.now())

    def load_year(self, schedule: YearSchedule, *, source: str) -> ImportResult:
        """An official schedule for one year, written whole in one transaction."""
        with self.db.write() as session:
            return import_schedule(session, schedule, source=source, now=self.clock.now())

    def seed(self) -> int:
        """The years the ``chinesecalendar`` package knows, where no official schedule is loaded yet."""
        with self.db.write() as session:
            return seed_from_chinesecalendar(session, self.clock.now())
