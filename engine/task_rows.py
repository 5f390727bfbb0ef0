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
from typing import Any
from uuid import UUID

from SpiffWorkflow.util.task import TaskState
from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from .bpmn import camunda_expression, timer_definition
from .clock import to_utc
from .models import HistoricTask, HumanTask, TaskCandidate

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


_EARLIEST = select(func.min(_human_task.c.due_at)).where(_human_task.c.instance_id == bindparam("instance_id"))


def earliest_due(session: Session, instance_id: int) -> datetime | None:
    """The earliest due instant of the instance's open tasks (what the instance row keeps for lists)."""
    return session.connection().scalar(_EARLIEST, {"instance_id": instance_id})


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
