"""A task: its form (built from the diagram), claim / unclaim, and a supervisor's reassignment.

Completing goes through ``engine.runtime.complete_task`` — the one way a case changes — which validates the
data again; a form error comes back with the user's input and Chinese messages, and the case is unchanged.
An attachment sent with the form is stored in the same transaction as the step: both or neither.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_required

from engine.errors import ConflictError, FormValidationError, NotFoundError, QifuError
from engine.tasks import OpenTask

from .. import attachments
from ..auth import find_user, load_current_user
from ..forms import ActionForm, ReassignForm, form_field, submitted_values, task_form_class
from ..read.case_page import task_form_fields, users_for_reassign
from ..read.cases import CaseSummary, case_summaries
from ..read.deadlines import deadline
from ..read.inbox import may_work_on
from ..scope import may_see_case
from .common import engine, now, require_case

bp = Blueprint("tasks", __name__, url_prefix="/tasks")


def _case_of(instance_id: int) -> CaseSummary:
    with engine().read() as session:
        case = case_summaries(engine(), session, [instance_id]).get(instance_id)
    return require_case(case)


def _load(task_guid: str) -> tuple[OpenTask | None, CaseSummary]:
    """(task, case) for an open task the user may see; for a task no longer open, (None, its case). A task of
    a case the user may not see is a 404, like an id no task ever had."""
    task = engine().tasks.get(task_guid)
    if task is not None:
        return task, _case_of(task.instance_id)
    instance_id = engine().tasks.instance_of(task_guid)
    if instance_id is None:
        abort(404)
    return None, _case_of(instance_id)


def _page(task: OpenTask, case: CaseSummary, form: Any, fields: list[Any], *, error: str | None = None,
          status: int = 200) -> Any:
    calendar = engine().calendar.snapshot()
    reassign_to: list[tuple[str, str]] = []
    if current_user.is_supervisor:
        with engine().read() as session:
            reassign_to = users_for_reassign(session, task.candidate_groups)
    return render_template("task.html", task=task, case=case, form=form, fields=fields, field=form_field,
                           deadline=deadline(calendar, now(), task.due_at, task.due_provisional), error=error,
                           can_work=may_work_on(current_user, task, case), action_form=ActionForm(),
                           reassign_form=ReassignForm(), reassign_to=reassign_to,
                           groups=list(task.candidate_groups)), status


@bp.route("/<task_guid>", methods=["GET", "POST"])
@login_required
def show(task_guid: str) -> Any:
    task, case = _load(task_guid)
    if task is None:
        flash("该任务已办结或已由他人处理")
        return redirect(url_for("cases.show", business_key=case.business_key))
    fields = task_form_fields(engine(), case.instance, task)
    form = task_form_class(fields, case.data)()
    if not form.is_submitted():
        return _page(task, case, form, fields)
    if not may_work_on(current_user, task, case):
        abort(403)
    if not form.validate_on_submit():
        return _page(task, case, form, fields, error="表单有误，请按提示修改后重新提交", status=400)
    upload = form.attachment.data
    checked = None
    if upload and getattr(upload, "filename", ""):
        try:
            checked = attachments.check(upload.filename, upload.stream, current_app.config["ATTACHMENT_MAX_BYTES"])
        except attachments.AttachmentRefused as exc:
            form.attachment.errors = [exc.message]
            return _page(task, case, form, fields, error=exc.message, status=400)

    def with_attachment(session: Any, _result: Any) -> None:
        if checked is not None:
            attachments.store(session, current_app.config["ATTACHMENT_DIR"], checked, instance_id=task.instance_id,
                              task_guid=task_guid, user=current_user.username, now=now())

    try:
        engine().runtime.complete_task(task_guid, submitted_values(form, fields), actor=current_user.username,
                                       also=with_attachment)
    except FormValidationError as exc:
        known = {fd.id: fd for fd in fields}
        for field_id, message in exc.errors.items():
            if field_id in known:
                form_field(form, known[field_id]).errors = [message]
        return _page(task, case, form, fields, error="表单有误：" + "；".join(exc.errors.values()), status=400)
    except (ConflictError, NotFoundError) as exc:
        return _page(task, case, form, fields, error=f"无法办理：{exc.message}（可能已被他人办结，请刷新）",
                     status=409)
    except QifuError as exc:  # the step itself refused (a handler, an expression): nothing changed
        return _page(task, case, form, fields, error=f"办理未成功，案件未作改动：{exc}", status=422)
    flash(f"已办理：{task.name or task.spec_id}")
    return redirect(url_for("cases.show", business_key=case.business_key))


@bp.post("/<task_guid>/claim")
@login_required
def claim(task_guid: str) -> Any:
    ActionForm().validate_on_submit()  # CSRF is checked app-wide before this runs
    task, case = _load(task_guid)
    if task is None:
        flash("该任务已办结")
        return redirect(url_for("cases.show", business_key=case.business_key))
    if not may_work_on(current_user, task, case):
        abort(403)
    try:
        engine().tasks.claim(task_guid, current_user.username)
        flash("已认领")
    except (ConflictError, NotFoundError) as exc:
        flash(f"认领失败：{exc.message}")
    return redirect(url_for("tasks.show", task_guid=task_guid))


@bp.post("/<task_guid>/unclaim")
@login_required
def unclaim(task_guid: str) -> Any:
    task, case = _load(task_guid)
    if task is None:
        return redirect(url_for("cases.show", business_key=case.business_key))
    try:
        engine().tasks.unclaim(task_guid, current_user.username)
        flash("已退回组内待认领")
    except (ConflictError, NotFoundError) as exc:
        flash(f"退回失败：{exc.message}")
    return redirect(url_for("inbox.index"))


@bp.post("/<task_guid>/reassign")
@login_required
def reassign(task_guid: str) -> Any:
    """督办 / 管理员: give the task to a user who holds one of its groups and may see the case, or back to
    the group (empty name)."""
    if not current_user.is_supervisor:
        abort(403)
    form = ReassignForm()
    task, case = _load(task_guid)
    if task is None:
        flash("该任务已办结")
        return redirect(url_for("cases.show", business_key=case.business_key))
    target_name = (form.username.data or "").strip()
    target = None
    if target_name:
        with engine().read() as session:
            user_row = find_user(session, target_name)
            target = load_current_user(session, user_row.id) if user_row else None
        if target is None or not target.is_active:
            flash(f"改派失败：用户“{target_name}”不存在")
            return redirect(url_for("tasks.show", task_guid=task_guid))
        if not target.holds_any(task.candidate_groups) or not may_see_case(target, case.scope):
            flash(f"改派失败：用户“{target.username}”不属于本任务的候选组或无权查看该案件")
            return redirect(url_for("tasks.show", task_guid=task_guid))
    try:
        engine().tasks.reassign(task_guid, target.username if target else None, actor=current_user.username)
    except (ConflictError, NotFoundError) as exc:
        flash(f"改派失败：{exc.message}")
        return redirect(url_for("tasks.show", task_guid=task_guid))
    flash(f"已改派给 {target.display_name}" if target else "已退回组内待认领")
    return redirect(url_for("tasks.show", task_guid=task_guid))
