"""异常事件 (Camunda Cockpit's incidents) for administrators: timers and queued jobs that used up their retries.

The list (50 a page, newest first, with the counts by status) and two actions, each a POST with the app's
CSRF token: 重试 runs the incident's work again through the management service (a timer fires through the
normal step, an outbox message is queued again), 标记已解决 closes it with a note. Only 管理员 may look: anyone
else gets 403, a visitor who is not logged in the login page. The nav link carries the open count, so a
stuck deadline is visible on every page an administrator opens.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import StringField

from engine.errors import ConflictError, NotFoundError, QifuError

from .common import engine, page_number

bp = Blueprint("incidents", __name__, url_prefix="/admin/incidents")

ADMIN_ROLE = "管理员"
STATUS_CHOICES = {"open": "未解决", "resolved": "已解决", "all": "全部"}
KIND_CHOICES = {"timer": "定时器", "job": "作业（待发消息）"}
RESOLUTIONS = {"retried": "重试成功", "requeued": "已重新排队", "cancelled": "无需重试（已不在等待）",
               "resolved": "人工处理"}


class ResolveForm(FlaskForm):
    note = StringField()


def may_see_incidents(user: Any) -> bool:
    return bool(getattr(user, "is_authenticated", False) and ADMIN_ROLE in user.roles)


@bp.app_context_processor
def _nav() -> dict[str, Any]:
    """The nav link, for administrators only, with the open count (read when the template asks)."""
    return {"may_see_incidents": lambda: may_see_incidents(current_user),
            "open_incident_count": lambda: engine().management.count_open_incidents()}


@bp.before_request
def _only_administrators() -> Any:
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()
    if not may_see_incidents(current_user):
        abort(403)
    return None


def _bad_request(message: str) -> tuple[str, int]:
    return render_template("error.html", status=400, title="请求无效", message=message), 400


@bp.get("/")
def index() -> Any:
    status = request.args.get("status", "open")
    kind = request.args.get("kind") or None
    business_key = (request.args.get("case") or "").strip()[:200] or None
    if status not in STATUS_CHOICES:
        return _bad_request(f"未知的状态“{status[:20]}”，可选：{'、'.join(STATUS_CHOICES.values())}")
    if kind is not None and kind not in KIND_CHOICES:
        return _bad_request(f"未知的类型“{kind[:20]}”，可选：{'、'.join(KIND_CHOICES.values())}")
    page = engine().management.incidents(status=None if status == "all" else status, kind=kind,
                                         business_key=business_key, page=page_number())
    args = {k: v for k, v in (("status", status), ("kind", kind), ("case", business_key)) if v}
    return render_template("incidents/index.html", page=page, filters={"status": status, "kind": kind or "",
                                                                      "case": business_key or ""},
                           args=args, statuses=STATUS_CHOICES, kinds=KIND_CHOICES, resolutions=RESOLUTIONS)


def _back() -> Any:
    """Back to the list the button was pressed on (its filters ride along as form fields)."""
    args = {k: v for k in ("status", "kind", "case", "page") if (v := (request.form.get(k) or "").strip()[:200])}
    return redirect(url_for("incidents.index", **args))


@bp.post("/<int:incident_id>/retry")
def retry(incident_id: int) -> Any:
    try:
        result = engine().management.retry_incident(incident_id, actor=current_user.username)
    except (NotFoundError, ConflictError) as exc:
        flash(f"无法重试：{exc.message}")
        return _back()
    except QifuError as exc:
        flash(f"异常事件 #{incident_id} {exc.message}")
        return _back()
    messages = {"retried": "定时器已重新触发，异常事件已解决", "requeued": "待发消息已重新排队，异常事件已解决",
                "cancelled": "定时器已不在等待（案件已推进或结束），异常事件已关闭"}
    flash(f"异常事件 #{incident_id}：{messages.get(result.resolution, result.resolution)}")
    return _back()


@bp.post("/<int:incident_id>/resolve")
def resolve(incident_id: int) -> Any:
    form = ResolveForm()
    note = (form.note.data or "").strip()
    if not note:
        flash(f"异常事件 #{incident_id} 未处理：请填写处理说明")
        return _back()
    if len(note) > 2000:
        flash(f"异常事件 #{incident_id} 未处理：处理说明最长 2000 字")
        return _back()
    try:
        engine().management.resolve_incident(incident_id, actor=current_user.username, note=note)
    except QifuError as exc:
        flash(f"无法标记：{exc.message}")
        return _back()
    flash(f"异常事件 #{incident_id} 已标记为已解决")
    return _back()
