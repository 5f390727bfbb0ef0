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

from ..labels import CaseLabels
from ..models import Attachment, User, UserRole
from .deadlines import Deadline, deadline
from .history import TimelineEntry
from .history import timeline as history_timeline


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


def timeline(engine: ProcessEngine, session: Session, instance: InstanceView,
             events: list[StepEvent]) -> list[TimelineEntry]:
    """The case history in Chinese (办理记录), each line with its raw event: :func:`web.read.history.timeline`
    worded by :class:`web.labels.CaseLabels`. Contact numbers are always masked there: the full value is shown
    only in the contact block, where each view is recorded with its reason."""
    return history_timeline(CaseLabels.load(engine, session, instance.deployment_id), events)


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
