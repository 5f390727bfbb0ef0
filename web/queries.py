"""Read-only queries behind the pages: cases, the inbox, deadlines, forms, the timeline and diagram markers.

Views stay thin: they check permissions (``web.auth``) and render what these functions return. Nothing here
writes case state — every change of a case goes through ``engine.runtime``.

A case's business view comes from its ``enterprise_case`` ledger row when the diagram registered one, else
from the instance's case data (a diagram without the ledger step still shows up, with what it has).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.calendar import WorkdayCalendar
from engine.clock import SHANGHAI, to_utc
from engine.forms import FieldDef, form_fields
from engine.history import events_for
from engine.models import Deployment, HumanTask, Instance, Timer
from engine.repository import load_specs
from engine.tasks import split_groups
from handlers.models import CaseUnit, Category, Channel, EnterpriseCase, OrgUnit

from . import labels
from .auth import CurrentUser
from .models import Attachment
from .scope import CaseScope, may_see_case


# --- deadlines -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Deadline:
    """A due instant as a clerk reads it: working days left and a traffic light."""

    due_at: datetime | None
    provisional: bool
    light: str  # green | yellow | red | none
    days_left: int | None  # working days from today to the due day; negative when overdue

    @property
    def text(self) -> str:
        if self.due_at is None:
            return "无期限"
        if self.light == "red":
            late = -self.days_left if self.days_left is not None and self.days_left < 0 else 0
            return f"已逾期（{late} 个工作日）" if late else "已逾期"
        if self.days_left == 0:
            return "今日到期"
        return f"剩余 {self.days_left} 个工作日"


def deadline(calendar: WorkdayCalendar, now: datetime, due_at: datetime | None, provisional: bool = False) -> Deadline:
    """Green; yellow when the due day is today or the next working day; red once the instant has passed."""
    if due_at is None:
        return Deadline(None, False, "none", None)
    due = to_utc(due_at)
    today = now.astimezone(SHANGHAI).date()
    days_left = calendar.working_days_between(today, due.astimezone(SHANGHAI).date())
    if due < now:
        light = "red"
    elif days_left <= 1:
        light = "yellow"
    else:
        light = "green"
    return Deadline(due, bool(provisional), light, days_left)


# --- cases ---------------------------------------------------------------------------------------------
@dataclass
class CaseSummary:
    instance: Instance
    process_key: str
    process_name: str | None
    data: dict[str, Any]
    scope: CaseScope
    ledger: EnterpriseCase | None = None
    unit_name: str | None = None
    category_name: str | None = None
    channel_name: str | None = None
    involved: list[tuple[str, str, str]] = field(default_factory=list)  # (unit code, unit name, role)

    @property
    def business_key(self) -> str:
        return self.instance.business_key

    @property
    def category(self) -> str | None:
        return (self.ledger.category if self.ledger else None) or self.data.get("category")

    @property
    def channel(self) -> str | None:
        return (self.ledger.channel if self.ledger else None) or self.data.get("channel")

    @property
    def title(self) -> str:
        value = (self.ledger.title if self.ledger else None) or self.data.get("title") or \
            self.data.get("description") or ""
        return str(value)

    @property
    def enterprise_name(self) -> str:
        return str((self.ledger.enterprise_name if self.ledger else None) or self.data.get("enterprise_name")
                   or self.data.get("enterprise") or "")

    def value(self, name: str) -> Any:
        """A business field: the ledger row's column when there is one, else the case data."""
        if self.ledger is not None and hasattr(EnterpriseCase, name):
            got = getattr(self.ledger, name)
            if got is not None:
                return got
        return self.data.get(name)


