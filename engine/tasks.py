"""Human tasks (Camunda's TaskService): open-task rows derived from READY user tasks, and claiming.

:func:`sync_open_tasks` runs at the end of every step (called by :mod:`engine.runtime`): a READY user task
without a row gets one (candidate groups from ``camunda:candidateGroups`` — an ``${…}`` expression may pick
the group from case data — else the lane; due from ``camunda:dueDate`` or the earliest timer attached to the
task); rows of tasks that are no longer READY are deleted. Claiming changes only the row, never the case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from SpiffWorkflow.util.task import TaskState
from sqlalchemy import bindparam, delete, exists, func, insert, select, update
from sqlalchemy.orm import Session

from .bpmn import camunda_expression, timer_definition
from .clock import to_utc
from .errors import ConflictError, NotFoundError
from .models import Deployment, HistoricTask, HumanTask, Instance, TaskCandidate

_human_task = HumanTask.__table__
_historic = HistoricTask.__table__
_candidate = TaskCandidate.__table__
_INSERT_CANDIDATES = insert(_candidate)
# Statements of every step, built once (building one per call costs more than running it).
_GUIDS = select(_human_task.c.task_guid).where(_human_task.c.instance_id == bindparam("instance_id"))
_DELETE = delete(_human_task).where(_human_task.c.task_guid == bindparam("guid"))
_INSERT = insert(_human_task)
_INSERT_HISTORIC = insert(_historic)
_CLOSE_HISTORIC = (update(_historic).where(_historic.c.task_guid == bindparam("guid"))
                   .values(ended_at=bindparam("ended"), outcome=bindparam("outcome"), completed_by=bindparam("by")))
_HISTORIC_COLUMNS = ("instance_id", "task_guid", "spec_id", "name", "candidate_groups", "due_at", "created_at")
_SET_DUE = (update(_human_task).where(_human_task.c.task_guid == bindparam("guid"))
            .values(due_at=bindparam("due"), due_provisional=bindparam("prov")))


def split_groups(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple, set)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [g.strip() for g in str(value).split(",") if g.strip()]


def _attribute(task: Any, name: str, evaluate: Callable[[Any, str], Any]) -> Any:
    value = (getattr(task.task_spec, "extensions", None) or {}).get(name)
    if value and value.strip().startswith("${"):
        return evaluate(task, camunda_expression(value))
    return value


def attached_timer_due(task: Any) -> tuple[datetime | None, bool]:
    """Earliest due instant among waiting date/duration timers attached (as boundary events) to ``task``."""
    parent = task.parent
    best, provisional = None, False
    if parent is None:
        return None, False
    for sibling in parent.children:
        definition = timer_definition(sibling.task_spec)
        if sibling is task or definition is None or definition.kind == "cycle":
            continue  # a cycle timer is a recurring reminder, not the task's deadline
        value = sibling._get_internal_data("event_value")
        if isinstance(value, dict):
            value = value.get("next")
        if value:
            due = to_utc(value)
            if best is None or due < best:
                best, provisional = due, bool(sibling._get_internal_data("qifu_provisional", False))
    return best, provisional


def ready_user_tasks(workflow: Any) -> list[Any]:
    """READY user tasks in the order of the task tree (depth first), subprocesses included."""
    return [t for t in workflow.get_tasks(state=TaskState.READY) if t.task_spec.manual]


def ready_user_task_ids(workflow: Any) -> set[str]:
    """The guids of :func:`ready_user_tasks`, by a plain scan (no tree walk): what the rows mirror."""
    workflows = [workflow, *getattr(workflow, "subprocesses", {}).values()]
    return {str(t.id) for wf in workflows for t in wf.tasks.values()
            if t.state == TaskState.READY and t.task_spec.manual}


def check_rows(session: Session, instance_id: int, expected: set[str]) -> None:
    """Verify mode: the instance's human_task rows are exactly ``expected`` (raises AssertionError)."""
    rows = set(session.connection().scalars(_GUIDS, {"instance_id": instance_id}))
    if rows != expected:
        raise AssertionError(f"human_task rows of instance {instance_id} do not mirror its READY user tasks: "
                             f"rows {sorted(rows)}, workflow {sorted(expected)}")


