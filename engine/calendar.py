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
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .clock import SHANGHAI, to_utc
from .models import CalendarYear, Workday

FIXED_HOLIDAYS: frozenset[tuple[int, int]] = frozenset({(1, 1), (5, 1), (5, 2), (10, 1), (10, 2), (10, 3)})
MAX_WORKING_DAYS = 3660  # ten years of counting is a mistake, not a deadline


@dataclass(frozen=True)
class CalendarSettings:
    count_from_next_day: bool = True
    end_of_day: time = time(23, 59, 59)

    @classmethod
    def from_env(cls) -> CalendarSettings:
        next_day = os.environ.get("QIFU_COUNT_FROM", "next_day") != "same_day"
        end = time.fromisoformat(os.environ.get("QIFU_DEADLINE_END_OF_DAY", "23:59:59"))
        return cls(count_from_next_day=next_day, end_of_day=end)


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
_cache: dict[str, WorkdayCalendar] = {}


def _revision(session: Session) -> tuple:
    row = session.execute(select(func.count(CalendarYear.year), func.max(CalendarYear.loaded_at))).one()
    return (row[0], str(row[1]))


def load_calendar(session: Session) -> WorkdayCalendar:
    """The calendar as the table holds it now; a cached snapshot unless a year was (re)loaded or edited."""
    key = str(session.get_bind().url)
    revision = _revision(session)
    cached = _cache.get(key)
    if cached is not None and cached.revision == revision:
        return cached
    days = {d: w for d, w in session.execute(select(Workday.day, Workday.is_workday))}
    official = [y for (y,) in session.execute(select(CalendarYear.year).where(CalendarYear.source != "admin"))]
    cal = WorkdayCalendar(days, official, revision=revision)
    _cache[key] = cal
    return cal


def touch_year(session: Session, year: int, source: str, now: datetime) -> None:
    """Mark ``year`` as changed (and official unless ``source`` is ``admin``) so every process reloads."""
    row = session.get(CalendarYear, year)
    if row is None:
        session.add(CalendarYear(year=year, source=source, loaded_at=now))
    else:
        if source != "admin":
            row.source = source
        row.loaded_at = max(now, row.loaded_at.replace(tzinfo=UTC) + timedelta(microseconds=1)) \
            if row.loaded_at is not None else now


def seed_from_chinesecalendar(session: Session, now: datetime) -> int:
    """Fill the table from the ``chinesecalendar`` package for every year it knows. Returns days written."""
    import chinese_calendar
    from chinese_calendar import constants

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
            note = name if name else ("调休上班" if working and day.weekday() >= 5 else None)
            rows.append({"day": day, "is_workday": working, "note": note, "source": "chinesecalendar"})
            day += timedelta(days=1)
        session.execute(Workday.__table__.delete().where(Workday.day.between(date(year, 1, 1), date(year, 12, 31))))
        session.execute(Workday.__table__.insert(), rows)
        touch_year(session, year, "chinesecalendar", now)
        written += len(rows)
    return written
