"""History (Camunda's HistoryService): an append-only, hash-chained event log per instance.

Every step of an instance appends exactly one event row in the step's own transaction. Each row's
``hash`` is SHA-256 over the previous row's hash and the row's canonical content; the instance row keeps
the head (``history_seq``, ``history_hash``), so editing, inserting or deleting any row — including the
newest — is detected by :func:`verify`.

An event's ``payload`` holds what :func:`replay` needs: the data delta (keys set by the step), the elements
completed in the step, and the full set of active elements after it (open user tasks and waiting events).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .errors import NotFoundError
from .models import Event, Instance

GENESIS = "0" * 64


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _iso(at: datetime) -> str:
    if at.tzinfo is None:  # SQLite hands back naive UTC
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def event_hash(prev_hash: str, *, instance_id: int, seq: int, at: datetime, actor: str | None, action: str,
               task_guid: str | None, spec_id: str | None, payload: str) -> str:
    body = canonical({"instance": instance_id, "seq": seq, "at": _iso(at), "actor": actor, "action": action,
                      "task": task_guid, "element": spec_id, "payload": payload})
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def append(session: Session, instance: Instance, *, at: datetime, actor: str | None, action: str,
           task_guid: str | None = None, spec_id: str | None = None, payload: dict[str, Any]) -> Event:
    """Append the next event of ``instance`` and move the instance's chain head. Call inside the step."""
    seq = (instance.history_seq or 0) + 1
    prev = instance.history_hash or GENESIS
    body = canonical(payload)
    digest = event_hash(prev, instance_id=instance.id, seq=seq, at=at, actor=actor, action=action,
                        task_guid=task_guid, spec_id=spec_id, payload=body)
    event = Event(instance_id=instance.id, seq=seq, at=at, actor=actor, action=action, task_guid=task_guid,
                  spec_id=spec_id, payload=body, prev_hash=prev, hash=digest)
    session.add(event)
    instance.history_seq = seq
    instance.history_hash = digest
    return event


# --- verification -------------------------------------------------------------------------------------
@dataclass
class Problem:
    instance_id: int
    event_id: int | None
    seq: int | None
    reason: str

    def __str__(self) -> str:
        where = f"event id={self.event_id} seq={self.seq}" if self.event_id is not None else f"seq={self.seq}"
        return f"instance {self.instance_id}, {where}: {self.reason}"


def verify(session: Session, instance_ids: Iterable[int] | None = None) -> list[Problem]:
    """Check every chain; return the problems found (empty when the history is intact)."""
    query = select(Instance.id, Instance.history_seq, Instance.history_hash).order_by(Instance.id)
    if instance_ids is not None:
        query = query.where(Instance.id.in_(list(instance_ids)))
    problems: list[Problem] = []
    for inst_id, head_seq, head_hash in session.execute(query).all():
        events = session.scalars(select(Event).where(Event.instance_id == inst_id).order_by(Event.seq, Event.id))
        prev, expected_seq = GENESIS, 1
        for ev in events:
            if ev.seq != expected_seq:
                kind = "inserted" if ev.seq < expected_seq else "deleted before it"
                problems.append(Problem(inst_id, ev.id, ev.seq, f"sequence gap or duplicate (row {kind}); "
                                                                 f"expected seq {expected_seq}"))
            if ev.prev_hash != prev:
                problems.append(Problem(inst_id, ev.id, ev.seq, "prev_hash does not match the previous row "
                                                                 "(a row was inserted, deleted or edited)"))
            digest = event_hash(ev.prev_hash, instance_id=ev.instance_id, seq=ev.seq, at=ev.at, actor=ev.actor,
                                action=ev.action, task_guid=ev.task_guid, spec_id=ev.spec_id, payload=ev.payload)
            if digest != ev.hash:
                problems.append(Problem(inst_id, ev.id, ev.seq, "content does not match its hash (row edited)"))
            prev, expected_seq = ev.hash, ev.seq + 1
        if expected_seq - 1 != (head_seq or 0) or prev != (head_hash or GENESIS):
            problems.append(Problem(inst_id, None, head_seq,
                                    f"chain ends at seq {expected_seq - 1} but the instance head says "
                                    f"{head_seq} (newest rows deleted or head edited)"))
    return problems


# --- replay ---------------------------------------------------------------------------------------------
@dataclass
class ReplayState:
    instance_id: int
    step: int
    at: datetime | None
    actor: str | None
    action: str | None
    data: dict[str, Any] = field(default_factory=dict)
    active: list[dict[str, Any]] = field(default_factory=list)
    completed: list[dict[str, Any]] = field(default_factory=list)


def replay(session: Session, instance_id: int, step: int | None = None) -> ReplayState:
    """The case as it stood after event ``step`` (default: the newest)."""
    if session.get(Instance, instance_id) is None:
        raise NotFoundError(f"案件不存在: {instance_id}")
    query = select(Event).where(Event.instance_id == instance_id).order_by(Event.seq)
    if step is not None:
        if step < 1:
            raise NotFoundError("步骤从 1 开始")
        query = query.where(Event.seq <= step)
    state = ReplayState(instance_id, 0, None, None, None)
    for ev in session.scalars(query):
        payload = json.loads(ev.payload)
        state.step, state.at, state.actor, state.action = ev.seq, ev.at, ev.actor, ev.action
        state.data.update(payload.get("data_set", {}))
        for key in payload.get("data_unset", []):
            state.data.pop(key, None)
        state.completed.extend({"seq": ev.seq, **c} for c in payload.get("completed", []))
        state.active = payload.get("active", state.active)
    if step is not None and state.step != step:
        raise NotFoundError(f"案件 {instance_id} 没有第 {step} 步 (only {state.step} steps)")
    return state


def events_for(session: Session, instance_id: int) -> list[Event]:
    return list(session.scalars(select(Event).where(Event.instance_id == instance_id).order_by(Event.seq)))
