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
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from . import codec
from .db import Database
from .errors import NotFoundError
from .models import Event, Instance
from .sql import Prepared

GENESIS = "0" * 64
_INSERT = Prepared(insert(Event.__table__))  # every step's: compiled once, run on the cursor (engine.sql)


def canonical(value: Any) -> str:
    """Sorted compact JSON: the text the chain hashes (byte for byte what ``json.dumps(sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)`` writes for the header's strings and integers)."""
    return codec.dumps(value, sort_keys=True)


def _utc(at: datetime) -> datetime:
    """Instants in the history are aware (the ``UTCDateTime`` column type sees to it on read); a naive one
    here is a bug, never guessed at: the chain hashes the instant."""
    if at.tzinfo is None:
        raise ValueError(f"naive datetime {at!r} in the history: instants are stored and read aware")
    return at.astimezone(UTC)


def _iso(at: datetime) -> str:
    return _utc(at).isoformat(timespec="microseconds")


def event_hash(prev_hash: str, *, instance_id: int, seq: int, at: datetime, actor: str | None, action: str,
               task_guid: str | None, spec_id: str | None, payload: str) -> str:
    body = canonical({"instance": instance_id, "seq": seq, "at": _iso(at), "actor": actor, "action": action,
                      "task": task_guid, "element": spec_id, "payload": payload})
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


# --- the event type -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ElementRef:
    """A diagram element as a step saw it: its id, name, kind (the task spec's class) and task guid."""

    element: str
    name: str | None
    type: str
    task: str | None
    state: str | None = None  # for active elements: ready (an open user task) | waiting (an event)

    @classmethod
    def of(cls, d: dict[str, Any]) -> ElementRef:
        return cls(d.get("element") or "", d.get("name"), d.get("type") or "", d.get("task"), d.get("state"))

    def to_dict(self) -> dict[str, Any]:
        out = {"element": self.element, "name": self.name, "type": self.type, "task": self.task}
        if self.state is not None:
            out["state"] = self.state
        return out

    @property
    def is_user_task(self) -> bool:
        return self.type == "UserTask"


@dataclass(frozen=True)
class StepEvent:
    """One step of a case as the history keeps it: the one event type the runtime writes and every reader reads.

    ``data_set`` holds the case data the step set; ``completed`` the elements it finished, in order;
    ``active`` where the case stood afterwards (open user tasks and waiting events); ``details`` what the
    action was about (the form, the timer, the assignee); ``notes`` what handlers recorded. The payload text
    of the row (canonical JSON) is covered by the hash chain, so its format only ever grows.
    """

    action: str
    at: datetime
    actor: str | None = None
    task_guid: str | None = None
    spec_id: str | None = None
    data_set: dict[str, Any] = field(default_factory=dict)
    data_unset: list[str] = field(default_factory=list)
    completed: list[ElementRef] = field(default_factory=list)
    active: list[ElementRef] | None = None  # None: the step did not change where the case stands
    timers_scheduled: list[dict[str, Any]] = field(default_factory=list)
    timers_cancelled: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[dict[str, Any]] = field(default_factory=list)
    instance_id: int | None = None
    seq: int | None = None

    def payload(self) -> dict[str, Any]:
        """The row's payload, in the format the chain has always hashed."""
        out: dict[str, Any] = {"data_set": self.data_set, "completed": [c.to_dict() for c in self.completed],
                               "details": self.details}
        if self.active is not None:
            out["active"] = [a.to_dict() for a in self.active]
            out["timers_scheduled"] = self.timers_scheduled
            out["timers_cancelled"] = self.timers_cancelled
        if self.data_unset:
            out["data_unset"] = self.data_unset
        if self.notes:
            out["notes"] = self.notes
        return out

    @classmethod
    def from_row(cls, row: Any) -> StepEvent:
        """Parse an ``event`` row (the ORM model or a result row with the same columns)."""
        body = codec.loads(row.payload)
        active = body.get("active")
        return cls(
            action=row.action, at=_utc(row.at), actor=row.actor, task_guid=row.task_guid, spec_id=row.spec_id,
            data_set=dict(body.get("data_set") or {}), data_unset=list(body.get("data_unset") or []),
            completed=[ElementRef.of(c) for c in body.get("completed") or []],
            active=[ElementRef.of(a) for a in active] if active is not None else None,
            timers_scheduled=list(body.get("timers_scheduled") or []),
            timers_cancelled=list(body.get("timers_cancelled") or []),
            # claims written before StepEvent kept their two fields at the top of the payload
            details=dict(body.get("details") or {k: body[k] for k in ("assignee", "previous") if k in body}),
            notes=[n for n in body.get("notes") or [] if isinstance(n, dict)],
            instance_id=row.instance_id, seq=row.seq)


