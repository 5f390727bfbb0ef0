"""Human tasks (Camunda's TaskService): find open tasks — paged, by groups, assignee and the caller's scope —
and claim, give back or reassign them.

A claim changes no workflow state, but it is a step all the same (:meth:`engine.step.Stepper.record`): the
instance's version moves on under the same optimistic-concurrency rule as any step, and the history says who
held the task when (AU-1). The rows themselves are written by :mod:`engine.task_rows`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, exists, func, select, update
from sqlalchemy.orm import Session

from . import history, instance_rows
from .db import Database
from .errors import ConflictError, NotFoundError
from .models import Deployment, HistoricTask, HumanTask, Instance, TaskCandidate
from .step import Stepper
from .task_rows import split_groups

_human_task = cast(Table, HumanTask.__table__)  # SQLAlchemy types __table__ as FromClause; it is a Table
_candidate = TaskCandidate.__table__
# The open task's instance column as the task queries name it: a caller's ``instances`` subquery that compares
# with it is evaluated per task (one index probe) instead of being built as a list first.
TASK_INSTANCE_ID = _human_task.c.instance_id


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
    instances: Any = None  # a Select of instance ids; it may correlate with the task through TASK_INSTANCE_ID
    process_key: str | None = None
    claimed: bool | None = None  # True: assigned to someone; False: unassigned
    due_before: datetime | None = None
    due_after: datetime | None = None  # inclusive
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
    offered: ColumnElement[bool] | None = None
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
    if q.due_after is not None:
        out.append(ht.c.due_at >= q.due_after)
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
    # Every task has its instance and deployment (foreign keys, not null): the count and the choice of the
    # page's tasks join them only when a filter reads them, so neither reads an instance row; the page's
    # tasks are then read with their instance and deployment.
    source = _from() if q.process_key else _human_task
    total = conn.scalar(select(func.count()).select_from(source).where(*where)) or 0
    pages = max(1, -(-total // page_size))
    page = min(max(1, page), pages)
    order = (_human_task.c.due_at.is_(None), _human_task.c.due_at, _human_task.c.id)
    chosen = (select(_human_task.c.id).select_from(source).where(*where).order_by(*order)
              .limit(page_size).offset((page - 1) * page_size))
    stmt = select(*_OPEN_COLUMNS).select_from(_from()).where(_human_task.c.id.in_(chosen)).order_by(*order)
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


_ASSIGNED = {"claim": "task_claimed", "unclaim": "task_unclaimed", "reassign": "task_reassigned"}


class TaskService:
    def __init__(self, db: Database, stepper: Stepper) -> None:
        self.db = db
        self.stepper = stepper

    # -- finding ----------------------------------------------------------------------------------------
    @staticmethod
    def view() -> Any:
        """The open tasks as a read model another query may join (``open_task``: instance_id, task_guid, spec_id,
        name, assignee, due_at)."""
        ht = _human_task
        return select(ht.c.instance_id, ht.c.task_guid, ht.c.spec_id, ht.c.name, ht.c.assignee,
                      ht.c.due_at).subquery("open_task")

    def query(self, q: TaskQuery, *, page: int = 1, page_size: int = 50) -> TaskPage:
        """One page of the open tasks ``q`` selects (see :func:`query_tasks`)."""
        with self.db.read() as session:
            return query_tasks(session, q, page=page, page_size=page_size)

    def get(self, task_guid: str) -> OpenTask | None:
        """An open task by id, or None (completed, cancelled, or never existed)."""
        with self.db.read() as session:
            return open_task(session, task_guid)

    def instance_of(self, task_guid: str) -> int | None:
        """The instance a user task belongs to, open or closed (None for an id no task ever had): an indexed
        lookup, so a closed task's link still leads to its case."""
        with self.db.read() as session:
            return session.scalar(select(HistoricTask.instance_id).where(HistoricTask.task_guid == task_guid))

    def of_instances(self, instance_ids: list[int]) -> dict[int, list[OpenTask]]:
        """The open tasks of a page of instances."""
        with self.db.read() as session:
            return tasks_of_instances(session, instance_ids)

    def completed_by(self, user: str, *, instances: Any = None, page: int = 1,
                     page_size: int = 50) -> tuple[list[HistoricTask], int]:
        """The tasks ``user`` completed, newest first, and how many in all (a clerk's 已办); ``instances``, a
        subquery of instance ids (the caller's scope), narrows both in the same statement."""
        where = [HistoricTask.completed_by == user]
        if instances is not None:
            where.append(HistoricTask.instance_id.in_(instances))
        with self.db.read() as session:
            total = session.scalar(select(func.count()).select_from(HistoricTask).where(*where)) or 0
            pages = max(1, -(-total // page_size))
            rows = list(session.scalars(select(HistoricTask).where(*where)
                                        .order_by(HistoricTask.ended_at.desc(), HistoricTask.id.desc())
                                        .limit(page_size).offset((min(max(1, page), pages) - 1) * page_size)))
            session.expunge_all()
        return rows, total

    # -- claiming ---------------------------------------------------------------------------------------
    def claim(self, task_guid: str, user: str, *, actor: str | None = None) -> None:
        """``user`` takes an unassigned task (a compare-and-set: two clerks cannot both claim it)."""
        self._assign(task_guid, "claim", user, actor or user)

    def unclaim(self, task_guid: str, user: str, *, actor: str | None = None) -> None:
        """``user`` gives their own task back to its groups."""
        self._assign(task_guid, "unclaim", user, actor or user)

    def reassign(self, task_guid: str, user: str | None, *, actor: str | None) -> None:
        """A supervisor gives the task to ``user`` (or back to the groups with None)."""
        self._assign(task_guid, "reassign", user, actor)

    def _assign(self, task_guid: str, action: str, user: str | None, actor: str | None) -> None:
        with self.stepper.transaction() as session:
            found = instance_rows.read_for_task(session, task_guid)
            if found is None:
                raise NotFoundError(f"任务不存在或已办结: {task_guid}")
            instance, before = found
            if action == "claim":
                if before == user:
                    return  # claiming one's own task again: nothing to record
                if before is not None:
                    raise ConflictError(f"任务已被 {before} 认领")
                after = user
            elif action == "unclaim":
                if before != user:
                    raise ConflictError("只能退回自己认领的任务")
                after = None
            else:
                if before == user:
                    return
                after = user
            changed = session.connection().execute(
                update(_human_task).where(_human_task.c.task_guid == task_guid,
                                          _human_task.c.assignee.is_(before) if before is None
                                          else _human_task.c.assignee == before).values(assignee=after))
            if changed.rowcount != 1:
                raise ConflictError(instance_rows.CONFLICT)
            spec_id = session.scalar(select(HumanTask.spec_id).where(HumanTask.task_guid == task_guid))
            self.stepper.record(session, instance, history.StepEvent(
                _ASSIGNED[action], self.stepper.clock.now(), actor, task_guid, spec_id,
                details={"assignee": after, "previous": before}))
