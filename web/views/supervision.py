"""The supervisor's pages: the supervision ledger (台账, FH-8 / PA-7) with its .xlsx export, the tracking view
(跟踪督办, PA-9) and the monthly briefing (月度简报, FH-10) with its .xlsx download.

The numbers come from :mod:`handlers.ledger_report` only — the CLI's briefing and this page must never
disagree, so nothing is recounted here. The views add two things: who may look (the supervising roles of
:data:`SUPERVISION_ROLES`, everyone else gets 403) and which cases: exactly those the case page would show the
user (:func:`web.scope.visible_cases`) — a station's office sees its own station, a region's supervisor the
region, and never another region.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, abort, current_app, render_template, request
from flask_login import current_user

from engine.calendar import load_calendar
from engine.clock import SHANGHAI, to_utc
from engine.errors import QifuError
from handlers import ledger_report
from handlers.models import LEDGER_STATUS_NAMES

from .. import exports, queries
from ..scope import visible_cases
from ..spreadsheet import XLSX_MIME, export_notes, workbook_bytes
from .common import engine, now

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

    @classmethod
    def from_args(cls, args: Any) -> LedgerFilters:
        status = (args.get("status") or "").strip()
        return cls(status if status in LEDGER_STATUS_NAMES else "", (args.get("unit") or "").strip()[:50],
                   (args.get("month") or "").strip()[:7])


def _ledger_rows(session: Any, filters: LedgerFilters) -> list[ledger_report.LedgerRow]:
    """The ledger of the user's region with the page's filters; a bad month raises :class:`QifuError`."""
    rows = ledger_report.ledger(session, region=current_user.region, status=filters.status or None,
                                unit=filters.unit or None, now=now(), where=visible_cases(current_user))
    if filters.month:
        start, end = ledger_report.month_bounds(filters.month)
        rows = [r for r in rows if start <= to_utc(r.received_at) < end]
    return rows


@bp.get("/ledger")
def ledger() -> Any:
    filters = LedgerFilters.from_args(request.args)
    with engine().session() as session:
        try:
            rows = _ledger_rows(session, filters)
        except QifuError as exc:
            return _bad_request(exc.message)
        counts = ledger_report.ledger_counts(session, current_user.region, visible_cases(current_user))
        codes = queries.CodeNames.load(session)
        units = queries.filter_choices(session, current_user).units
    args = {k: v for k, v in vars(filters).items() if v}
    return render_template("supervision/ledger.html", rows=rows, counts=counts, codes=codes, units=units,
                           filters=filters, args=args, statuses=LEDGER_STATUS_NAMES, now=now())


def _download(data: bytes, filename: str) -> Response:
    return Response(data, mimetype=XLSX_MIME, headers={"Content-Disposition": _attachment(filename)})


def _notes(filters: dict[str, str]) -> list[str]:
    return export_notes(filters, exported_by=f"{current_user.display_name}（{current_user.username}）", at=now())


@bp.get("/ledger.xlsx")
def ledger_xlsx() -> Any:
    """The ledger as filtered on the page, one row per case, as an .xlsx workbook."""
    filters = LedgerFilters.from_args(request.args)
    with engine().session() as session:
        try:
            rows = _ledger_rows(session, filters)
        except QifuError as exc:
            return _bad_request(exc.message)
        codes = queries.CodeNames.load(session)
    shown = {"台账状态": LEDGER_STATUS_NAMES.get(filters.status, ""),
             "单位": codes.units.get(filters.unit, filters.unit), "受理月份": filters.month}
    data = workbook_bytes(exports.ledger_sheet(rows, codes, _notes(shown)))
    stamp = now().astimezone(SHANGHAI).strftime("%Y%m%d")
    return _download(data, f"督办台账-{stamp}.xlsx")


# --- 跟踪督办 --------------------------------------------------------------------------------------------
@bp.get("/tracking")
def tracking() -> str:
    """Open cases per accepting station/unit and stage, the open cases overdue first, and the average
    handling time in working days (PA-9)."""
    at = now()
    with engine().session() as session:
        scope = visible_cases(current_user)
        units = ledger_report.tracking(session, load_calendar(session), region=current_user.region, now=at,
                                       where=scope)
        rows = ledger_report.ledger(session, region=current_user.region, now=at, where=scope)
    open_rows = [r for r in rows if r.case_status == "running" and r.ledger_status != "closed"]
    far = datetime.max.replace(tzinfo=at.tzinfo)
    open_rows.sort(key=lambda r: (not r.overdue, to_utc(r.deadline) if r.deadline else far, r.business_key))
    return render_template("supervision/tracking.html", units=units, open_rows=open_rows, now=at,
                           total_open=sum(u.open for u in units), total_overdue=sum(u.overdue for u in units))


# --- 月度简报 --------------------------------------------------------------------------------------------
def _briefing(month: str) -> ledger_report.Briefing:
    with engine().session() as session:
        return ledger_report.briefing(session, month, current_user.region, visible_cases(current_user))


@bp.get("/briefing")
def briefing() -> Any:
    month = (request.args.get("month") or "").strip() or _current_month()
    try:
        report = _briefing(month)
    except QifuError as exc:
        return _bad_request(exc.message)
    return render_template("supervision/briefing.html", report=report, columns=ledger_report.COLUMNS[1:],
                           region_name=ledger_report.REGION_NAMES.get(report.region, ""))


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