def case_summaries(session: Session, instance_ids: list[int]) -> dict[int, CaseSummary]:
    """Summaries of many cases in a few queries (the inbox shows one per task)."""
    ids = sorted(set(instance_ids))
    if not ids:
        return {}
    rows = session.execute(select(Instance, Deployment.process_key, Deployment.name)
                           .join(Deployment, Deployment.id == Instance.deployment_id)
                           .where(Instance.id.in_(ids))).all()
    ledgers = {c.instance_id: c for c in session.scalars(select(EnterpriseCase)
                                                         .where(EnterpriseCase.instance_id.in_(ids)))}
    involved: dict[int, list[tuple[str, str]]] = {}
    if ledgers:
        by_case = {c.id: c.instance_id for c in ledgers.values()}
        for cu in session.scalars(select(CaseUnit).where(CaseUnit.case_id.in_(list(by_case)))
                                  .order_by(CaseUnit.id)):
            involved.setdefault(by_case[cu.case_id], []).append((cu.unit_code, cu.role))
    units = dict(session.execute(select(OrgUnit.code, OrgUnit.short_name)).all())
    unit_names = {code: short or "" for code, short in units.items()}
    unit_names.update({c: n for c, n in session.execute(select(OrgUnit.code, OrgUnit.name)).all()
                       if not unit_names.get(c)})
    categories = dict(session.execute(select(Category.code, Category.name)).all())
    channels = dict(session.execute(select(Channel.code, Channel.name)).all())
    out: dict[int, CaseSummary] = {}
    for instance, process_key, process_name in rows:
        data = json.loads(instance.data_json or "{}")
        ledger = ledgers.get(instance.id)
        unit = (ledger.unit if ledger else None) or _text(data.get("unit"))
        region = (ledger.region if ledger else None) or _text(data.get("region"))
        inv = involved.get(instance.id, [])
        scope = CaseScope(instance.business_key, instance.id, unit, region, frozenset(c for c, _ in inv))
        summary = CaseSummary(instance, process_key, process_name, data, scope, ledger,
                              unit_name=unit_names.get(unit or "", unit))
        summary.category_name = categories.get(summary.category or "", summary.category)
        summary.channel_name = channels.get(summary.channel or "", summary.channel)
        summary.involved = [(c, unit_names.get(c, c), r) for c, r in inv]
        out[instance.id] = summary
    return out


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def case_by_key(session: Session, business_key: str) -> CaseSummary | None:
    instance_id = session.scalar(select(Instance.id).where(Instance.business_key == business_key))
    if instance_id is None:
        return None
    return case_summaries(session, [instance_id])[instance_id]


# --- the inbox -----------------------------------------------------------------------------------------
@dataclass
class InboxFilters:
    scope: str = "mine"  # mine: my tasks and my groups' tasks; all: every open task I may see (supervisors)
    process: str = ""
    unit: str = ""
    category: str = ""
    channel: str = ""
    status: str = ""  # "" | mine | unclaimed | claimed | overdue | due_soon

    @classmethod
    def from_args(cls, args: Any) -> InboxFilters:
        def get(name: str) -> str:
            return str(args.get(name, "") or "").strip()[:100]

        status = get("status")
        return cls(scope="all" if get("scope") == "all" else "mine", process=get("process"), unit=get("unit"),
                   category=get("category"), channel=get("channel"),
                   status=status if status in labels.TASK_STATUS else "")


@dataclass
class InboxRow:
    task: HumanTask
    case: CaseSummary
    groups: list[str]
    deadline: Deadline


@dataclass
class Page:
    rows: list[InboxRow]
    page: int
    pages: int
    total: int


def task_offered_to(user: CurrentUser, task: HumanTask) -> bool:
    """Assigned to the user, or unassigned and offered to one of the user's roles."""
    if task.assignee:
        return task.assignee == user.username
    return user.holds_any(split_groups(task.candidate_groups))


def may_work_on(user: CurrentUser, task: HumanTask, case: CaseSummary) -> bool:
    """Claim or complete: the task is offered to the user (or theirs) and the user may see the case."""
    if not may_see_case(user, case.scope):
        return False
    if task.assignee:
        return task.assignee == user.username
    return user.holds_any(split_groups(task.candidate_groups))