@dataclass(frozen=True)
class Appended:
    seq: int
    hash: str


def append(session: Session, instance: Any, event: StepEvent) -> Appended:
    """Append ``event`` as the next event of ``instance`` and move its chain head, in the step's transaction.

    ``instance`` is anything with ``id``, ``history_seq`` and ``history_hash``: the runtime's
    :class:`~engine.instance_rows.InstanceRecord`. The caller saves the moved head with the rest of the
    instance row. The event is inserted directly on the cursor (:mod:`engine.sql`), as it is written in every step.
    """
    at, actor, action, task_guid, spec_id = event.at, event.actor, event.action, event.task_guid, event.spec_id
    seq = (instance.history_seq or 0) + 1
    prev = instance.history_hash or GENESIS
    body = canonical(event.payload())
    digest = event_hash(prev, instance_id=instance.id, seq=seq, at=at, actor=actor, action=action,
                        task_guid=task_guid, spec_id=spec_id, payload=body)
    _INSERT.execute(session, {
        "instance_id": instance.id, "seq": seq, "at": at, "actor": actor, "action": action, "task_guid": task_guid,
        "spec_id": spec_id, "payload": body, "prev_hash": prev, "hash": digest})
    instance.history_seq = seq
    instance.history_hash = digest
    return Appended(seq, digest)


# --- verification -------------------------------------------------------------------------------------
@dataclass
class Problem:
    instance_id: int
    event_id: int | None
    seq: int | None
    reason: str

    def __str__(self) -> str:
        if self.event_id is not None:
            where = f"event id={self.event_id} seq={self.seq}: "
        else:
            where = f"seq={self.seq}: " if self.seq is not None else ""
        return f"instance {self.instance_id}, {where}{self.reason}"


def verify(session: Session, instance_ids: Iterable[int] | None = None) -> list[Problem]:
    """Check every chain; return the problems found (empty when the history is intact).

    Each problem names the row: an edited row by its id and seq; an inserted row by its id and seq (found
    because the next genuine row, or the instance head, still links to the row before it); a deleted row by
    the seq that is missing (its id is gone with it).
    """
    query = select(Instance.id, Instance.history_seq, Instance.history_hash).order_by(Instance.id)
    if instance_ids is not None:
        query = query.where(Instance.id.in_(list(instance_ids)))
    problems: list[Problem] = []
    for inst_id, head_seq, head_hash in session.execute(query).all():
        rows = list(session.scalars(select(Event).where(Event.instance_id == inst_id).order_by(Event.seq, Event.id)))
        problems.extend(_verify_chain(inst_id, rows, head_seq or 0, head_hash or GENESIS))
    orphans = select(Event).where(Event.instance_id.not_in(select(Instance.id))).order_by(Event.id)
    if instance_ids is not None:
        orphans = orphans.where(Event.instance_id.in_(list(instance_ids)))
    for ev in session.scalars(orphans):
        problems.append(Problem(ev.instance_id, ev.id, ev.seq, "row of a case that does not exist (inserted, "
                                                               "or its case was deleted)"))
    return problems


