"""A task: its form (built from the diagram), claim / unclaim, and a supervisor's reassignment.

Completing goes through ``engine.runtime.complete_task`` — the one way a case changes — which validates the
data again; a form error comes back with the user's input and Chinese messages, and the case is unchanged.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_required

from engine import tasks as engine_tasks
from engine.calendar import load_calendar
from engine.errors import ConflictError, FormValidationError, NotFoundError, QifuError

from .. import attachments, queries
from ..auth import find_user, load_current_user
from ..forms import ActionForm, ReassignForm, form_field, submitted_values, task_form_class
from ..scope import may_see_case
from .common import engine, now, require_case

bp = Blueprint("tasks", __name__, url_prefix="/tasks")


def _load(session, task_guid: str):  # noqa: ANN001, ANN202
    """(task row, case) for an open task the user may see; a closed task redirects to its case."""
    row = queries.open_task(session, task_guid)
    if row is None:
        return None, _closed_case(session, task_guid)
    case = queries.case_summaries(session, [row.instance_id])[row.instance_id]
    require_case(case)
    return row, case


def _closed_case(session, task_guid: str):  # noqa: ANN001, ANN202
    """The case of a task that is no longer open (completed or cancelled), if the user may see it; a task of a
    case the user may not see is a 404, like an id no task ever had."""
    instance_id = engine_tasks.instance_of_task(session, task_guid)
    if instance_id is None:
        abort(404)
    return require_case(queries.case_summaries(session, [instance_id])[instance_id])


def _page(row, case, form, fields, *, error=None, status=200):  # noqa: ANN001, ANN202
    with engine().session() as session:
        cal = load_calendar(session)
        deadline = queries.deadline(cal, now(), row.due_at, row.due_provisional)
        reassign_to = queries.users_for_reassign(session, engine_tasks.split_groups(row.candidate_groups)) \
            if current_user.is_supervisor else []
    return render_template("task.html", task=row, case=case, form=form, fields=fields, field=form_field,
                           deadline=deadline, error=error, can_work=queries.may_work_on(current_user, row, case),
                           action_form=ActionForm(), reassign_form=ReassignForm(), reassign_to=reassign_to,
                           groups=engine_tasks.split_groups(row.candidate_groups)), status


@bp.route("/<task_guid>", methods=["GET", "POST"])
@login_required
def show(task_guid: str):  # noqa: ANN201
    with engine().session() as session:
        row, case = _load(session, task_guid)
        if row is None:
            flash("该任务已办结或已由他人处理")
            return redirect(url_for("cases.show", business_key=case.business_key))
        fields = queries.task_form_fields(session, row)
    form = task_form_class(fields, case.data)()
    if not form.is_submitted():
        return _page(row, case, form, fields)
    if not queries.may_work_on(current_user, row, case):
        abort(403)
    if not form.validate_on_submit():
        return _page(row, case, form, fields, error="表单有误，请按提示修改后重新提交", status=400)
    upload = form.attachment.data
    checked = None
    if upload and getattr(upload, "filename", ""):
        try:
            checked = attachments.check(upload.filename, upload.stream, current_app.config["ATTACHMENT_MAX_BYTES"])
        except attachments.AttachmentRefused as exc:
            form.attachment.errors = [exc.message]
            return _page(row, case, form, fields, error=exc.message, status=400)
    try:
        engine().runtime.complete_task(task_guid, submitted_values(form, fields), actor=current_user.username)
    except FormValidationError as exc:
        known = {fd.id for fd in fields}
        for field_id, message in exc.errors.items():
            if field_id in known:
                form_field(form, next(fd for fd in fields if fd.id == field_id)).errors = [message]
        return _page(row, case, form, fields, error="表单有误：" + "；".join(exc.errors.values()), status=400)
    except (ConflictError, NotFoundError) as exc:
        return _page(row, case, form, fields, error=f"无法办理：{exc.message}（可能已被他人办结，请刷新）",
                     status=409)
    except QifuError as exc:  # the step itself refused (a handler, an expression): nothing changed
        return _page(row, case, form, fields, error=f"办理未成功，案件未作改动：{exc}", status=422)
    if checked is not None:
        with engine().session() as session:
            attachments.store(session, current_app.config["ATTACHMENT_DIR"], checked, instance_id=row.instance_id,
                              task_guid=task_guid, user=current_user.username, now=now())
    flash(f"已办理：{row.name or row.spec_id}")
    return redirect(url_for("cases.show", business_key=case.business_key))


@bp.post("/<task_guid>/claim")
@login_required
def claim(task_guid: str):  # noqa: ANN201
    ActionForm().validate_on_submit()  # CSRF is checked app-wide before this runs
    with engine().session() as session:
        row, case = _load(session, task_guid)
        if row is None:
            flash("该任务已办结")
            return redirect(url_for("cases.show", business_key=case.business_key))
        if not queries.may_work_on(current_user, row, case):
            abort(403)
    try:
        engine().runtime.assign_task(task_guid, current_user.username, actor=current_user.username, action="claim")
        flash("已认领")
    except (ConflictError, NotFoundError) as exc:
        flash(f"认领失败：{exc.message}")
    return redirect(url_for("tasks.show", task_guid=task_guid))


@bp.post("/<task_guid>/unclaim")
@login_required
def unclaim(task_guid: str):  # noqa: ANN201
    with engine().session() as session:
        row, case = _load(session, task_guid)
        if row is None:
            return redirect(url_for("cases.show", business_key=case.business_key))
    try:
        engine().runtime.assign_task(task_guid, current_user.username, actor=current_user.username,
                                     action="unclaim")
        flash("已退回组内待认领")
    except (ConflictError, NotFoundError) as exc:
        flash(f"退回失败：{exc.message}")
    return redirect(url_for("inbox.index"))


@bp.post("/<task_guid>/reassign")
@login_required
def reassign(task_guid: str):  # noqa: ANN201
    """督办 / 管理员: give the task to a user who holds one of its groups and may see the case, or back to
    the group (empty name)."""
    if not current_user.is_supervisor:
        abort(403)
    form = ReassignForm()
    with engine().session() as session:
        row, case = _load(session, task_guid)
        if row is None:
            flash("该任务已办结")
            return redirect(url_for("cases.show", business_key=case.business_key))
        target_name = (form.username.data or "").strip()
        target = None
        if target_name:
            user_row = find_user(session, target_name)
            target = load_current_user(session, user_row.id) if user_row else None
            groups = engine_tasks.split_groups(row.candidate_groups)
            if target is None or not target.is_active:
                flash(f"改派失败：用户“{target_name}”不存在")
                return redirect(url_for("tasks.show", task_guid=task_guid))
            if not target.holds_any(groups) or not may_see_case(target, case.scope):
                flash(f"改派失败：用户“{target.username}”不属于本任务的候选组或无权查看该案件")
                return redirect(url_for("tasks.show", task_guid=task_guid))
    try:
        engine().runtime.assign_task(task_guid, target.username if target else None,
                                     actor=current_user.username, action="reassign")
    except (ConflictError, NotFoundError) as exc:
        flash(f"改派失败：{exc.message}")
        return redirect(url_for("tasks.show", task_guid=task_guid))
    flash(f"已改派给 {target.display_name}" if target else "已退回组内待认领")
    return redirect(url_for("tasks.show", task_guid=task_guid))