def inbox(session: Session, user: CurrentUser, filters: InboxFilters, calendar: WorkdayCalendar, now: datetime,
          page: int = 1, page_size: int = 20) -> Page:
    """Open tasks the user may work on (or, for a supervisor asking for ``all``, every task of a visible case),
    due first. Filtering on case fields happens here on the summaries (JSON case data is not queryable on
    both databases alike); the row count of open tasks is what a service centre has in hand, not its past."""
    query = (select(HumanTask).join(Instance, Instance.id == HumanTask.instance_id)
             .join(Deployment, Deployment.id == Instance.deployment_id)
             .where(Instance.status == "running")
             .order_by(HumanTask.due_at.is_(None), HumanTask.due_at, HumanTask.id))
    if filters.process:
        query = query.where(Deployment.process_key == filters.process)
    if filters.status == "mine":
        query = query.where(HumanTask.assignee == user.username)
    elif filters.status == "unclaimed":
        query = query.where(HumanTask.assignee.is_(None))
    elif filters.status == "claimed":
        query = query.where(HumanTask.assignee.is_not(None))
    elif filters.status == "overdue":
        query = query.where(HumanTask.due_at < now)
    everything = filters.scope == "all" and user.is_supervisor
    tasks = [t for t in session.scalars(query) if everything or task_offered_to(user, t)]
    cases = case_summaries(session, [t.instance_id for t in tasks])
    rows: list[InboxRow] = []
    for t in tasks:
        case = cases[t.instance_id]
        if not may_see_case(user, case.scope):
            continue
        if filters.unit and filters.unit != case.scope.unit and filters.unit not in case.scope.involved_units:
            continue
        if filters.category and filters.category != case.category:
            continue
        if filters.channel and filters.channel != case.channel:
            continue
        dl = deadline(calendar, now, t.due_at, t.due_provisional)
        if filters.status == "due_soon" and dl.light != "yellow":
            continue
        rows.append(InboxRow(t, case, split_groups(t.candidate_groups), dl))
    pages = max(1, -(-len(rows) // page_size))
    page = min(max(1, page), pages)
    return Page(rows[(page - 1) * page_size: page * page_size], page, pages, len(rows))


@dataclass
class FilterChoices:
    processes: list[tuple[str, str]]
    units: list[tuple[str, str]]
    categories: list[tuple[str, str]]
    channels: list[tuple[str, str]]


def filter_choices(session: Session, user: CurrentUser) -> FilterChoices:
    """Options of the inbox filters, limited to the user's region where the reference data has one."""
    processes = session.execute(select(Deployment.process_key, Deployment.name)
                                .order_by(Deployment.process_key, Deployment.version.desc())).all()
    seen: dict[str, str] = {}
    for key, name in processes:
        seen.setdefault(key, name or key)
    unit_q = select(OrgUnit.code, OrgUnit.name).where(OrgUnit.active.is_(True)).order_by(OrgUnit.sort, OrgUnit.code)
    channel_q = select(Channel.code, Channel.name).order_by(Channel.sort, Channel.code)
    if user.region:
        unit_q = unit_q.where(OrgUnit.region == user.region)
        channel_q = channel_q.where(Channel.region == user.region)
    category_q = select(Category.code, Category.name, Category.parent_code).order_by(Category.sort, Category.code)
    categories = [(c, f"— {n}" if parent else n) for c, n, parent in session.execute(category_q).all()]
    return FilterChoices(sorted(seen.items()), [tuple(r) for r in session.execute(unit_q).all()], categories,
                         [tuple(r) for r in session.execute(channel_q).all()])


# --- tasks and their forms -----------------------------------------------------------------------------
def open_task(session: Session, task_guid: str) -> HumanTask | None:
    return session.scalar(select(HumanTask).where(HumanTask.task_guid == task_guid))


def _task_specs(session: Session, instance: Instance) -> list[Any]:
    deployment = session.get(Deployment, instance.deployment_id)
    spec, subs = load_specs(deployment)
    out = list(spec.task_specs.values())
    for sub in subs.values():
        out.extend(sub.task_specs.values())
    return out


def task_spec(session: Session, task: HumanTask) -> Any | None:
    instance = session.get(Instance, task.instance_id)
    for spec in _task_specs(session, instance):
        if getattr(spec, "bpmn_id", None) == task.spec_id:
            return spec
    return None


def task_form_fields(session: Session, task: HumanTask) -> list[FieldDef]:
    """The form the diagram defines for this user task (``camunda:formData``); empty for a plain task."""
    spec = task_spec(session, task)
    return form_fields(spec) if spec is not None else []


def field_labels(session: Session, instance: Instance) -> dict[str, str]:
    """Labels of every form field of the case's diagram, then the domain's variable names as fallback."""
    out = dict(labels.VARIABLES)
    for spec in _task_specs(session, instance):
        for fd in form_fields(spec) if getattr(spec, "form", None) is not None else []:
            if fd.label:
                out[fd.id] = fd.label
    return out


# --- the case page -------------------------------------------------------------------------------------
@dataclass
class OpenDeadline:
    kind: str  # task | timer
    name: str
    element: str
    assignee: str | None
    deadline: Deadline


def case_deadlines(session: Session, instance_id: int, calendar: WorkdayCalendar, now: datetime) -> list[OpenDeadline]:
    """Open tasks and waiting timers of the case, each with its working days left."""
    out: list[OpenDeadline] = []
    for t in session.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id).order_by(HumanTask.id)):
        out.append(OpenDeadline("task", t.name or t.spec_id, t.spec_id, t.assignee,
                                deadline(calendar, now, t.due_at, t.due_provisional)))
    instance = session.get(Instance, instance_id)
    names = {getattr(s, "bpmn_id", None): getattr(s, "bpmn_name", None) for s in _task_specs(session, instance)}
    for timer in session.scalars(select(Timer).where(Timer.instance_id == instance_id, Timer.status == "waiting")
                                 .order_by(Timer.due_at)):
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


