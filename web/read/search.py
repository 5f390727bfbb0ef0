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

from sqlalchemy import ColumnElement, and_, column, func, literal_column, or_, select, table
from sqlalchemy.orm import Session

from engine.clock import SHANGHAI, to_utc
from engine.errors import QifuError
from engine.process_engine import ProcessEngine
from handlers.models import LEDGER_STATUS_NAMES, CaseUnit, Category, EnterpriseCase

from ..labels import CodeNames
from ..scope import Viewer, visible_cases

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


# The substring index behind the free-text search (migration 0012): on SQLite an FTS5 table with the trigram
# tokenizer over these three columns, kept in step by triggers; on PostgreSQL pg_trgm GIN indexes. Neither is a
# model (they are dialect-specific); tests/test_migrations.py leaves exactly these names out of its compare.
TEXT_INDEX = "enterprise_case_text"
TEXT_INDEX_OBJECTS = frozenset({TEXT_INDEX, *(f"{TEXT_INDEX}_{part}" for part in ("data", "idx", "docsize", "config")),
                                "ix_enterprise_case_key_trgm", "ix_enterprise_case_name_trgm",
                                "ix_enterprise_case_code_trgm"})
TRIGRAM = 3  # the shortest text a trigram index can find; shorter text is matched by LIKE alone (a scan)
SELECTIVE = 2000  # a text in more cases than this is matched by the covering scan, not through the trigram index
_text_index = table(TEXT_INDEX, column("rowid"))


def _fts_phrase(text_: str) -> str:
    """``text_`` as one FTS5 phrase: literal (only ``"`` is special inside it, written twice)."""
    return '"' + text_.replace('"', '""') + '"'


def _text_match(q: str, dialect: str = "") -> ColumnElement[bool]:
    """Case number, enterprise name or credit code containing ``q``, its ``%`` and ``_`` taken literally.
    Keys and credit codes are upper-case ASCII: they are compared with ``q`` folded (full-width, lower case).

    The ``LIKE`` decides; on SQLite a trigram match first narrows the rows it runs on (case-insensitive, so
    it finds every row the ``LIKE`` matches, and more only where case differs), and PostgreSQL's planner
    takes the GIN trigram indexes for the ``LIKE`` itself. Text shorter than three characters scans."""
    ec = EnterpriseCase
    code = unicodedata.normalize("NFKC", q).upper()
    exact = or_(ec.business_key.contains(code, autoescape=True), ec.enterprise_name.contains(q, autoescape=True),
                ec.credit_code.contains(code, autoescape=True))
    if dialect != "sqlite" or min(len(q), len(code)) < TRIGRAM:
        return exact
    found = select(_text_index.c.rowid).where(literal_column(TEXT_INDEX).op("MATCH")(_fts_query(q, code)))
    return and_(ec.id.in_(found), exact)


def _fts_query(q: str, code: str) -> str:
    """The FTS5 query for ``q``: the folded text in the case number or the credit code, or ``q`` in the name."""
    return f"{{business_key credit_code}} : {_fts_phrase(code)} OR enterprise_name : {_fts_phrase(q)}"


def _conditions(user: Viewer, filters: SearchFilters, instances: Any, now: datetime,
                dialect: str = "") -> list[ColumnElement[bool]]:
    """The viewer's scope and every filter that is set, as SQL conditions (bad input raises QifuError)."""
    _check_text(filters)
    ec = EnterpriseCase
    out: list[ColumnElement[bool]] = []  # the scope last: a row the text rules out needs no case_unit probe
    if filters.q:
        out.append(_text_match(filters.q, dialect))
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
    out.append(visible_cases(user))
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
    """One page of the cases the viewer may see that match ``filters``, newest first, and how many in all.

    The count and the page's ids are found from indexes (the trigram index for the text, else
    ``ix_enterprise_case_text_scan``, which holds every column the text and the scope compare); only the page's
    rows are then read in full. The instance is joined only for the overdue filter (every case has one)."""
    _check_text(filters)  # before the text reaches the trigram index's query
    instances = engine.runtime.view()
    dialect = session.get_bind().dialect.name
    ids = select(EnterpriseCase.id)
    if filters.overdue:
        ids = ids.join(instances, instances.c.id == EnterpriseCase.instance_id)
    ids = ids.where(*_conditions(user, filters, instances, now, _text_strategy(session, filters.q, dialect)))
    total = session.scalar(select(func.count()).select_from(ids.subquery())) or 0
    pages = max(1, -(-total // page_size))
    page = min(max(1, page), pages)
    chosen = list(session.scalars(ids.order_by(EnterpriseCase.received_at.desc(), EnterpriseCase.id.desc())
                                  .limit(page_size).offset((page - 1) * page_size)))
    found = {case.id: (case, due_at) for case, due_at in session.execute(
        select(EnterpriseCase, instances.c.due_at).join(instances, instances.c.id == EnterpriseCase.instance_id)
        .where(EnterpriseCase.id.in_(chosen)))} if chosen else {}
    codes = CodeNames.load(session)
    return SearchPage([_row(*found[i], codes, now) for i in chosen if i in found], page, pages, total)


def _text_strategy(session: Session, q: str, dialect: str) -> str:
    """``sqlite`` (narrow by the trigram index first) when that helps: on SQLite, for text of three characters
    or more that few cases contain — a text in thousands of cases (``有限公司``) is matched faster by the
    covering scan. Either way the ``LIKE`` decides, so the answer is the same."""
    if dialect != "sqlite" or not q:
        return dialect
    code = unicodedata.normalize("NFKC", q).upper()
    if min(len(q), len(code)) < TRIGRAM:
        return ""
    hits = select(_text_index.c.rowid).where(literal_column(TEXT_INDEX).op("MATCH")(_fts_query(q, code)))
    many = session.scalar(select(func.count()).select_from(hits.limit(SELECTIVE).subquery()))
    return "sqlite" if (many or 0) < SELECTIVE else ""


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
