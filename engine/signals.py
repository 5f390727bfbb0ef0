"""Signal waits (Camunda's event subscriptions): a row per catch event waiting for a signal.

:func:`sync` runs at the end of every step, as :func:`engine.jobs.sync_timers` does: the step compares the
signal waits of the workflow as it found it (which the rows mirror) with the workflow now and writes only the
difference, in SQL Core. :func:`waiting_instances` is how a broadcast finds its cases: one index range
(``ix_signal_wait_name``), a page at a time in instance order.
"""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import SignalEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from sqlalchemy import Table, bindparam, delete, insert, select
from sqlalchemy.orm import Session

from .models import SignalWait
from .sql import Prepared

_wait: Table = SignalWait.__table__  # type: ignore[assignment]  # a Table, typed as FromClause
_INSERT = Prepared(insert(_wait))
_DELETE = Prepared(delete(_wait).where(_wait.c.instance_id == bindparam("iid"), _wait.c.task_guid == bindparam("guid"),
                                       _wait.c.name == bindparam("sig")))
_ROWS = select(_wait.c.task_guid, _wait.c.name).where(_wait.c.instance_id == bindparam("iid"))
_WAITING = (select(_wait.c.instance_id).where(_wait.c.name == bindparam("sig"), _wait.c.instance_id > bindparam("after"))
            .group_by(_wait.c.instance_id).order_by(_wait.c.instance_id).limit(bindparam("n")))

Waits = set[tuple[str, str]]


def signal_names(task_spec: Any) -> list[str]:
    definition = getattr(task_spec, "event_definition", None)
    found = definition.event_definitions if isinstance(definition, MultipleEventDefinition) else [definition]
    return [d.name for d in found if isinstance(d, SignalEventDefinition)]


def waits(workflow: Any) -> Waits:
    """``(task guid, signal name)`` of every event of the workflow waiting for a signal: what the rows mirror."""
    return {(str(task.id), name) for task in workflow.event_manager.tasks.values()
            for name in signal_names(task.task_spec)}


def sync(session: Session, instance_id: int, before: Waits, workflow: Any) -> None:
    after = waits(workflow)
    gone, new = before - after, after - before
    if gone:
        _DELETE.execute(session, [{"iid": instance_id, "guid": g, "sig": n} for g, n in sorted(gone)])
    if new:
        _INSERT.execute(session, [{"instance_id": instance_id, "task_guid": g, "name": n} for g, n in sorted(new)])


def check_rows(session: Session, instance_id: int, expected: Waits) -> None:
    """Verify mode: the rows are exactly the workflow's signal waits. Raises AssertionError."""
    rows = {(r.task_guid, r.name) for r in session.connection().execute(_ROWS, {"iid": instance_id})}
    if rows != expected:
        raise AssertionError(f"signal_wait rows of instance {instance_id} do not mirror its waiting signal events: "
                             f"rows {sorted(rows)}, workflow {sorted(expected)}")


def waiting_instances(session: Session, name: str, after: int = 0, limit: int = 100) -> list[int]:
    """Instances (ids above ``after``, in order, at most ``limit``) with an event waiting for the signal ``name``."""
    return list(session.connection().scalars(_WAITING, {"sig": name, "after": after, "n": limit}))
