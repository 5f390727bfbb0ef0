"""The engine's notion of *now*.

Deadlines are the heart of this domain, so nothing in the engine calls ``datetime.now()`` directly: it
asks the clock. Production uses :class:`SystemClock`; tests and the benchmark use :class:`FixedClock` and
move it forward to make timers fall due.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware (UTC)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that stands still until told to move. Accepts naive times as Asia/Shanghai."""

    def __init__(self, start: datetime | str) -> None:
        self._now = to_utc(start)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime | str) -> None:
        self._now = to_utc(when)

    def advance(self, **kwargs: float) -> datetime:
        self._now = self._now + timedelta(**kwargs)
        return self._now


def to_utc(value: datetime | str) -> datetime:
    """Parse/normalise to an aware UTC datetime; naive values are read as Asia/Shanghai wall time."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=SHANGHAI)
    return value.astimezone(UTC)
