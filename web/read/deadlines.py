"""A deadline as a clerk reads it: working days left and a traffic light."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time

from engine.calendar import WorkdayCalendar
from engine.clock import SHANGHAI, to_utc


@dataclass(frozen=True)
class Deadline:
    due_at: datetime | None
    provisional: bool
    light: str  # green | yellow | red | none
    days_left: int | None  # working days from today to the due day; negative when overdue

    @property
    def text(self) -> str:
        if self.due_at is None:
            return "无期限"
        if self.light == "red":
            late = -self.days_left if self.days_left is not None and self.days_left < 0 else 0
            return f"已逾期（{late} 个工作日）" if late else "已逾期"
        if self.days_left == 0:
            return "今日到期"
        return f"剩余 {self.days_left} 个工作日"


def deadline(calendar: WorkdayCalendar, now: datetime, due_at: datetime | None, provisional: bool = False) -> Deadline:
    """Green; yellow when the due day is today or the next working day; red once the instant has passed."""
    if due_at is None:
        return Deadline(None, False, "none", None)
    due = to_utc(due_at)
    today = now.astimezone(SHANGHAI).date()
    days_left = calendar.working_days_between(today, due.astimezone(SHANGHAI).date())
    if due < now:
        light = "red"
    elif days_left <= 1:
        light = "yellow"
    else:
        light = "green"
    return Deadline(due, bool(provisional), light, days_left)


def due_soon_bound(calendar: WorkdayCalendar, now: datetime) -> datetime:
    """The start of the second working day after today: a deadline before it and not yet past has at most one
    working day left, so it is yellow (the rule of :func:`deadline`, as one instant a query compares with)."""
    today = now.astimezone(SHANGHAI).date()
    return datetime.combine(calendar.add_working_days(today, 2), time(0), SHANGHAI).astimezone(UTC)
