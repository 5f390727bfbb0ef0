"""What the admin pages show: users, units, API clients and the admin log as paged SQL, the working-day calendar
as a year of month grids (through the engine's calendar service), and the deadlines a calendar change moves in
the words of the diagrams.

Nothing here changes anything; the changes are :mod:`web.admin`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from engine.clock import SHANGHAI, to_utc
from engine.process_engine import ProcessEngine
from handlers.models import OrgUnit

from .. import labels
from ..admin import KINDS, KNOWN_ROLES, UserInfo
from ..intake_models import ApiClient
from ..models import AdminLog, User, UserRole

PAGE_SIZE = 50
WEEKDAYS = "一二三四五六日"


@dataclass
class Paged:
    rows: list[Any]
    total: int
    page: int
    pages: int


def _paged(session: Session, query: Select[Any], page: int, page_size: int = PAGE_SIZE, *,
           scalars: bool = True) -> Paged:
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    pages = max(1, -(-total // page_size))
    page = min(max(page, 1), pages)
    limited = query.limit(page_size).offset((page - 1) * page_size)
    rows = list(session.scalars(limited)) if scalars else list(session.execute(limited))
    return Paged(rows, total, page, pages)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# --- users -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UserFilters:
    q: str | None = None  # part of the login or display name
    unit: str | None = None
    role: str | None = None
    status: str | None = None  # active | disabled


def users_page(session: Session, filters: UserFilters, page: int = 1) -> Paged:
    """Users by login name, 50 a page (rows are :class:`web.admin.UserInfo`)."""
    query = select(User).order_by(User.username)
    if filters.q:
        pattern = _like(filters.q.lower())
        query = query.where(or_(User.username.like(pattern, escape="\\"),
                                func.lower(User.display_name).like(pattern, escape="\\")))
    if filters.unit:
        query = query.where(User.unit_code == filters.unit)
    if filters.role:
        query = query.where(User.id.in_(select(UserRole.user_id).where(UserRole.role == filters.role)))
    if filters.status in ("active", "disabled"):
        query = query.where(User.active.is_(filters.status == "active"))
    result = _paged(session, query, page)
    result.rows = [UserInfo.of(row) for row in result.rows]
    return result


def user(session: Session, user_id: int) -> UserInfo | None:
    row = session.get(User, user_id)
    return UserInfo.of(row) if row is not None else None


def role_choices(session: Session) -> list[str]:
    """The roles of the domain contract, then every other role some user holds (a site's N panels)."""
    held = [r for (r,) in session.execute(select(UserRole.role).distinct().order_by(UserRole.role))]
    return [*KNOWN_ROLES, *[r for r in held if r not in KNOWN_ROLES]]


@dataclass(frozen=True)
class UnitChoice:
    code: str
    name: str
    region: str


def unit_choices(session: Session) -> list[UnitChoice]:
    """Active units in display order, for the user form's select."""
    rows = session.execute(select(OrgUnit.code, OrgUnit.name, OrgUnit.region).where(OrgUnit.active.is_(True))
                           .order_by(OrgUnit.region, OrgUnit.sort, OrgUnit.code))
    return [UnitChoice(*row) for row in rows]


# --- units -----------------------------------------------------------------------------------------------------
def units_page(session: Session, *, region: str | None = None, q: str | None = None, page: int = 1) -> Paged:
    """Units in display order, 50 a page (rows are ``OrgUnit`` rows, detached)."""
    query = select(OrgUnit).order_by(OrgUnit.region, OrgUnit.sort, OrgUnit.code)
    if region:
        query = query.where(OrgUnit.region == region)
    if q:
        pattern = _like(q)
        query = query.where(or_(OrgUnit.code.like(pattern, escape="\\"), OrgUnit.name.like(pattern, escape="\\"),
                                OrgUnit.liaison_name.like(pattern, escape="\\")))
    result = _paged(session, query, page)
    session.expunge_all()
    return result


def unit(session: Session, code: str) -> OrgUnit | None:
    row = session.scalar(select(OrgUnit).where(OrgUnit.code == code))
    if row is not None:
        session.expunge(row)
    return row


# --- API clients -----------------------------------------------------------------------------------------------
def api_clients_page(session: Session, page: int = 1) -> Paged:
    """API clients, active first, by name (never their tokens: only digests are stored)."""
    query = select(ApiClient).order_by(ApiClient.active.desc(), ApiClient.name)
    result = _paged(session, query, page)
    session.expunge_all()
    return result


def online_channels(session: Session) -> list[tuple[str, str]]:
    from handlers.models import Channel

    return [(c, n) for c, n in session.execute(select(Channel.code, Channel.name).where(Channel.mode == "online")
                                               .order_by(Channel.sort))]


# --- the admin log ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LogEntry:
    id: int
    at: datetime
    actor: str
    kind: str
    kind_label: str
    target: str
    summary: str


def log_page(session: Session, *, actor: str | None = None, kind: str | None = None, page: int = 1) -> Paged:
    """The admin log, newest first, 50 a page; ``ix_admin_log_actor`` / ``ix_admin_log_kind`` serve the filters."""
    query = select(AdminLog).order_by(AdminLog.at.desc(), AdminLog.id.desc())
    if actor:
        query = query.where(AdminLog.actor == actor)
    if kind:
        query = query.where(AdminLog.kind == kind)
    result = _paged(session, query, page)
    result.rows = [LogEntry(r.id, r.at, r.actor, r.kind, KINDS.get(r.kind, r.kind), r.target, r.summary)
                   for r in result.rows]
    return result


def log_actors(session: Session) -> list[str]:
    """Everyone who made an admin change (distinct over ``ix_admin_log_actor``)."""
    return [a for (a,) in session.execute(select(AdminLog.actor).distinct().order_by(AdminLog.actor).limit(500))]


# --- the calendar ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DayCell:
    day: date
    kind: str  # work | rest | holiday | makeup
    label: str
    note: str | None
    admin: bool  # set by an administrator
    fallback: bool  # decided by the fallback rule (year without an official schedule)


@dataclass(frozen=True)
class MonthGrid:
    month: int
    weeks: list[list[DayCell | None]]


@dataclass(frozen=True)
class YearView:
    year: int
    official: bool
    source: str | None
    months: list[MonthGrid]
    counts: dict[str, int]


DAY_KIND_LABELS = {"work": "工作日", "rest": "休息日", "holiday": "放假", "makeup": "调休上班"}


def _cell(info: Any, official: bool) -> DayCell:
    weekend = info.day.weekday() >= 5
    if info.is_workday:
        kind = "makeup" if weekend else "work"
    else:
        kind = "rest" if weekend else "holiday"
    label = DAY_KIND_LABELS[kind]
    if kind == "holiday" and not official and info.source is None:
        label = "法定节假日（备用规则）"
    return DayCell(info.day, kind, label, info.note, info.source == "admin", not official and info.source is None)


def year_view(engine: ProcessEngine, year: int) -> YearView:
    """Twelve month grids (weeks from Monday) as the engine counts the days, with counts per kind."""
    months, counts = [], dict.fromkeys(DAY_KIND_LABELS, 0)
    official, source = False, None
    for month in range(1, 13):
        view = engine.calendar.month(year, month)
        official, source = view.official, view.year_source
        cells = [_cell(d, view.official) for d in view.days]
        for c in cells:
            counts[c.kind] += 1
        padded: list[DayCell | None] = [None] * cells[0].day.weekday() + list(cells)
        padded += [None] * (-len(padded) % 7)
        months.append(MonthGrid(month, [padded[i:i + 7] for i in range(0, len(padded), 7)]))
    return YearView(year, official, source, months, counts)


@dataclass(frozen=True)
class DeadlineChange:
    """One deadline a calendar change moves (or only confirms), as the preview and the result list it."""

    business_key: str
    task: str
    timer: str
    old: datetime
    new: datetime
    was_provisional: bool
    provisional: bool

    @property
    def moved(self) -> bool:
        return self.old != self.new

    @property
    def direction(self) -> str:
        if not self.moved:
            return "不变"
        return "提前" if self.new < self.old else "推后"


MAX_LISTED = 200  # a preview lists this many moves; the counts cover all of them


def describe_changes(engine: ProcessEngine, changes: list[dict[str, Any]]) -> list[DeadlineChange]:
    """The first :data:`MAX_LISTED` changes with the task and the timer named as in the diagram."""
    shown = changes[:MAX_LISTED]
    instances = engine.runtime.instances(c["instance"] for c in shown)
    attached: dict[int, dict[int, str | None]] = {}
    out = []
    for c in shown:
        view = instances.get(c["instance"])
        words = labels.diagram_words(engine, view.deployment_id) if view is not None else labels.DiagramWords()
        if c["instance"] not in attached:
            attached[c["instance"]] = {t.id: t.attached_to for t in engine.management.timers(c["instance"])}
        task_id = attached[c["instance"]].get(c["timer"])
        element = words.elements.get(c["element"])
        task = words.elements.get(task_id or "")
        out.append(DeadlineChange(
            c["business_key"], (task.name if task and task.name else task_id) or "—",
            (element.name if element and element.name else c["element"]),
            to_utc(c["from"]), to_utc(c["to"]), bool(c["was_provisional"]), bool(c["provisional"])))
    return out


def summary_counts(changes: list[dict[str, Any]]) -> dict[str, int]:
    moved = [c for c in changes if c["from"] != c["to"]]
    earlier = sum(to_utc(c["to"]) < to_utc(c["from"]) for c in moved)
    return {"moved": len(moved), "earlier": earlier, "later": len(moved) - earlier,
            "confirmed": sum(c["from"] == c["to"] and not c["provisional"] for c in changes),
            "provisional": sum(c["from"] == c["to"] and c["provisional"] for c in changes)}


def local_day(at: datetime) -> date:
    return at.astimezone(SHANGHAI).date()


def week_of(day: date) -> tuple[date, date]:
    start = day - timedelta(days=day.weekday())
    return start, start + timedelta(days=6)
