"""``notify`` (通知): queue a message to the enterprise, a unit's liaison or a role, through an outbox.

The handler only writes an ``outbox`` row in the step's transaction: a case never waits for an SMS gateway,
and a message exists exactly when the step that caused it committed. ``qifu outbox send`` (or a scheduler)
delivers pending rows later through a :class:`Sender`; failures are counted and retried, never lost.

Parameters: ``to`` — ``enterprise`` (the contact phone of the case), a unit code (its liaison's phone, else
the unit's phone) or a role name (delivered in the web inbox); ``template`` — one of :data:`TEMPLATES`;
``message`` — free text, used instead of the template's text when given.

Notices are written in words, never codes: a template's ``{field}`` is filled with the value's label — a
choice by its label in the diagram's form (through the lookup the application hands to :func:`make_handler`),
a unit, channel or category by its name — so the 督办 notice reads "处置方式：专班商办", not "joint".
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import incidents
from engine.errors import ConflictError, NotFoundError
from engine.services import ServiceCall

from .common import fail, unit
from .models import Category, Channel, EnterpriseCase, OrgUnit, Outbox

log = logging.getLogger("qifu.outbox")

TEMPLATES: dict[str, str] = {
    "received": "【企服】{enterprise_name}：您反映的问题已受理，编号 {business_key}，请凭查询码跟踪办理进度。",
    "transferred": "【企服】案件 {business_key}（{title}）已交由贵单位办理，请按时限办结答复。",
    "joint_review": "【企服】案件 {business_key}（{title}）需贵单位参加专班会商，请按时出席。",
    "escalated": "【企服】案件 {business_key}（{title}）已上报，请研究处置。",
    "answered": "【企服】{enterprise_name}：您反映的问题（{business_key}）已办结答复，请留意回访并评价。",
    "revisit": "【企服】{enterprise_name}：我们将就问题 {business_key} 进行回访，感谢您的配合。",
    "overdue": "【企服】案件 {business_key}（{title}）已超过办理时限，请抓紧办理并答复企业。",
    "reminder": "【企服】案件 {business_key}（{title}）即将到期，请按时办结。",
    "accountability": "【企服】企业对案件 {business_key}（{title}）的办理结果不满意，案件已挂账退回重新办理，"
                      "请对相关职能部门督查问责。处置方式：{route}",
}
# What each template is, for the history's note ("通知 督办：督查问责通报"); diagrams may name others with a message.
TEMPLATE_NAMES: dict[str, str] = {
    "received": "受理回执", "transferred": "交办通知", "joint_review": "会商通知", "escalated": "上报通知",
    "answered": "办结答复", "revisit": "回访通知", "overdue": "超期督办", "reminder": "到期提醒",
    "accountability": "督查问责通报", "plan": "解决方案告知", "feedback": "办理结果反馈",
}
_CODE_LIKE = re.compile(r"^[A-Za-z0-9_-]+$")
_UNIT_FIELDS = frozenset({"unit", "handling_unit", "joint_units", "units", "escalated_to", "lead_unit"})
_SPLIT = re.compile(r"[,，、;；\s]+")

ChoiceLabel = Callable[[str, str, str], "str | None"]
"""(process key, form field, value) → the value's label in the diagram's form, or None."""


class _Words(dict):
    """The fields a template may name, each filled on first use with its value in words."""

    def __init__(self, call: ServiceCall, choice_label: ChoiceLabel | None) -> None:
        super().__init__()
        self.call, self.choice_label = call, choice_label

    def __missing__(self, key: str) -> str:
        value = self.call.data.get(key)
        self[key] = text = "" if value is None else words(self.call, key, value, self.choice_label)
        return text


def words(call: ServiceCall, name: str, value: Any, choice_label: ChoiceLabel | None = None) -> str:
    """A case-data value as a notice says it: a choice by its form label, codes by their names."""
    if isinstance(value, bool):
        return "是" if value else "否"
    if not isinstance(value, (str, int, float)):
        return ""
    text = str(value)
    if isinstance(value, str) and choice_label is not None:
        found = choice_label(call.process_key, name, value)
        if found:
            return found
    session = call.session
    if name in _UNIT_FIELDS and text:
        codes = [c for c in _SPLIT.split(text) if c]
        found_names = dict(session.execute(select(OrgUnit.code, OrgUnit.name).where(OrgUnit.code.in_(codes))).all())
        return "、".join(found_names.get(c, c) for c in codes)
    if name in ("channel", "category") and text:
        model = Channel if name == "channel" else Category
        return session.scalar(select(model.name).where(model.code == text)) or text
    return text


def make_handler(choice_label: ChoiceLabel | None = None) -> Callable[[ServiceCall], dict[str, Any]]:
    """The ``notify`` handler, labelling choices through ``choice_label`` (the application's diagram lookup)."""

    def notify(call: ServiceCall) -> dict[str, Any]:
        """通知：写入待发消息 (to = enterprise / 单位编码 / 角色, template, message)."""
        return _notify(call, choice_label)

    return notify


def handle(call: ServiceCall) -> dict[str, Any]:
    """通知：写入待发消息 (to = enterprise / 单位编码 / 角色, template, message)."""
    return _notify(call, None)


def _notify(call: ServiceCall, choice_label: ChoiceLabel | None) -> dict[str, Any]:
    to = str(call.params.get("to") or "").strip()
    template = str(call.params.get("template") or "").strip() or None
    message = str(call.params.get("message") or "").strip()
    if not to:
        fail(call, "通知未指定接收方（to = enterprise / 单位编码 / 角色）")
    if template and template not in TEMPLATES and not message:
        fail(call, f"未知的通知模板“{template}”，可用：{', '.join(TEMPLATES)}")
    if not template and not message:
        fail(call, "通知须指定模板（template）或内容（message）")
    case = call.session.scalar(select(EnterpriseCase).where(EnterpriseCase.instance_id == call.instance_id))
    address: str | None
    if to == "enterprise":
        address = (case.contact_phone if case else None) or call.data.get("contact_phone")
        label = "企业"
    else:
        target = unit(call.session, to)
        if target is not None:
            address = target.liaison_phone or target.phone
            label = target.name
        elif _CODE_LIKE.match(to):
            fail(call, f"未知的通知对象“{to}”：不是 enterprise，也不是已登记的单位编码")
        else:
            address, label = None, to  # a role: shown in the inbox of its users
    fields = _Words(call, choice_label)
    fields["business_key"] = call.business_key
    if case is not None:
        fields.update(enterprise_name=case.enterprise_name, title=case.title or "")
    body = message or TEMPLATES[template].format_map(fields)  # type: ignore[index]
    call.session.add(Outbox(instance_id=call.instance_id, business_key=call.business_key, recipient=to,
                            address=str(address) if address else None, template=template, body=body,
                            created_at=call.now, attempts=0))
    kind = TEMPLATE_NAMES.get(template or "") or "自定义消息"
    call.notes.append({"note": f"通知 {label}：{kind}", "to": to, "template": template})
    return {}


# --- delivery -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Message:
    id: int
    recipient: str
    address: str | None
    body: str
    business_key: str | None


class Sender(Protocol):
    """Delivers one message (SMS gateway, government messaging platform…); raise on failure."""

    def send(self, message: Message) -> None: ...


class LoggingSender:
    """A sender that only logs: the default until a gateway is configured; keeps what it sent for tests."""

    def __init__(self) -> None:
        self.sent: list[Message] = []

    def send(self, message: Message) -> None:
        log.info("outbox #%s -> %s (%s): %s", message.id, message.recipient, message.address or "-", message.body)
        self.sent.append(message)


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0


JOB_TYPE = "outbox"  # the job queue's name on incidents


def requeue(session: Session, job_id: int, now: datetime) -> None:
    """Retry of an outbox incident: the message is pending again (the next ``qifu outbox send`` tries it)."""
    row = session.get(Outbox, job_id)
    if row is None:
        raise NotFoundError(f"待发消息 #{job_id} 不存在")
    if row.sent_at is not None:
        raise ConflictError(f"待发消息 #{job_id} 已发送")
    row.attempts, row.last_error = 0, None


def pending(session: Session, limit: int = 100, max_attempts: int = 5) -> list[Outbox]:
    """Unsent messages with attempts left, oldest first."""
    return list(session.scalars(select(Outbox).where(Outbox.sent_at.is_(None), Outbox.attempts < max_attempts)
                                .order_by(Outbox.id).limit(limit)))


def deliver_pending(session: Session, sender: Sender, now: datetime, *, limit: int = 100,
                    max_attempts: int = 5) -> DeliveryReport:
    """Send pending rows through ``sender``; a failure is recorded on the row (attempts, last_error), and the
    last allowed one opens an incident (the message is no longer pending: it must not vanish unseen)."""
    report = DeliveryReport()
    for row in pending(session, limit, max_attempts):
        row.attempts += 1
        try:
            sender.send(Message(row.id, row.recipient, row.address, row.body, row.business_key))
        except Exception as exc:  # any gateway failure is recorded and retried later
            row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            report.failed += 1
            if row.attempts >= max_attempts:
                incidents.open_for_job(session, JOB_TYPE, row.id, error=row.last_error, now=now,
                                       retries=row.attempts, instance_id=row.instance_id,
                                       business_key=row.business_key,
                                       element=f"{row.template or 'message'} → {row.recipient}")
            continue
        row.sent_at = now
        row.last_error = None
        report.sent += 1
    session.flush()
    return report

