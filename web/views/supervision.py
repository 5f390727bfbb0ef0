"""The supervisor's pages: the supervision ledger (台账, FH-8 / PA-7) with its .xlsx export, the tracking view
(跟踪督办, PA-9) and the monthly briefing (月度简报, FH-10) with its .xlsx download.

The numbers come from :mod:`web.read.ledger` only — the CLI's briefing and this page must never
disagree, so nothing is recounted here. The views add two things: who may look (the supervising roles of
:data:`SUPERVISION_ROLES`, everyone else gets 403) and which cases: exactly those the case page would show the
user (:func:`web.scope.visible_cases`) — a station's office sees its own station, a region's supervisor the
region, and never another region.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, abort, current_app, render_template, request
from flask_login import current_user

from engine.clock import SHANGHAI
from engine.errors import QifuError
from handlers.models import LEDGER_STATUS_NAMES

from .. import exports
from ..labels import CodeNames
from ..read.inbox import filter_choices
from ..read.ledger import (
    COLUMNS,
    REGION_NAMES,
    Briefing,
    LedgerQuery,
    ledger_counts,
    ledger_page,
    ledger_rows,
    month_bounds,
    open_cases_page,
)
from ..read.ledger import briefing as monthly_briefing
from ..read.ledger import tracking as tracking_by_unit
from ..scope import visible_cases
from ..spreadsheet import XLSX_MIME, export_notes, workbook_bytes
from .common import engine, now, page_number

bp = Blueprint("supervision", __name__, url_prefix="/supervision")

# Roles that supervise a whole region (docs/domain.md): the supervisors, Pan'an's office that tracks and
# supervises (PA-9), Fenghua's special team, and administrators.
SUPERVISION_ROLES = frozenset({"督办", "企业综合服务办公室", "企服专班", "管理员"})


def may_supervise(user: Any) -> bool:
    """Whether ``user`` may open the supervision pages (an anonymous user may not)."""
    return bool(getattr(user, "is_authenticated", False) and user.roles & SUPERVISION_ROLES)


@bp.app_context_processor
def _nav() -> dict[str, Any]:
    """Lets the base template show the nav link only to those who may follow it."""
    return {"may_supervise": lambda: may_supervise(current_user)}


@bp.before_request
def _only_supervisors() -> Any:
    """Every page here: log in first, then a supervising role with a region (403 otherwise)."""
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()
    if not may_supervise(current_user) or not current_user.region:
        abort(403)
    return None


def _bad_request(message: str) -> tuple[str, int]:
    return render_template("error.html", status=400, title="请求无效", message=message), 400


def _current_month() -> str:
    return now().astimezone(SHANGHAI).strftime("%Y-%m")


# --- 台账 ------------------------------------------------------------------------------------------------
@dataclass
class LedgerFilters:
    status: str = ""
    unit: str = ""
    month: str = ""
    overdue: str = ""

    @classmethod
    def from_args(cls, args: Any) -> LedgerFilters:
        status = (args.get("status") or "").strip()
        return cls(status if status in LEDGER_STATUS_NAMES else "", (args.get("unit") or "").strip()[:50],
                   (args.get("month") or "").strip()[:7], "1" if args.get("overdue") == "1" else "")

    def query(self) -> LedgerQuery:
        """The page's filters within what the user may see (a bad month raises :class:`QifuError`)."""
        if self.month:
            month_bounds(self.month)
        return LedgerQuery(where=visible_cases(current_user), region=current_user.region,
                           status=self.status or None, unit=self.unit or None, month=self.month or None,
                           overdue=bool(self.overdue))


@bp.get("/ledger")
def ledger() -> Any:
    filters = LedgerFilters.from_args(request.args)
    qifu = engine()
    with qifu.read() as session:
        try:
            page = ledger_page(qifu, session, filters.query(), now=now(), page=page_number())
        except QifuError as exc:
            return _bad_request(exc.message)
        counts = ledger_counts(session, current_user.region, visible_cases(current_user))
        codes = CodeNames.load(session)
        units = filter_choices(qifu, session, current_user).units
    args = {k: v for k, v in vars(filters).items() if v}
    return render_template("supervision/ledger.html", page=page, rows=page.rows, counts=counts, codes=codes,
                           units=units, filters=filters, args=args, statuses=LEDGER_STATUS_NAMES, now=now())


def _download(data: bytes, filename: str) -> Response:
    return Response(data, mimetype=XLSX_MIME, headers={"Content-Disposition": _attachment(filename)})


def _notes(filters: dict[str, str]) -> list[str]:
    return export_notes(filters, exported_by=f"{current_user.display_name}（{current_user.username}）", at=now())


@bp.get("/ledger.xlsx")
def ledger_xlsx() -> Any:
    """The ledger as filtered on the page, every row of it, as an .xlsx workbook (rows read in batches)."""
    filters = LedgerFilters.from_args(request.args)
    qifu = engine()
    with qifu.read() as session:
        try:
            query = filters.query()
        except QifuError as exc:
            return _bad_request(exc.message)
        codes = CodeNames.load(session)
        shown = {"台账状态": LEDGER_STATUS_NAMES.get(filters.status, ""),
                 "单位": codes.units.get(filters.unit, filters.unit), "受理月份": filters.month,
                 "只看逾期": "是" if filters.overdue else ""}
        data = workbook_bytes(exports.ledger_sheet(ledger_rows(qifu, session, query, now=now()), codes,
                                                   _notes(shown)))
    stamp = now().astimezone(SHANGHAI).strftime("%Y%m%d")
    return _download(data, f"督办台账-{stamp}.xlsx")


# --- 跟踪督办 --------------------------------------------------------------------------------------------
@bp.get("/tracking")
def tracking() -> str:
    """Open cases per accepting station/unit and stage, the open cases overdue first (paged), and the average
    handling time in working days (PA-9)."""
    at = now()
    qifu = engine()
    scope = visible_cases(current_user)
    with qifu.read() as session:
        units = tracking_by_unit(qifu, session, region=current_user.region, now=at, where=scope)
        page = open_cases_page(qifu, session, region=current_user.region, now=at, where=scope,
                               page=page_number())
    return render_template("supervision/tracking.html", units=units, open_rows=page.rows, page=page, now=at,
                           total_open=sum(u.open for u in units), total_overdue=sum(u.overdue for u in units))


# --- 月度简报 --------------------------------------------------------------------------------------------
def _briefing(month: str) -> Briefing:
    with engine().read() as session:
        return monthly_briefing(session, month, current_user.region, visible_cases(current_user))


@bp.get("/briefing")
def briefing() -> Any:
    month = (request.args.get("month") or "").strip() or _current_month()
    try:
        report = _briefing(month)
    except QifuError as exc:
        return _bad_request(exc.message)
    return render_template("supervision/briefing.html", report=report, columns=COLUMNS[1:],
                           region_name=REGION_NAMES.get(report.region, ""))


@bp.get("/briefing.xlsx")
def briefing_xlsx() -> Any:
    """The same briefing, as :func:`web.exports.briefing_sheet` lays it out (what the CLI writes too)."""
    month = (request.args.get("month") or "").strip() or _current_month()
    try:
        report = _briefing(month)
    except QifuError as exc:
        return _bad_request(exc.message)
    data = workbook_bytes(exports.briefing_sheet(report, _notes({"月份": report.month})))
    return _download(data, f"简报-{report.month}.xlsx")


def _attachment(filename: str) -> str:
    """A Content-Disposition for a Chinese file name (RFC 5987), with an ASCII fallback."""
    from urllib.parse import quote

    return f"attachment; filename=export.xlsx; filename*=UTF-8''{quote(filename)}"