def _verify_chain(inst_id: int, rows: list[Event], head_seq: int, head_hash: str) -> list[Problem]:
    problems: list[Problem] = []
    position = {GENESIS: -1}  # hash → index of the row that produced it (-1: the start of the chain)
    inserted: set[int] = set()

    def mark_inserted(after: int, before: int, why: str) -> None:
        for row in rows[after + 1:before]:
            if row.id not in inserted:
                inserted.add(row.id)
                problems.append(Problem(inst_id, row.id, row.seq, f"row inserted: {why}"))

    prev, expected = GENESIS, 1
    for i, ev in enumerate(rows):
        digest = event_hash(ev.prev_hash, instance_id=ev.instance_id, seq=ev.seq, at=ev.at, actor=ev.actor,
                            action=ev.action, task_guid=ev.task_guid, spec_id=ev.spec_id, payload=ev.payload)
        if digest != ev.hash:
            problems.append(Problem(inst_id, ev.id, ev.seq, "row edited: its content does not match its hash"))
        if ev.prev_hash != prev:
            origin = position.get(ev.prev_hash)
            if origin is not None and origin < i - 1:
                mark_inserted(origin, i, f"the next row (id={ev.id}) still links to the row before it")
            elif ev.seq > expected:
                problems.append(Problem(inst_id, None, expected,
                                        f"row deleted: seq {_span(expected, ev.seq - 1)} missing before "
                                        f"row id={ev.id} seq={ev.seq}"))
            elif i > 0 and digest == ev.hash:
                # this row is intact, so its prev_hash is the previous row's original hash
                before = rows[i - 1]
                problems.append(Problem(inst_id, before.id, before.seq, f"row edited and its hash recomputed: "
                                                                         f"the next row (id={ev.id}) links to its "
                                                                         f"original hash"))
            elif i > 0:
                before = rows[i - 1]
                problems.append(Problem(inst_id, ev.id, ev.seq, f"chain broken: this row does not link to row "
                                                                 f"id={before.id} seq={before.seq}"))
            else:
                problems.append(Problem(inst_id, ev.id, ev.seq, "chain broken: the first row does not start "
                                                                 "the chain (edited or inserted)"))
        elif ev.seq != expected:
            problems.append(Problem(inst_id, ev.id, ev.seq, f"row edited: seq {ev.seq}, expected {expected}"))
        position.setdefault(ev.hash, i)
        prev, expected = ev.hash, ev.seq + 1

    last_seq = rows[-1].seq if rows else 0
    if prev != head_hash or last_seq != head_seq:
        origin = position.get(head_hash)
        if origin is not None and origin < len(rows) - 1:
            mark_inserted(origin, len(rows), f"the case's chain head is seq {head_seq}")
        elif last_seq < head_seq:
            problems.append(Problem(inst_id, None, last_seq + 1,
                                    f"row deleted: newest seq {_span(last_seq + 1, head_seq)} missing "
                                    f"(the case's chain head is seq {head_seq})"))
        elif rows and last_seq == head_seq:
            problems.append(Problem(inst_id, rows[-1].id, last_seq, "row edited and its hash recomputed: the "
                                                                    "case's chain head has its original hash"))
        else:
            problems.append(Problem(inst_id, rows[-1].id if rows else None, last_seq or None,
                                    f"chain head mismatch: the case says seq {head_seq}, the chain ends at "
                                    f"seq {last_seq} (rows or the head edited)"))
    # an inserted row with a made-up hash is also "edited"; saying "inserted" once is enough
    return [p for p in problems if not (p.event_id in inserted and p.reason.startswith("row edited"))]


def _span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}..{last}"


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
    for ev in map(StepEvent.from_row, session.scalars(query)):
        state.step, state.at, state.actor, state.action = ev.seq, ev.at, ev.actor, ev.action
        state.data.update(ev.data_set)
        for key in ev.data_unset:
            state.data.pop(key, None)
        state.completed.extend({"seq": ev.seq, **c.to_dict()} for c in ev.completed)
        if ev.active is not None:
            state.active = [a.to_dict() for a in ev.active]
    if step is not None and state.step != step:
        raise NotFoundError(f"案件 {instance_id} 没有第 {step} 步 (only {state.step} steps)")
    return state


def event_rows(session: Session, instance_id: int) -> list[Event]:
    """The stored rows of one case's chain, oldest first (for verification and tests of the chain itself)."""
    return list(session.scalars(select(Event).where(Event.instance_id == instance_id).order_by(Event.seq)))


def events_for(session: Session, instance_id: int) -> list[StepEvent]:
    """The history of one case, oldest first."""
    rows = session.scalars(select(Event).where(Event.instance_id == instance_id).order_by(Event.seq))
    return [StepEvent.from_row(row) for row in rows]


# --- the service -------------------------------------------------------------------------------------------
class HistoryService:
    """History (Camunda's HistoryService): read a case's steps, replay it, verify the chains."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def events(self, instance_id: int) -> list[StepEvent]:
        """The history of one case, oldest first."""
        with self.db.read() as session:
            return events_for(session, instance_id)

    def replay(self, instance_id: int, step: int | None = None) -> ReplayState:
        """The case as it stood after event ``step`` (default: the newest)."""
        with self.db.read() as session:
            return replay(session, instance_id, step)

    def verify(self, instance_ids: Iterable[int] | None = None) -> list[Problem]:
        """Check the hash chains of some cases (default: all); empty when the history is intact."""
        with self.db.read() as session:
            return verify(session, instance_ids)

    def count_instances(self) -> int:
        with self.db.read() as session:
            return session.scalar(select(func.count()).select_from(Instance)) or 0

    def instance_id(self, case: str) -> int:
        """An instance by business key (or by its number), for the CLI; NotFoundError otherwise."""
        with self.db.read() as session:
            found = session.scalar(select(Instance.id).where(Instance.business_key == case))
            if found is None and case.isdigit():
                found = session.scalar(select(Instance.id).where(Instance.id == int(case)))
        if found is None:
            raise NotFoundError(f"案件不存在: {case}")
        return found
