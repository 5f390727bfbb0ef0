"""Case search (案件查询) and a clerk's finished tasks (我的已办): lists every logged-in role may open.

Search is one paged SQL query over the ``enterprise_case`` ledger joined with the engine's instances read
model (``runtime.view()``: status and the earliest open deadline), limited to exactly what the case page
would show the viewer (:func:`web.scope.visible_cases`). Free text is matched with ``LIKE`` whose ``%`` and
``_`` are escaped (``autoescape=True``), so what the user types is literal. Days are Asia/Shanghai days.

Filters arrive as the strings the form sent and are checked when the query is built: a malformed date or an
unknown status raises :class:`engine.errors.QifuError` with a Chinese message, and nothing is read.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from engine.clock import SHANGHAI, to_utc
from engine.errors import QifuError
from engine.process_engine import ProcessEngine
from handlers.models import LEDGER_STATUS_NAMES, CaseUnit, Category, EnterpriseCase

from ..scope import Viewer, visible_cases
from .cases import CodeNames

PAGE_SIZE = 50
MAX_TEXT = 100
MAX_CODE = 40
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
DATE_LABELS = {"received_from": "受理日期（起）", "received_to": "受理日期（止）",
               "closed_from": "销账日期（起）", "closed_to": "销账日期（止）"}


# --- the filters --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SearchFilters:
    """The search form as sent (trimmed strings, so a bad value is shown back as typed)."""

    q: str = ""
    unit: str = ""
    category: str = ""
    channel: str = ""
    status: str = ""
    received_from: str = ""
    received_to: str = ""
    closed_from: str = ""
    closed_to: str = ""
    overdue: str = ""

    @classmethod
    def from_args(cls, args: Any) -> SearchFilters:
        def get(name: str, limit: int) -> str:
            return str(args.get(name, "") or "").strip()[:limit]

        return cls(q=get("q", MAX_TEXT), unit=get("unit", MAX_CODE), category=get("category", MAX_CODE),
                   channel=get("channel", MAX_CODE), status=get("status", MAX_CODE),
                   **{name: get(name, 20) for name in DATE_LABELS},
                   overdue="1" if args.get("overdue") == "1" else "")

    def args(self) -> dict[str, str]:
        """The filters that are set, for links (pager) that keep them."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}

    def only_text(self) -> bool:
        """Only ``q`` is set: a quick lookup, which may go straight to the case it names."""
        return bool(self.q) and self.args().keys() == {"q"}


