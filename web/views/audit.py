"""审计 pages: replay a case step by step, verify the history chains, export the event log, and the log of
who revealed which contact (PIPL).

For 审计, 督办 and 管理员 (PA-9's 复盘 is the office's too), each within the cases it may see
(:mod:`web.scope`); anyone else gets 403, a case outside one's scope 404 as everywhere. Every page here only
reads: replay and verification go through the history service, the lists through :mod:`web.read.history`.
"""

from __future__ import annotations

import re
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user

from engine.errors import NotFoundError, QifuError
from handlers.models import EnterpriseCase

from ..read import history as read_history
from ..read.cases import case_by_key
from ..read.history import EXPORT_FORMATS, ExportFilter, check_format, visible_instances
from .common import engine, now, page_number, require_case

bp = Blueprint("audit", __name__, url_prefix="/audit")

AUDIT_ROLES = frozenset({"审计", "督办", "管理员"})
VERIFY_PAGE = 500  # chains a "verify all" page checks; the next page continues after the last
_STEP = re.compile(r"[1-9]\d{0,6}")
_AFTER = re.compile(r"\d{1,12}")


def may_audit(user: Any) -> bool:
    return bool(getattr(user, "is_authenticated", False) and user.roles & AUDIT_ROLES)


@bp.app_context_processor
def _nav() -> dict[str, Any]:
    """The nav link and the case page's replay link, for those who may audit."""
    return {"may_audit": lambda: may_audit(current_user)}


@bp.before_request
def _only_auditors() -> Any:
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()
    if not may_audit(current_user):
        abort(403)
    return None


def _bad(template: str, message: str, **context: Any) -> tuple[str, int]:
    return render_template(template, error=message, **context), 400


def _processes() -> list[Any]:
    return engine().repository.processes()


@bp.get("/")
def index() -> Any:
    return redirect(url_for("audit.verify"))


# --- replay --------------------------------------------------------------------------------------------
@bp.get("/cases/<business_key>/replay")
def replay(business_key: str) -> Any:
    """One step of the case (``?step=K``, default the first): the event, the diagram as it stood, the data."""
    qifu = engine()
    with qifu.read() as session:
        case = require_case(case_by_key(qifu, session, business_key))
        text = request.args.get("step", "").strip()
        if text and not _STEP.fullmatch(text):
            return render_template("error.html", status=400, title="请求无效",
                                   message=f"步骤应为正整数：“{text[:20]}”"), 400
        try:
            step = read_history.load_replay(qifu, session, case.instance, int(text) if text else 1)
        except NotFoundError as exc:
            return render_template("error.html", status=404, title="未找到", message=exc.message), 404
    return render_template("audit/replay.html", case=case, r=step)


# --- verification ----------------------------------------------------------------------------------------
@bp.get("/verify")
def verify() -> Any:
    """Verify one case's chain (``?case=KEY``) or the next 500 visible chains (``?all=1&after=ID``); below,
    the unmask log of the visible cases."""
    qifu = engine()
    key = request.args.get("case", "").strip()[:200]
    checking_all = request.args.get("all") == "1"
    after_text = request.args.get("after", "0").strip() or "0"
    context: dict[str, Any] = {"case_key": key, "result": None, "batch": None, "error": None,
                               "keys": qifu.history.keys}
    status = 200
    with qifu.read() as session:
        if key:
            case = case_by_key(qifu, session, key)
            if case is None or not _visible(case):
                context["error"], status = f"未找到案件：{key}（或无权查看）", 404
            else:
                problems = qifu.history.verify([case.instance.id])
                context["result"] = {"case": case, "broken": read_history.broken_chains(qifu, problems),
                                     "events": len(qifu.history.events(case.instance.id))}
        elif checking_all:
            if not _AFTER.fullmatch(after_text):
                context["error"], status = f"起始编号应为非负整数：“{after_text[:20]}”", 400
            else:
                batch = qifu.history.verify_batch(after=int(after_text), limit=VERIFY_PAGE,
                                                  instances=visible_instances(current_user))
                context["batch"] = {"checked": batch.checked, "last_id": batch.last_id, "done": batch.done,
                                    "after": int(after_text),
                                    "broken": read_history.broken_chains(qifu, batch.problems)}
        context["unmask"] = read_history.unmask_log(session, current_user, page=page_number("log_page"))
    return render_template("audit/verify.html", **context), status


def _visible(case: Any) -> bool:
    from ..scope import may_see_case

    return may_see_case(current_user, case.scope)


# --- export -----------------------------------------------------------------------------------------------
@bp.get("/export")
def export() -> Any:
    """The export form; with ``format`` the event log itself (XES or CSV), streamed, of the visible cases
    (``case=KEY``: that case only)."""
    wanted = ExportFilter.from_args(request.args)
    fmt = request.args.get("format", "").strip()
    key = request.args.get("case", "").strip()[:200]
    context = {"wanted": wanted, "processes": _processes(), "case_key": key}
    if not fmt:
        return render_template("audit/export.html", error=None, **context)
    instances = visible_instances(current_user)
    try:
        check_format(fmt)
        if key:
            with engine().read() as session:
                require_case(case_by_key(engine(), session, key))
            instances = instances.where(EnterpriseCase.business_key == key)
        flt = wanted.log_filter(instances)
    except QifuError as exc:
        return _bad("audit/export.html", exc.message, **context)
    name = f"企服事件日志 {key or wanted.process or '全部流程'}"
    chunks = read_history.export_chunks(engine(), flt, fmt, name=name)
    filename = wanted.filename(now().date(), fmt) if not key else f"qifu-eventlog-{key}.{fmt}"
    filename = re.sub(r"[^A-Za-z0-9._-]", "_", filename)
    return Response(stream_with_context(chunks), mimetype=EXPORT_FORMATS[fmt].split(";")[0],
                    content_type=EXPORT_FORMATS[fmt],
                    headers={"Content-Disposition": f'attachment; filename="{filename}"',
                             "Cache-Control": "no-store"})
