"""What the case page and a task page show: the task's form, open deadlines, the history in Chinese, the
diagram's markers, attachments, and whom a supervisor may give a task to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.calendar import WorkdayCalendar
from engine.forms import FieldDef, form_fields
from engine.history import StepEvent
from engine.process_engine import ProcessEngine
from engine.runtime import InstanceView
from engine.tasks import OpenTask

from .. import labels
from ..models import Attachment, User, UserRole
from .cases import CodeNames
from .deadlines import Deadline, deadline


def _task_specs(engine: ProcessEngine, deployment_id: int) -> list[Any]:
    spec, subs = engine.repository.specs(deployment_id)
    out = list(spec.task_specs.values())
    for sub in subs.values():
        out.extend(sub.task_specs.values())
    return out


def task_form_fields(engine: ProcessEngine, instance: InstanceView, task: OpenTask) -> list[FieldDef]:
    """The form the diagram defines for this user task (``camunda:formData``); empty for a plain task."""
    for spec in _task_specs(engine, instance.deployment_id):
        if getattr(spec, "bpmn_id", None) == task.spec_id:
            return form_fields(spec)
    return []


def field_labels(engine: ProcessEngine, instance: InstanceView) -> dict[str, str]:
    """Labels of every form field of the case's diagram, then the domain's variable names as fallback."""
    out = dict(labels.VARIABLES)
    for spec in _task_specs(engine, instance.deployment_id):
        for fd in form_fields(spec) if getattr(spec, "form", None) is not None else []:
            if fd.label:
                out[fd.id] = fd.label
    return out


@dataclass
class OpenDeadline:
    kind: str  # task | timer
    name: str
    element: str
    assignee: str | None
    deadline: Deadline


def case_deadlines(engine: ProcessEngine, instance: InstanceView, calendar: WorkdayCalendar,
                   now: datetime) -> list[OpenDeadline]:
    """Open tasks and waiting timers of the case, each with its working days left."""
    out = [OpenDeadline("task", t.name or t.spec_id, t.spec_id, t.assignee,
                        deadline(calendar, now, t.due_at, t.due_provisional))
           for t in engine.tasks.of_instances([instance.id]).get(instance.id, [])]
    names = {getattr(s, "bpmn_id", None): getattr(s, "bpmn_name", None)
             for s in _task_specs(engine, instance.deployment_id)}
    for timer in engine.management.waiting_timers(instance.id):
        out.append(OpenDeadline("timer", names.get(timer.spec_id) or timer.spec_id, timer.spec_id, None,
                                deadline(calendar, now, timer.due_at, timer.provisional)))
    return out


@dataclass
class Change:
    label: str
    value: str


@dataclass
class TimelineEntry:
    seq: int
    at: datetime
    actor: str | None
    action: str
    what: str
    elements: list[str]
    changes: list[Change]
    notes: list[str]
    reason: str | None = None


def timeline(engine: ProcessEngine, session: Session, instance: InstanceView,
             events: list[StepEvent]) -> list[TimelineEntry]:
    """The case history in Chinese: who, what, when, which data changed. Contact numbers always masked here:
    the full value is shown only in the contact block, where each view is recorded."""
    names = field_labels(engine, instance)
    codes = CodeNames.load(session)
    out: list[TimelineEntry] = []
    for ev in events:
        completed = [c.name or c.element for c in ev.completed
                     if c.type not in ("StartEvent", "EndEvent") or c.name]
        changes = []
        for key, value in ev.data_set.items():
            if key in labels.HIDDEN_VARIABLES:
                continue
            shown = labels.mask(key, value) if key in labels.MASKED_VARIABLES else codes.show(key, value)
            changes.append(Change(names.get(key, key), shown))
        notes = [str(n.get("note") or n.get("message") or "") for n in ev.notes]
        details = ev.details
        if ev.action in ("timer_rescheduled", "deadline_recomputed") and details.get("to"):
            changes.append(Change("原期限", codes.show("from", details.get("from"))))
            changes.append(Change("新期限", codes.show("to", details["to"]) + ("（暂定）" if details.get("provisional")
                                                                            else "")))
        what = labels.action(ev.action)
        if ev.spec_id:
            what = f"{what}：{next((c for c in completed[:1]), None) or ev.spec_id}"
        out.append(TimelineEntry(ev.seq or 0, ev.at, ev.actor, ev.action, what, [str(c) for c in completed if c],
                                 changes, [n for n in notes if n], details.get("reason")))
    return out


def diagram_markers(engine: ProcessEngine, instance: InstanceView, events: list[StepEvent],
                    now: datetime) -> dict[str, list[str]]:
    """Element ids to mark on the diagram: completed (from the history), active (open tasks, waiting timers),
    overdue (open tasks past due, and fired deadline timers)."""
    completed: list[str] = []
    for ev in events:
        for c in ev.completed:
            if c.element and c.element not in completed:
                completed.append(c.element)
    active: list[str] = []
    overdue: list[str] = []
    for t in engine.tasks.of_instances([instance.id]).get(instance.id, []):
        active.append(t.spec_id)
        if t.due_at is not None and t.due_at < now:
            overdue.append(t.spec_id)
    for timer in engine.management.timers(instance.id):
        if timer.status == "waiting":
            active.append(timer.spec_id)
        elif timer.status == "fired":
            overdue.append(timer.spec_id)
    return {"completed": [c for c in completed if c not in active], "active": sorted(set(active)),
            "overdue": sorted(set(overdue))}


def attachments_of(session: Session, instance_id: int) -> list[Attachment]:
    return list(session.scalars(select(Attachment).where(Attachment.instance_id == instance_id)
                                .order_by(Attachment.uploaded_at, Attachment.id)))


def users_for_reassign(session: Session, groups: list[str] | tuple[str, ...]) -> list[tuple[str, str]]:
    """(username, display name) of active users holding one of ``groups`` — a supervisor's choice list."""
    if not groups:
        return []
    rows = session.execute(select(User.username, User.display_name).join(UserRole, UserRole.user_id == User.id)
                           .where(UserRole.role.in_(list(groups)), User.active.is_(True)).distinct()
                           .order_by(User.username)).all()
    return [(u, d or u) for u, d in rows]