def parse_day(text: str, label: str) -> date:
    """A ``YYYY-MM-DD`` day, or a :class:`QifuError` naming the field."""
    try:
        if not _DAY.fullmatch(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise QifuError(f"{label}格式应为 YYYY-MM-DD（如 2026-09-30）：“{text}”") from None


def day_start(day: date) -> datetime:
    """The instant an Asia/Shanghai day begins, in UTC."""
    return to_utc(datetime(day.year, day.month, day.day, tzinfo=SHANGHAI))


def _day_range(column: Any, filters: SearchFilters, prefix: str) -> list[ColumnElement[bool]]:
    """``column`` within the from/to days (both inclusive) of ``prefix``; from after to is refused."""
    start_text, end_text = getattr(filters, f"{prefix}_from"), getattr(filters, f"{prefix}_to")
    start = parse_day(start_text, DATE_LABELS[f"{prefix}_from"]) if start_text else None
    end = parse_day(end_text, DATE_LABELS[f"{prefix}_to"]) if end_text else None
    if start and end and start > end:
        raise QifuError(f"{DATE_LABELS[f'{prefix}_from']}不能晚于{DATE_LABELS[f'{prefix}_to']}")
    out = []
    if start:
        out.append(column >= day_start(start))
    if end:
        out.append(column < day_start(end + timedelta(days=1)))
    return out


def _check_text(filters: SearchFilters) -> None:
    """Control characters (NUL, …) in a filter are refused: PostgreSQL cannot even compare them."""
    for f in fields(filters):
        if any(unicodedata.category(c) in ("Cc", "Cs") for c in getattr(filters, f.name)):
            raise QifuError("查询条件含有不可见的控制字符，请删除后重试")


def _text_match(q: str) -> ColumnElement[bool]:
    """Case number, enterprise name or credit code containing ``q``, its ``%`` and ``_`` taken literally.
    Keys and credit codes are upper-case ASCII: they are compared with ``q`` folded (full-width, lower case)."""
    ec = EnterpriseCase
    code = unicodedata.normalize("NFKC", q).upper()
    return or_(ec.business_key.contains(code, autoescape=True), ec.enterprise_name.contains(q, autoescape=True),
               ec.credit_code.contains(code, autoescape=True))


def _conditions(user: Viewer, filters: SearchFilters, instances: Any, now: datetime) -> list[ColumnElement[bool]]:
    """The viewer's scope and every filter that is set, as SQL conditions (bad input raises QifuError)."""
    _check_text(filters)
    ec = EnterpriseCase
    out: list[ColumnElement[bool]] = [visible_cases(user)]
    if filters.q:
        out.append(_text_match(filters.q))
    if filters.unit:
        involved = select(CaseUnit.case_id).where(CaseUnit.unit_code == filters.unit)
        out.append((ec.unit == filters.unit) | ec.id.in_(involved))
    if filters.category:  # a top-level category includes its sub-items
        children = select(Category.code).where(Category.parent_code == filters.category)
        out.append((ec.category == filters.category) | ec.category.in_(children))
    if filters.channel:
        out.append(ec.channel == filters.channel)
    if filters.status:
        if filters.status not in LEDGER_STATUS_NAMES:
            raise QifuError(f"未知的台账状态：“{filters.status}”")
        out.append(ec.ledger_status == filters.status)
    out += _day_range(ec.received_at, filters, "received")
    out += _day_range(ec.closed_at, filters, "closed")
    if filters.overdue:
        out.append(ec.overdue.is_(True) | (instances.c.due_at < now))
    return out


# --- the search ---------------------------------------------------------------------------------------
@dataclass
class CaseRow:
    business_key: str
    enterprise_name: str
    title: str | None
    unit: str
    unit_name: str
    category_name: str
    channel_name: str
    received_at: datetime
    ledger_status: str
    status_name: str
    deadline: datetime | None  # earliest due instant of the case's open tasks
    overdue: bool               # flagged by supervise, or an open task is past its deadline now
    closed_at: datetime | None


@dataclass
class SearchPage:
    rows: list[CaseRow]
    page: int
    pages: int
    total: int


def search_cases(engine: ProcessEngine, session: Session, user: Viewer, filters: SearchFilters, *,
                 now: datetime, page: int = 1, page_size: int = PAGE_SIZE) -> SearchPage:
    """One page of the cases the viewer may see that match ``filters``, newest first, and how many in all."""
    instances = engine.runtime.view()
    base = (select(EnterpriseCase, instances.c.due_at)
            .join(instances, instances.c.id == EnterpriseCase.instance_id)
            .where(*_conditions(user, filters, instances, now)))
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    pages = max(1, -(-total // page_size))
    page = min(max(1, page), pages)
    found = session.execute(base.order_by(EnterpriseCase.received_at.desc(), EnterpriseCase.id.desc())
                            .limit(page_size).offset((page - 1) * page_size)).all()
    codes = CodeNames.load(session)
    return SearchPage([_row(case, due_at, codes, now) for case, due_at in found], page, pages, total)


def _row(case: EnterpriseCase, due_at: datetime | None, codes: CodeNames, now: datetime) -> CaseRow:
    return CaseRow(case.business_key, case.enterprise_name, case.title, case.unit,
                   codes.short_units.get(case.unit, case.unit), codes.categories.get(case.category or "", "") or
                   (case.category or ""), codes.channels.get(case.channel or "", "") or (case.channel or ""),
                   case.received_at, case.ledger_status,
                   LEDGER_STATUS_NAMES.get(case.ledger_status, case.ledger_status), due_at,
                   bool(case.overdue) or (due_at is not None and due_at < now), case.closed_at)


def visible_key(session: Session, user: Viewer, q: str) -> str | None:
    """The business key ``q`` names exactly, if the viewer may see that case (else None, as if unknown)."""
    key = unicodedata.normalize("NFKC", q).strip().upper()
    return session.scalar(select(EnterpriseCase.business_key)
                          .where(EnterpriseCase.business_key == key, visible_cases(user)))


# --- 我的已办 -----------------------------------------------------------------------------------------
@dataclass
class DoneRow:
    business_key: str
    task_name: str
    ended_at: datetime | None


@dataclass
class DonePage:
    rows: list[DoneRow]
    page: int
    pages: int
    total: int


def completed_tasks(engine: ProcessEngine, session: Session, user: Any, *, page: int = 1,
                    page_size: int = PAGE_SIZE) -> DonePage:
    """The tasks ``user`` completed on cases they may still see, newest first: the engine pages them, narrowed
    by the viewer's scope in the same statement."""
    visible = select(EnterpriseCase.instance_id).where(visible_cases(user))
    rows, total = engine.tasks.completed_by(user.username, instances=visible, page=page, page_size=page_size)
    pages = max(1, -(-total // page_size))
    ids = sorted({r.instance_id for r in rows})
    keys: dict[int, str] = dict(session.execute(
        select(EnterpriseCase.instance_id, EnterpriseCase.business_key)
        .where(EnterpriseCase.instance_id.in_(ids))).all()) if ids else {}
    shown = [DoneRow(keys[r.instance_id], r.name or r.spec_id, r.ended_at) for r in rows if r.instance_id in keys]
    return DonePage(shown, min(max(1, page), pages), pages, total)
