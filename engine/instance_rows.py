"""The instance row as a step reads and writes it: plain values and four statements.

A step is the engine's hot path (see :mod:`engine.step`), so it talks to the ``instance`` table with
statements compiled once and run on the DBAPI cursor (:mod:`engine.sql`); readers elsewhere use the services'
read models. The optimistic-concurrency rule: every write moves ``version`` on by one and is guarded by the
version the step read, so a concurrent step's write matches no row and becomes a conflict.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .errors import ConflictError, NotFoundError
from .models import Deployment, HumanTask, Instance
from .repository import DeploymentRef
from .sql import Prepared, instant

_instance = cast(Table, Instance.__table__)  # SQLAlchemy types __table__ as FromClause; it is a Table
_deployment = Deployment.__table__

_READ = (select(_instance.c.id, _instance.c.deployment_id, _deployment.c.content_hash, _instance.c.business_key,
                _instance.c.status, _instance.c.state_json, _instance.c.data_json, _instance.c.version,
                _instance.c.history_seq, _instance.c.history_hash, _instance.c.due_at)
         .join_from(_instance, _deployment, _deployment.c.id == _instance.c.deployment_id))

# Statements are built once: building one per call costs more than running it.
_READ_LOCKED = _READ.where(_instance.c.id == bindparam("id")).with_for_update(of=_instance)
_human_task = HumanTask.__table__
_READ_BY_TASK = (_READ.add_columns(_human_task.c.assignee)
                 .join_from(_instance, _human_task, _human_task.c.instance_id == _instance.c.id)
                 .where(_human_task.c.task_guid == bindparam("guid")).with_for_update(of=_instance))
_ALWAYS = ("state_json", "data_json", "updated_at", "history_seq", "history_hash", "version")
_INDEXED = ("status", "ended_at", "due_at")  # written only when changed: SQLite rewrites an index entry it is told to set
_INSERT = Prepared(insert(_instance).returning(_instance.c.id))
_WRITES: dict[tuple[str, ...], Prepared] = {}


def _write_statement(changed: tuple[str, ...]) -> Prepared:
    found = _WRITES.get(changed)
    if found is None:
        found = _WRITES[changed] = Prepared(
            update(_instance)
            .where(_instance.c.id == bindparam("b_id"), _instance.c.version == bindparam("b_version"))
            .values({name: bindparam(name) for name in _ALWAYS + changed}))
    return found


_READ_ONE = Prepared(_READ_LOCKED)
_READ_BY_KEY = Prepared(_READ.where(_instance.c.business_key == bindparam("key")).with_for_update(of=_instance))
_READ_TASK = Prepared(_READ_BY_TASK)

CONFLICT = "案件已被他人更新，请刷新后重试 (the case changed meanwhile)"


@dataclass
class InstanceRecord:
    """One instance row during a step; :func:`write` saves it."""

    id: int
    deployment_id: int
    content_hash: str  # of its deployment: with the id, the key of the in-memory spec cache
    business_key: str
    status: str
    state_json: str
    data_json: str
    version: int
    history_seq: int
    history_hash: str
    due_at: datetime | None = None
    ended_at: datetime | None = None
    read: tuple[Any, ...] = ()  # (status, ended_at, due_at) as read: what write() need not set again


def read_locked(session: Session, instance_id: int) -> InstanceRecord:
    """Read an instance row and hold it (``FOR UPDATE`` on PostgreSQL) until the step ends.

    SQLite needs no row lock: a write transaction there starts with ``BEGIN IMMEDIATE`` (see
    :mod:`engine.db`), so steps on one database run one at a time.
    """
    row = _READ_ONE.one(session, {"id": instance_id})
    if row is None:
        raise NotFoundError(f"案件不存在: {instance_id}")
    return _record(row)


def read_locked_by_key(session: Session, business_key: str) -> InstanceRecord | None:
    """:func:`read_locked` by the business key (unique); None if there is no such case."""
    row = _READ_BY_KEY.one(session, {"key": business_key})
    return _record(row) if row is not None else None


def _record(row: dict[str, Any]) -> InstanceRecord:
    row["due_at"] = instant(row["due_at"])
    record = InstanceRecord(**row)
    record.read = (record.status, None, record.due_at)
    return record


def read_for_task(session: Session, task_guid: str) -> tuple[InstanceRecord, str | None] | None:
    """Read and lock the instance an open task belongs to, with the task's assignee; None if not open.

    One statement instead of two (task row, then instance row): completing a task is the commonest step.
    """
    row = _READ_TASK.one(session, {"guid": task_guid})
    if row is None:
        return None
    assignee = row.pop("assignee")
    return _record(row), assignee


def insert_new(session: Session, *, deployment: DeploymentRef, business_key: str, now: datetime,
               actor: str | None) -> InstanceRecord:
    """Insert a new running instance (version 1, empty state) that the starting step then fills in.

    A business key already taken raises :class:`ConflictError` (the unique constraint decides, so two
    concurrent starts with one key cannot both pass a check made beforehand).
    """
    try:
        cursor = _INSERT.execute(session, {
            "deployment_id": deployment.id, "business_key": business_key, "status": "running",
            "state_json": "{}", "data_json": "{}", "version": 1, "started_at": now, "updated_at": now,
            "started_by": actor, "history_seq": 0, "history_hash": "", "ended_at": None, "due_at": None})
    except IntegrityError:  # the caller's transaction is rolled back: nothing of this start is kept
        raise ConflictError(f"业务编号已存在: {business_key}") from None
    return InstanceRecord(id=cursor.fetchone()[0], deployment_id=deployment.id,
                          content_hash=deployment.content_hash, business_key=business_key, status="running",
                          state_json="{}", data_json="{}", version=1, history_seq=0, history_hash="",
                          read=("running", None, None))


def write(session: Session, record: InstanceRecord, now: datetime) -> None:
    """Save the step's outcome, guarded by the version the step read; moves ``record.version`` on by one."""
    values = {"b_id": record.id, "b_version": record.version, "state_json": record.state_json,
              "data_json": record.data_json, "updated_at": now, "history_seq": record.history_seq,
              "history_hash": record.history_hash, "version": record.version + 1}
    now_indexed = (record.status, record.ended_at, record.due_at)
    changed = tuple(name for name, old, new in zip(_INDEXED, record.read or (None,) * 3, now_indexed, strict=True)
                    if new != old or not record.read)
    values.update((name, getattr(record, name)) for name in changed)
    cursor = _write_statement(changed).execute(session, values)
    if cursor.rowcount != 1:
        raise ConflictError(CONFLICT)
    record.version += 1
    record.read = now_indexed