def sync_open_tasks(session: Session, instance_id: int, before: set[str], ready: list[Any], now: datetime,
                    evaluate: Callable[[Any, str], Any], *, completed: frozenset[str] = frozenset(),
                    actor: str | None = None) -> tuple[list[Any], list[str]]:
    """Write the step's changes to the instance's human_task rows and their historic_task rows.

    ``before`` holds the guids of the READY user tasks as the step found the workflow, which the rows mirror
    (every step leaves them so, in the same transaction); ``ready`` are the READY user tasks now;
    ``completed`` the guids ``actor`` completed in this step (other closed tasks were cancelled). Returns
    (newly opened tasks, guids of closed rows) for the history event. Only what changed is written, with
    SQL Core: this runs in every step (see :mod:`engine.instance_rows`).
    """
    now_ready = {str(t.id): t for t in ready}
    closed = [guid for guid in before if guid not in now_ready]
    opened, rows = [], []
    for guid, task in now_ready.items():
        if guid in before:
            continue
        due, provisional = attached_timer_due(task)
        due_expr = _attribute(task, "dueDate", evaluate)
        if due_expr:
            due, provisional = to_utc(due_expr), False
        groups = split_groups(_attribute(task, "candidateGroups", evaluate)) or split_groups(task.task_spec.lane)
        assignee = _attribute(task, "assignee", evaluate)
        rows.append({"instance_id": instance_id, "task_guid": guid,
                     "spec_id": task.task_spec.bpmn_id or task.task_spec.name, "name": task.task_spec.bpmn_name,
                     "lane": task.task_spec.lane, "candidate_groups": ",".join(groups),
                     "assignee": str(assignee) if assignee else None, "due_at": due,
                     "due_provisional": provisional, "created_at": now})
        opened.append(task)
    conn = session.connection()
    if closed:
        conn.execute(_DELETE, [{"guid": guid} for guid in closed])
        conn.execute(_CLOSE_HISTORIC, [{"guid": guid, "ended": now, "outcome": "completed" if guid in completed
                                        else "cancelled", "by": actor if guid in completed else None}
                                       for guid in closed])
    if rows:
        conn.execute(_INSERT, rows)
        links = [{"task_guid": r["task_guid"], "group_name": g}
                 for r in rows for g in dict.fromkeys(split_groups(r["candidate_groups"]))]
        if links:
            conn.execute(_INSERT_CANDIDATES, links)
        conn.execute(_INSERT_HISTORIC, [{c: r[c] for c in _HISTORIC_COLUMNS} for r in rows])
    return opened, closed


def refresh_due(session: Session, instance_id: int, workflow: Any) -> None:
    """Recompute due dates of open rows from their attached timers (after a timer was rescheduled)."""
    conn = session.connection()
    changes = []
    for guid in conn.scalars(_GUIDS, {"instance_id": instance_id}):
        task = workflow.get_task_from_id(UUID(guid))
        if task is None or (getattr(task.task_spec, "extensions", None) or {}).get("dueDate"):
            continue
        due, provisional = attached_timer_due(task)
        changes.append({"guid": guid, "due": due, "prov": provisional})
    if changes:
        conn.execute(_SET_DUE, changes)


# --- claiming ------------------------------------------------------------------------------------------
def get_task(session: Session, task_guid: str) -> HumanTask:
    row = session.scalar(select(HumanTask).where(HumanTask.task_guid == task_guid))
    if row is None:
        raise NotFoundError(f"任务不存在或已办结: {task_guid}")
    return row


def instance_of_task(session: Session, task_guid: str) -> int | None:
    """The instance a user task belongs to, open or closed (None for an id no task ever had)."""
    return session.scalar(select(HistoricTask.instance_id).where(HistoricTask.task_guid == task_guid))


def claim(session: Session, task_guid: str, user: str) -> HumanTask:
    """Take an unassigned task; a compare-and-set so two clerks cannot both claim it."""
    row = get_task(session, task_guid)
    if row.assignee == user:
        return row
    result = session.execute(update(HumanTask).where(HumanTask.task_guid == task_guid,
                                                     HumanTask.assignee.is_(None)).values(assignee=user))
    if result.rowcount != 1:
        raise ConflictError(f"任务已被 {row.assignee} 认领")
    session.refresh(row)
    return row


def unclaim(session: Session, task_guid: str, user: str) -> HumanTask:
    row = get_task(session, task_guid)
    if row.assignee != user:
        raise ConflictError("只能退回自己认领的任务")
    row.assignee = None
    return row


def reassign(session: Session, task_guid: str, user: str | None) -> HumanTask:
    """A supervisor's move: give the task to ``user`` (or back to the group with None)."""
    row = get_task(session, task_guid)
    row.assignee = user
    return row


@dataclass(frozen=True)
class OpenTask:
    """An open user task as lists show it (a plain value: no session attached)."""

    task_guid: str
    instance_id: int
    business_key: str
    process_key: str
    spec_id: str
    name: str | None
    lane: str | None
    candidate_groups: tuple[str, ...]
    assignee: str | None
    due_at: datetime | None
    due_provisional: bool
    created_at: datetime


@dataclass(frozen=True)
class TaskQuery:
    """Which open tasks: offered to ``groups`` or assigned to ``assignee`` (both None: every task), narrowed by
    ``instances`` — a subquery of instance ids, the caller's scope and filters, run in the same SQL statement."""

    groups: tuple[str, ...] | None = None
    assignee: str | None = None
    instances: Any = None  # a Select of instance ids
    process_key: str | None = None
    claimed: bool | None = None  # True: assigned to someone; False: unassigned
    due_before: datetime | None = None
    instance_id: int | None = None


