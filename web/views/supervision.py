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

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    get_flashed_messages,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from markupsafe import Markup, escape

from engine.clock import SHANGHAI
from engine.errors import ConflictError, NotFoundError, QifuError
from handlers.models import LEDGER_STATUS_NAMES

from .. import exports
from ..labels import CodeNames
from ..read import kpi as kpi_report
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
from ..read.monthly import monthly_report
from ..read.overdue import overdue_board
from ..scope import sees_region, visible_cases
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
    if request.endpoint in ("supervision.published", "supervision.notices") and current_user.region:
        return None  # a published 简报 and a unit's notices are for every member unit of the region
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
                               page=page_number(), total=sum(u.open for u in units))
        unit_names = CodeNames.load(session).units
    return render_template("supervision/tracking.html", units=units, open_rows=page.rows, page=page, now=at,
                           unit_names=unit_names,
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


def _attachment(filename: str, fallback: str = "export.xlsx") -> str:
    """A Content-Disposition for a Chinese file name (RFC 5987), with an ASCII fallback."""
    from urllib.parse import quote

    return f"attachment; filename={fallback}; filename*=UTF-8''{quote(filename)}"


# --- 考核指标 (KPIs per unit and period) --------------------------------------------------------------------
def _kpis() -> kpi_report.KpiReport:
    period = kpi_report.period_of(request.args, _current_month())
    with engine().read() as session:
        return kpi_report.kpis(session, period, current_user.region, visible_cases(current_user))


@bp.get("/kpi")
def kpi_page() -> Any:
    try:
        report = _kpis()
    except QifuError as exc:
        return _bad_request(exc.message)
    ranged = report.period.kind == "range"
    return render_template("supervision/kpi.html", report=report, columns=kpi_report.COLUMNS,
                           shown=kpi_report.shown, definitions=kpi_report.DEFINITIONS, no_data=kpi_report.NO_DATA,
                           region_name=REGION_NAMES.get(report.region, ""),
                           period_text="" if ranged else report.period.text,
                           date_from=report.period.first if ranged else "", date_to=report.period.last if ranged else "")


@bp.get("/kpi.xlsx")
def kpi_xlsx() -> Any:
    try:
        report = _kpis()
    except QifuError as exc:
        return _bad_request(exc.message)
    data = workbook_bytes(exports.kpi_sheet(report, _notes({"统计期": report.period.label})))
    return _download(data, f"考核指标-{report.period.text}.xlsx")


# --- 超期预警 (overdue board, one-click 催办) ------------------------------------------------------------------
@bp.get("/overdue")
def overdue() -> str:
    at = now()
    qifu = engine()
    with qifu.read() as session:
        board = overdue_board(qifu, session, region=current_user.region, now=at, where=visible_cases(current_user),
                              page=page_number())
    return render_template("supervision/overdue.html", board=board, now=at)


@bp.post("/cases/<business_key>/remind")
def remind(business_key: str) -> Any:
    """One-click 催办: a history event by this supervisor and a notice to each responsible unit."""
    from ..reminders import send_reminder

    message = (request.form.get("message") or "").strip()
    try:
        sent = send_reminder(engine(), business_key, where=visible_cases(current_user),
                             username=current_user.username, sender=current_user.display_name, message=message,
                             now=now())
    except NotFoundError:
        abort(404)
    except ConflictError as exc:
        return render_template("error.html", status=409, title="无法催办", message=exc.message), 409
    flash(f"已向{'、'.join(sent.unit_names)}发出催办通知（{business_key}）")
    return redirect(url_for("supervision.overdue", page=request.form.get("page") or None))


# --- 简报文档 (the monthly briefing as HTML / PDF) -------------------------------------------------------------
REPORT_FORMATS = ("html", "pdf")


@bp.get("/report")
def report() -> Any:
    from ..report_doc import render, render_html

    month = (request.args.get("month") or "").strip() or _current_month()
    fmt = (request.args.get("format") or "html").strip()
    if fmt not in REPORT_FORMATS:
        return _bad_request(f"格式应为 html 或 pdf：“{fmt[:20]}”")
    try:
        with engine().read() as session:
            doc = monthly_report(session, month, current_user.region, visible_cases(current_user), now=now())
    except QifuError as exc:
        return _bad_request(exc.message)
    if fmt == "pdf":
        try:
            data = render(doc, "pdf")
        except QifuError as exc:  # Chromium missing or failing: the HTML still works
            return render_template("error.html", status=503, title="暂时无法生成 PDF", message=exc.message), 503
        return Response(data, mimetype="application/pdf",
                        headers={"Content-Disposition": _attachment(f"简报-{doc.month}.pdf", "report.pdf")})
    from flask_wtf.csrf import generate_csrf

    from ..publishing import publications

    with engine().read() as session:
        done = publications(session, doc.region, doc.month)
    flashed = Markup("").join(Markup('<p class="flash">{}</p>').format(m) for m in get_flashed_messages())
    toolbar = flashed + Markup(
        '<form method="get" action="{action}">月份 <input type="month" name="month" value="{month}"> '
        '<button type="submit">查看</button> <a href="{pdf}">下载 PDF</a> · <a href="{back}">返回督办</a></form>'
        '{publish_form}'
        '<form method="post" action="{typical}" id="typical-form">'
        '<input type="hidden" name="csrf_token" value="{token}"><input type="hidden" name="month" value="{month}">'
        '典型案例：业务编号 <input name="business_key" size="20" maxlength="40"> 说明 '
        '<input name="note" size="40" maxlength="300" placeholder="典型意义（填“取消”撤销）"> '
        '<button type="submit">标记</button></form>'
    ).format(typical=url_for("supervision.mark_typical"),action=url_for("supervision.report"), month=escape(doc.month),
             pdf=url_for("supervision.report", month=doc.month, format="pdf"), back=url_for("supervision.ledger"),
             token=generate_csrf(), publish_form=Markup(
                 '<form method="post" action="{publish}" id="publish">'
                 '<input type="hidden" name="csrf_token" value="{token}">'
                 '<input type="hidden" name="month" value="{month}">'
                 '<button type="submit">发布简报（通知各成员单位{zfb}）</button> {state}</form>').format(
                 publish=url_for("supervision.publish"), token=generate_csrf(), month=doc.month,
                 zfb="及区委作风办" if doc.region == "fenghua" else "",
                 state=Markup("；").join(
                     Markup("已于 {at} 由 {who} 发布，通知 {n} 个单位").format(
                         at=p.at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M"), who=p.sender or p.actor,
                         n=len(p.units)) for p in done) or "尚未发布") if sees_region(current_user) else "")
    return render_html(doc, toolbar=toolbar)


@bp.post("/report/typical")
def mark_typical() -> Any:
    """标记典型案例 for the month's 简报 (logged with who and when)."""
    from ..typical import mark

    month = (request.form.get("month") or "").strip()
    try:
        mark(engine(), request.form.get("business_key") or "", month=month, note=request.form.get("note") or "",
             region=current_user.region, where=visible_cases(current_user), username=current_user.username,
             sender=current_user.display_name, now=now())
    except QifuError as exc:
        return _bad_request(exc.message)
    flash("已更新本月典型案例")
    return redirect(url_for("supervision.report", month=month))


@bp.post("/report/publish")
def publish() -> Any:
    """发布简报: a notice to every member unit of the region (and 区委作风办) in the outbox, logged with who."""
    from ..links import external_url
    from ..publishing import publish as publish_briefing

    if not sees_region(current_user):
        abort(403)  # the published 简报 is the region's: only who sees the whole region publishes it
    month = (request.form.get("month") or "").strip()
    try:
        with engine().read() as session:
            doc = monthly_report(session, month, current_user.region, visible_cases(current_user), now=now())
    except QifuError as exc:
        return _bad_request(exc.message)
    done = publish_briefing(engine(), doc, username=current_user.username, sender=current_user.display_name,
                            link=external_url("supervision.published", month=doc.month), now=now())
    flash(f"已发布{doc.title}，已通知 {len(done.units)} 个单位")
    return redirect(url_for("supervision.report", month=doc.month))


@bp.get("/published/<month>")
def published(month: str) -> Any:
    """A published 简报 of the user's region, for every logged-in user of it; an unpublished month is 404."""
    from ..publishing import publications

    try:
        with engine().read() as session:
            if not publications(session, current_user.region, month.strip()):
                abort(404)
            doc = monthly_report(session, month, current_user.region, None, now=now())
    except QifuError as exc:
        return _bad_request(exc.message)
    fmt = (request.args.get("format") or "html").strip()
    if fmt == "pdf":
        from ..report_doc import render

        try:
            data = render(doc, "pdf")
        except QifuError as exc:
            return render_template("error.html", status=503, title="暂时无法生成 PDF", message=exc.message), 503
        return Response(data, mimetype="application/pdf",
                        headers={"Content-Disposition": _attachment(f"简报-{doc.month}.pdf", "report.pdf")})
    from ..report_doc import render_html

    return render_html(doc, toolbar=Markup('<a href="{pdf}">下载 PDF</a>').format(
        pdf=url_for("supervision.published", month=doc.month, format="pdf")))


# --- 年度考核 (year-end assessment per member unit) -------------------------------------------------------------
def _assessment() -> Any:
    from ..read.assessment import assessment

    year = (request.args.get("year") or "").strip() or _current_month()[:4]
    with engine().read() as session:
        return assessment(session, year, current_user.region, visible_cases(current_user))


@bp.get("/assessment")
def assessment_page() -> Any:
    from ..read.assessment import COLUMNS as ASSESSMENT_COLUMNS

    try:
        result = _assessment()
    except QifuError as exc:
        return _bad_request(exc.message)
    return render_template("supervision/assessment.html", result=result, columns=ASSESSMENT_COLUMNS,
                           shown=kpi_report.shown, region_name=REGION_NAMES.get(result.report.region, ""))


@bp.get("/assessment.xlsx")
def assessment_xlsx() -> Any:
    try:
        result = _assessment()
    except QifuError as exc:
        return _bad_request(exc.message)
    data = workbook_bytes(exports.assessment_sheet(result, _notes({"年份": str(result.year)})))
    return _download(data, f"年度考核-{result.year}.xlsx")


# --- 通知 (a unit's notices: 催办 and other outbox messages about its open cases, published 简报) ---------------
@bp.get("/notices")
def notices() -> str:
    from ..read.notices import LIMIT, published_briefings, unit_notices

    with engine().read() as session:
        found = unit_notices(session, current_user.unit, current_user.region, frozenset(current_user.roles))
        briefings = published_briefings(session, current_user.region)
    return render_template("supervision/notices.html", notices=found, briefings=briefings, limit=LIMIT)
