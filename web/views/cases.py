"""The case page: enterprise and contact (masked), deadlines, the history timeline, the diagram with the
case's progress, attachments. Every URL here checks case visibility first (403 otherwise)."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user, login_required
from sqlalchemy import select

from engine.errors import ConflictError, QifuError
from engine.forms import UNSTORABLE

from .. import attachments, labels
from ..forms import ActionForm, AttachmentForm
from ..models import Attachment, UnmaskLog
from ..read.case_page import attachments_of, case_deadlines, diagram_markers, timeline
from ..read.cases import CaseSummary, case_by_key
from ..scope import may_change_case, may_unmask
from .common import client_ip, engine, now, require_case

bp = Blueprint("cases", __name__, url_prefix="/cases")

CONTACT_FIELDS = ("contact_phone", "contact_id_number")


def _case(session: Any, business_key: str) -> CaseSummary:
    return require_case(case_by_key(engine(), session, business_key))


def _render(business_key: str, *, revealed: dict[str, str] | None = None, error: str | None = None,
            status: int = 200) -> Any:
    qifu = engine()
    calendar = qifu.calendar.snapshot()
    with qifu.read() as session:
        case = _case(session, business_key)
        instance = case.instance
        events = qifu.history.events(instance.id)
        context = {
            "case": case,
            "deadlines": case_deadlines(qifu, instance, calendar, now()),
            "timeline": timeline(qifu, session, instance, events),
            "markers": diagram_markers(qifu, instance, events, now()),
            "files": attachments_of(session, instance.id),
            "can_unmask": may_unmask(current_user, case.scope),
            "can_upload": may_change_case(current_user, case.scope) and instance.status == "running",
        }
    contact = {}
    for name in CONTACT_FIELDS:
        value = case.value(name)
        contact[name] = (revealed or {}).get(name) or labels.mask(name, value)
    return render_template("case.html", contact=contact, revealed=revealed or {}, error=error,
                           raw_history=request.args.get("history") == "raw",
                           action_form=ActionForm(), upload_form=AttachmentForm(),
                           ledger_names=labels.LEDGER, **context), status


@bp.get("/<business_key>")
@login_required
def show(business_key: str):
    return _render(business_key)


REASON_MAX = 200


def unmask_reason(text: str | None) -> str:
    """The reason given for revealing a number (PIPL: every access has a purpose), or a QifuError in Chinese."""
    reason = (text or "").strip()
    if len(reason) < 2:
        raise QifuError("请填写查看完整号码的原因（至少 2 个字），查看将连同原因记录在案")
    if len(reason) > REASON_MAX:
        raise QifuError(f"查看原因最多 {REASON_MAX} 个字")
    if UNSTORABLE.search(reason):
        raise QifuError("查看原因含有不可见的控制字符，请重新填写")
    return reason


@bp.post("/<business_key>/reveal")
@login_required
def reveal(business_key: str):
    """Show one contact field in full — to those web.scope.may_unmask allows — with a reason, and recorded
    with it (who, which case and field, when, from where, why)."""
    name = request.form.get("field", "")
    if name not in CONTACT_FIELDS:
        abort(400)
    with engine().read() as session:
        case = _case(session, business_key)
    if not may_unmask(current_user, case.scope):
        abort(403)
    try:
        reason = unmask_reason(request.form.get("reason"))
    except QifuError as exc:
        return _render(business_key, error=exc.message, status=400)
    with engine().session() as session:
        value = _case(session, business_key).value(name)
        session.add(UnmaskLog(username=current_user.username, business_key=business_key, field=name, at=now(),
                              ip=client_ip(), reason=reason))
    return _render(business_key, revealed={name: "" if value is None else str(value)})


@bp.post("/<business_key>/attachments")
@login_required
def upload(business_key: str):
    form = AttachmentForm()
    with engine().read() as session:
        case = _case(session, business_key)
    if not may_change_case(current_user, case.scope):
        abort(403)  # the user sees the case (an auditor) but may not add to it
    if case.instance.status != "running":
        return _render(business_key, error="案件已办结，不能再上传附件", status=409)
    upload_file = form.file.data
    if not upload_file or not getattr(upload_file, "filename", ""):
        return _render(business_key, error="请选择要上传的文件", status=400)
    try:
        checked = attachments.check(upload_file.filename, upload_file.stream,
                                    current_app.config["ATTACHMENT_MAX_BYTES"])
    except attachments.AttachmentRefused as exc:
        return _render(business_key, error=exc.message, status=400)
    try:
        engine().runtime.record_event(
            case.instance.id, "attachment_added", actor=current_user.username,
            details={"filename": checked.filename, "sha256": checked.sha256, "size": len(checked.data)},
            also=lambda session: attachments.store(session, current_app.config["ATTACHMENT_DIR"], checked,
                                                   instance_id=case.instance.id, task_guid=None,
                                                   user=current_user.username, now=now()))
    except ConflictError as exc:
        return _render(business_key, error=f"上传未成功：{exc.message}", status=409)
    flash(f"已上传附件：{checked.filename}")
    return redirect(url_for("cases.show", business_key=business_key))


@bp.get("/<business_key>/attachments/<int:attachment_id>")
@login_required
def download(business_key: str, attachment_id: int):
    with engine().read() as session:
        case = _case(session, business_key)
        row = session.scalar(select(Attachment).where(Attachment.id == attachment_id,
                                                      Attachment.instance_id == case.instance.id))
        if row is None:
            abort(404)
    path = attachments.path_of(current_app.config["ATTACHMENT_DIR"], row)
    if not path.exists():
        abort(404)
    return send_file(path, mimetype=attachments.MIME[row.kind], as_attachment=True, download_name=row.filename)


@bp.get("/<business_key>/diagram.xml")
@login_required
def diagram_xml(business_key: str) -> Response:
    """The BPMN XML of the version the case runs on (for bpmn-js), only to users who may see the case."""
    with engine().read() as session:
        case = _case(session, business_key)
    xml = engine().repository.xml(case.instance.deployment_id)
    return Response(xml, mimetype="application/xml", headers={"Cache-Control": "private, max-age=300"})