_UNIT_VARIABLES = frozenset({"unit", "handling_unit", "joint_units", "units", "escalated_to"})


@dataclass
class CodeNames:
    """Names for the codes case data holds (units, channels, categories), so the timeline reads as Chinese."""

    units: dict[str, str]
    channels: dict[str, str]
    categories: dict[str, str]

    @classmethod
    def load(cls, session: Session) -> CodeNames:
        return cls(dict(session.execute(select(OrgUnit.code, OrgUnit.name)).all()),
                   dict(session.execute(select(Channel.code, Channel.name)).all()),
                   dict(session.execute(select(Category.code, Category.name)).all()))

    def show(self, key: str, value: Any) -> str:
        if isinstance(value, bool):
            return "是" if value else "否"
        if value is None:
            return ""
        if key in _UNIT_VARIABLES:
            items = value if isinstance(value, list) else [value]
            return "、".join(self.units.get(str(v), str(v)) for v in items)
        if key == "channel":
            return self.channels.get(str(value), str(value))
        if key == "category":
            return self.categories.get(str(value), str(value))
        if key == "region":
            return labels.REGIONS.get(str(value), str(value))
        if key == "ledger_status":
            return labels.LEDGER.get(str(value), str(value))
        if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] == "T":
            try:
                return to_utc(value).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
            except ValueError:
                return value
        if isinstance(value, (list, dict)):
            return json.dumps(value, ensure_ascii=False)
        return str(value)


def timeline(session: Session, instance: Instance) -> list[TimelineEntry]:
    """The case history in Chinese: who, what, when, which data changed. Contact numbers always masked here:
    the full value is shown only in the contact block, where each view is recorded."""
    names = field_labels(session, instance)
    codes = CodeNames.load(session)
    out: list[TimelineEntry] = []
    for ev in events_for(session, instance.id):
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
        out.append(TimelineEntry(ev.seq, ev.at, ev.actor, ev.action, what, [str(c) for c in completed if c],
                                 changes, [n for n in notes if n], details.get("reason")))
    return out


def diagram_markers(session: Session, instance: Instance, now: datetime) -> dict[str, list[str]]:
    """Element ids to mark on the diagram: completed (from the history), active (open tasks, waiting
    timers), overdue (open tasks past due, and fired deadline timers)."""
    completed: list[str] = []
    for ev in events_for(session, instance.id):
        for c in ev.completed:
            if c.element and c.element not in completed:
                completed.append(c.element)
    active: list[str] = []
    overdue: list[str] = []
    for t in session.scalars(select(HumanTask).where(HumanTask.instance_id == instance.id)):
        active.append(t.spec_id)
        if t.due_at is not None and to_utc(t.due_at) < now:
            overdue.append(t.spec_id)
    for timer in session.scalars(select(Timer).where(Timer.instance_id == instance.id)):
        if timer.status == "waiting":
            active.append(timer.spec_id)
        elif timer.status == "fired":
            overdue.append(timer.spec_id)
    return {"completed": [c for c in completed if c not in active], "active": sorted(set(active)),
            "overdue": sorted(set(overdue))}


def deployment_xml(session: Session, instance: Instance) -> str:
    deployment = session.get(Deployment, instance.deployment_id)
    return deployment.xml


def attachments_of(session: Session, instance_id: int) -> list[Attachment]:
    return list(session.scalars(select(Attachment).where(Attachment.instance_id == instance_id)
                                .order_by(Attachment.uploaded_at, Attachment.id)))


def users_for_reassign(session: Session, groups: list[str]) -> list[tuple[str, str]]:
    """(username, display name) of active users holding one of ``groups`` — a supervisor's choice list."""
    from .models import User, UserRole

    if not groups:
        return []
    rows = session.execute(select(User.username, User.display_name).join(UserRole, UserRole.user_id == User.id)
                           .where(UserRole.role.in_(groups), User.active.is_(True)).distinct()
                           .order_by(User.username)).all()
    return [(u, d or u) for u, d in rows]