@dataclass(frozen=True)
class TaskPage:
    rows: list[OpenTask]
    page: int
    pages: int
    total: int


_OPEN_COLUMNS = (_human_task.c.task_guid, _human_task.c.instance_id, Instance.__table__.c.business_key,
                 Deployment.__table__.c.process_key, _human_task.c.spec_id, _human_task.c.name, _human_task.c.lane,
                 _human_task.c.candidate_groups, _human_task.c.assignee, _human_task.c.due_at,
                 _human_task.c.due_provisional, _human_task.c.created_at)


def _conditions(q: TaskQuery) -> list[Any]:
    ht = _human_task
    out: list[Any] = []
    offered = None
    if q.groups is not None:
        offered = ht.c.assignee.is_(None) & exists(select(_candidate.c.task_guid).where(
            _candidate.c.task_guid == ht.c.task_guid, _candidate.c.group_name.in_(list(q.groups) or [""])))
    if q.assignee is not None:
        mine = ht.c.assignee == q.assignee
        offered = mine if offered is None else (mine | offered)
    if offered is not None:
        out.append(offered)
    if q.instances is not None:
        out.append(ht.c.instance_id.in_(q.instances))
    if q.instance_id is not None:
        out.append(ht.c.instance_id == q.instance_id)
    if q.process_key:
        out.append(Deployment.__table__.c.process_key == q.process_key)
    if q.claimed is True:
        out.append(ht.c.assignee.is_not(None))
    elif q.claimed is False:
        out.append(ht.c.assignee.is_(None))
    if q.due_before is not None:
        out.append(ht.c.due_at < q.due_before)
    return out


def _from() -> Any:
    inst, dep = Instance.__table__, Deployment.__table__
    return (_human_task.join(inst, inst.c.id == _human_task.c.instance_id)
            .join(dep, dep.c.id == inst.c.deployment_id))


def query_tasks(session: Session, q: TaskQuery, *, page: int = 1, page_size: int = 50) -> TaskPage:
    """One page of open tasks, due first (tasks without a due date last), and how many there are in all.

    Filtering, counting and paging happen in the database (indexes: ``task_candidate(group_name)``,
    ``human_task(due_at)``, ``human_task(assignee)``); the row count of the page is bounded by ``page_size``.
    """
    where = _conditions(q)
    conn = session.connection()
    total = conn.scalar(select(func.count()).select_from(_from()).where(*where)) or 0
    pages = max(1, -(-total // page_size))
    page = min(max(1, page), pages)
    stmt = (select(*_OPEN_COLUMNS).select_from(_from()).where(*where)
            .order_by(_human_task.c.due_at.is_(None), _human_task.c.due_at, _human_task.c.id)
            .limit(page_size).offset((page - 1) * page_size))
    rows = [_open_task(r) for r in conn.execute(stmt)]
    return TaskPage(rows, page, pages, total)


def _open_task(r: Any) -> OpenTask:
    return OpenTask(r.task_guid, r.instance_id, r.business_key, r.process_key, r.spec_id, r.name, r.lane,
                    tuple(split_groups(r.candidate_groups)), r.assignee, r.due_at, bool(r.due_provisional),
                    r.created_at)


def open_task(session: Session, task_guid: str) -> OpenTask | None:
    """One open task by its id, or None."""
    row = session.connection().execute(select(*_OPEN_COLUMNS).select_from(_from())
                                       .where(_human_task.c.task_guid == task_guid)).one_or_none()
    return _open_task(row) if row is not None else None


def tasks_of_instances(session: Session, instance_ids: list[int]) -> dict[int, list[OpenTask]]:
    """The open tasks of a page of instances (bounded by the page: one bind parameter per id is fine here)."""
    out: dict[int, list[OpenTask]] = {}
    if not instance_ids:
        return out
    stmt = (select(*_OPEN_COLUMNS).select_from(_from()).where(_human_task.c.instance_id.in_(instance_ids))
            .order_by(_human_task.c.id))
    for r in session.connection().execute(stmt):
        out.setdefault(r.instance_id, []).append(_open_task(r))
    return out


def overdue_instances(now: datetime) -> Any:
    """A subquery of the instances with an open task past its due instant at ``now`` (for SQL filters)."""
    return select(_human_task.c.instance_id).where(_human_task.c.due_at < now)


def open_tasks(session: Session, *, groups: list[str] | None = None, user: str | None = None,
               instance_id: int | None = None) -> list[HumanTask]:
    """Open tasks assigned to ``user`` or offered to any of ``groups`` (all open tasks when both are None)."""
    query = select(HumanTask).order_by(HumanTask.due_at.is_(None), HumanTask.due_at, HumanTask.id)
    if instance_id is not None:
        query = query.where(HumanTask.instance_id == instance_id)
    rows = list(session.scalars(query))
    if groups is None and user is None:
        return rows
    wanted = set(groups or [])
    return [r for r in rows if (user and r.assignee == user)
            or (r.assignee is None and wanted.intersection(split_groups(r.candidate_groups)))]
