"""The task rows a step writes: open user tasks (``human_task``), their candidate groups and their history.

:func:`sync_open_tasks` runs at the end of every step (called by :mod:`engine.step`): a READY user task
without a row gets one (candidate groups from ``camunda:candidateGroups`` — an ``${…}`` expression may pick
the group from case data — else the lane; due from ``camunda:dueDate`` or the earliest timer attached to the
task), with its ``task_candidate`` rows and a ``historic_task`` row; rows of tasks that are no longer READY
are deleted and their historic row closed (completed, by whom, or cancelled).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from SpiffWorkflow.util.task import TaskState
from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from .bpmn import camunda_expression, timer_definition
from .clock import to_utc
from .models import HistoricTask, HumanTask, TaskCandidate
from .sql import Prepared, instant

_human_task = cast(Table, HumanTask.__table__)  # SQLAlchemy types __table__ as FromClause; it is a Table
_historic = cast(Table, HistoricTask.__table__)
_candidate = cast(Table, TaskCandidate.__table__)
# Statements of every step, compiled once and run on the DBAPI cursor (engine.sql).
_GUIDS = Prepared(select(_human_task.c.task_guid).where(_human_task.c.instance_id == bindparam("instance_id")))
_DELETE = Prepared(delete(_human_task).where(_human_task.c.task_guid == bindparam("guid")))
_INSERT = Prepared(insert(_human_task))
_INSERT_CANDIDATES = Prepared(insert(_candidate))
_INSERT_HISTORIC = Prepared(insert(_historic))
_CLOSE_HISTORIC = Prepared(update(_historic).where(_historic.c.task_guid == bindparam("guid"))
                           .values(ended_at=bindparam("ended"), outcome=bindparam("outcome"),
                                   completed_by=bindparam("by")))
_HISTORIC_COLUMNS = ("instance_id", "task_guid", "spec_id", "name", "candidate_groups", "due_at", "created_at")
_SET_DUE = Prepared(update(_human_task).where(_human_task.c.task_guid == bindparam("guid"))
                    .values(due_at=bindparam("due"), due_provisional=bindparam("prov")))
_EARLIEST = Prepared(select(func.min(_human_task.c.due_at))
                     .where(_human_task.c.instance_id == bindparam("instance_id")))
_DUE = "qifu_due"  # a task's due instant as its row has it, kept on the task too: the step needs no query


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
    """Earliest due instant among waiting date/duration timers attached (as boundary events) to ``task`` or to
    a subprocess it lies in (a limit drawn around several tasks is each one's deadline)."""
    parent = task.parent
    best, provisional = None, False
    sub = task.workflow
    if getattr(sub, "parent_task_id", None) is not None:  # inside an embedded subprocess
        owner = sub.top_workflow.get_task_from_id(sub.parent_task_id)
        if owner is not None:
            best, provisional = attached_timer_due(owner)
    if parent is None:
        return best, provisional
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
    rows = set(_GUIDS.scalars(session, {"instance_id": instance_id}))
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
    (newly opened tasks, guids of closed rows) for the history event. Only what changed is written, and
    directly on the cursor: this runs in every step (see :mod:`engine.sql`).
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
        task._set_internal_data(**{_DUE: due.isoformat() if due else ""})
        groups = split_groups(_attribute(task, "candidateGroups", evaluate)) or split_groups(task.task_spec.lane)
        assignee = _attribute(task, "assignee", evaluate)
        rows.append({"instance_id": instance_id, "task_guid": guid,
                     "spec_id": task.task_spec.bpmn_id or task.task_spec.name, "name": task.task_spec.bpmn_name,
                     "lane": task.task_spec.lane, "candidate_groups": ",".join(groups),
                     "assignee": str(assignee) if assignee else None, "due_at": due,
                     "due_provisional": provisional, "created_at": now})
        opened.append(task)
    if closed:
        _DELETE.execute(session, [{"guid": guid} for guid in closed])
        _CLOSE_HISTORIC.execute(session, [{"guid": guid, "ended": now, "outcome": "completed" if guid in completed
                                           else "cancelled", "by": actor if guid in completed else None}
                                          for guid in closed])
    if rows:
        _INSERT.execute(session, rows)
        links = [{"task_guid": r["task_guid"], "group_name": g}
                 for r in rows for g in dict.fromkeys(split_groups(r["candidate_groups"]))]
        if links:
            _INSERT_CANDIDATES.execute(session, links)
        _INSERT_HISTORIC.execute(session, [{c: r[c] for c in _HISTORIC_COLUMNS} for r in rows])
    return opened, closed


def earliest_due(session: Session, instance_id: int, ready: list[Any]) -> datetime | None:
    """The earliest due instant of the instance's open tasks (what the instance row keeps for lists), from
    the tasks themselves; only tasks opened before they kept their due make it ask the rows."""
    dues = []
    for task in ready:
        value = task._get_internal_data(_DUE)
        if value is None:
            return instant(_EARLIEST.scalars(session, {"instance_id": instance_id})[0])
        if value:
            dues.append(to_utc(value))
    return min(dues, default=None)


def refresh_due(session: Session, ready: list[Any]) -> None:
    """Recompute due dates of open rows from their attached timers (after a timer was rescheduled)."""
    changes = []
    for task in ready:
        if (getattr(task.task_spec, "extensions", None) or {}).get("dueDate"):
            continue
        due, provisional = attached_timer_due(task)
        task._set_internal_data(**{_DUE: due.isoformat() if due else ""})
        changes.append({"guid": str(task.id), "due": due, "prov": provisional})
    if changes:
        _SET_DUE.execute(session, changes)
