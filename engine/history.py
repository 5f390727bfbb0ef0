"""History (Camunda's HistoryService): an append-only, hash-chained event log per instance, keyed.

Every step of an instance appends exactly one event row in the step's own transaction. Each row's
``hash`` is SHA-256 over the previous row's hash and the row's canonical content; the instance row keeps
the head (``history_seq``, ``history_hash``), so editing, inserting or deleting any row — including the
newest — is detected by :func:`verify`.

A plain hash chain only shows accidents: whoever can write the database can also recompute every hash.
So each row also carries ``mac`` = ``key id:HMAC-SHA256(key, key id:hash)`` with a key kept OUTSIDE the
database (:class:`HistoryKeys`, a file read once when the engine is built). The row's hash covers the
whole chain before it, so the MAC authenticates the chain up to that row; without the key nobody can
produce a valid one. Keys have ids so they can be rotated: the newest key signs, every older key stays in
the file and keeps verifying the rows it signed (:meth:`HistoryKeys.rotate`).

An event's ``payload`` holds what :func:`replay` needs: the data delta (keys set by the step), the elements
completed in the step, and the full set of active elements after it (open user tasks and waiting events).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from . import codec
from .db import Database, get_engine, get_read_engine
from .errors import NotFoundError, QifuError
from .models import Deployment, Event, HistoricTask, Instance
from .sql import Prepared

_log = logging.getLogger(__name__)

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


# --- the key ring of the keyed chain ---------------------------------------------------------------------
KEY_FILE_HEADER = """\
# History keys: HMAC-SHA256 keys of the keyed history chain (one per line: id, created, key in hex).
# Keep this file outside the database and its backups. The last line signs new events; every earlier
# line only verifies the events it signed. Never edit or delete a line: rotate with the command that
# wrote this file, which keeps every old key.
"""
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")
_KEY_LINE = re.compile(r"(?P<id>\S+)\s+(?P<created>\S+)\s+(?P<key>[0-9a-f]{64})")


class HistoryKeyError(QifuError):
    """The key file is missing, unreadable or malformed: nothing may be signed or verified with a guess."""

    code = "history_key"


@dataclass(frozen=True)
class HistoryKey:
    id: str
    created: str
    secret: bytes = field(repr=False)


@dataclass(frozen=True)
class HistoryKeys:
    """The HMAC keys of the keyed chain, oldest first; the last one signs new events.

    Loaded once when an engine is built; a running process keeps signing with the key it loaded, so a
    rotation takes effect for new events when the processes restart — rows signed with the previous key
    meanwhile verify like every other row, since old keys never leave the file.
    """

    path: str
    keys: tuple[HistoryKey, ...]

    @property
    def current(self) -> HistoryKey:
        return self.keys[-1]

    def get(self, key_id: str) -> HistoryKey | None:
        return next((k for k in self.keys if k.id == key_id), None)

    def sign(self, digest: str) -> str:
        """The ``mac`` column of a row whose ``hash`` is ``digest``."""
        key = self.current
        return f"{key.id}:{_mac(key, digest)}"

    def check(self, digest: str, mac: str | None) -> tuple[str, str] | None:
        """None when ``mac`` is a valid MAC of ``digest``; else (kind, reason)."""
        if not mac:
            return "unsigned", "row not signed: it has no MAC of the history key (written or rewritten " \
                               "without the key)"
        key_id, _, value = mac.partition(":")
        key = self.get(key_id)
        if key is None:
            return "unknown_key", f"row signed with key {key_id!r}, which the key file does not hold " \
                                  f"(a forged MAC, or a key file from elsewhere)"
        if not hmac.compare_digest(_mac(key, digest), value):
            return "bad_mac", "row's MAC does not match its hash (rewritten by someone without the key)"
        return None

    # --- the file -----------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike[str], *, create: bool = True) -> HistoryKeys:
        """The keys in ``path``; with ``create`` a missing file is made with one new key (mode 0400)."""
        target = Path(path)
        try:
            text = target.read_text(encoding="utf-8")
        except FileNotFoundError:
            if not create:
                raise HistoryKeyError(f"历史密钥文件不存在: {target}") from None
            return cls._create(target)
        except OSError as exc:
            raise HistoryKeyError(f"历史密钥文件无法读取: {target}: {exc.strerror}") from None
        keys: list[HistoryKey] = []
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            match = _KEY_LINE.fullmatch(line)
            if match is None or not _KEY_ID.fullmatch(match["id"]):
                raise HistoryKeyError(f"历史密钥文件第 {number} 行格式不对（应为：编号 创建时间 64位十六进制密钥）: "
                                      f"{target}")
            if any(k.id == match["id"] for k in keys):
                raise HistoryKeyError(f"历史密钥文件第 {number} 行：密钥编号 {match['id']} 重复: {target}")
            keys.append(HistoryKey(match["id"], match["created"], bytes.fromhex(match["key"])))
        if not keys:
            raise HistoryKeyError(f"历史密钥文件中没有密钥: {target}")
        if target.stat().st_mode & 0o077:
            _log.warning("history key file %s is readable by other users (chmod 400 it)", target)
        return cls(str(target), tuple(keys))

    @classmethod
    def _create(cls, target: Path) -> HistoryKeys:
        target.parent.mkdir(parents=True, exist_ok=True)
        key = _new_key(datetime.now(UTC))
        _write_new(target, KEY_FILE_HEADER + _line(key), replace=False)
        _log.warning("history key file %s created with key %s: copy it to every machine that runs the "
                     "engine on this database, and keep it out of the database backups", target, key.id)
        return cls.load(target, create=False)

    def rotate(self, now: datetime) -> HistoryKeys:
        """Add a new key that signs from now on; every older key stays, read-only, for verification.

        The file is rewritten by rename (a reader sees the old or the new file, never half of one) and left
        mode 0400. Refused if the file changed since it was loaded (another rotation)."""
        target = Path(self.path)
        if HistoryKeys.load(target, create=False).keys != self.keys:
            raise HistoryKeyError(f"历史密钥文件在读取后被改动（另一次轮换？）: {target}")
        key = _new_key(now)
        while self.get(key.id) is not None:
            key = _new_key(now)
        text = target.read_text(encoding="utf-8")
        _write_new(target, text.rstrip("\n") + "\n" + _line(key), replace=True)
        return HistoryKeys.load(target, create=False)


def _mac(key: HistoryKey, digest: str) -> str:
    return hmac.new(key.secret, f"{key.id}:{digest}".encode(), hashlib.sha256).hexdigest()


def _new_key(now: datetime) -> HistoryKey:
    return HistoryKey(f"{now.astimezone(UTC):%Y%m%d}-{secrets.token_hex(3)}",
                      now.astimezone(UTC).isoformat(timespec="seconds"), secrets.token_bytes(32))


def _line(key: HistoryKey) -> str:
    return f"{key.id} {key.created} {key.secret.hex()}\n"


def _write_new(target: Path, text: str, *, replace: bool) -> None:
    """Write ``text`` to a fresh file beside ``target`` (0400, synced), then move it into place: by rename
    (``replace``) or by link, which fails if another process created ``target`` first (that one wins)."""
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o400)
        if replace:
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)
            except FileExistsError:
                pass  # created meanwhile by another process: theirs is the key
            os.unlink(tmp)
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        if tmp.exists():
            tmp.unlink()


# The keys each database is signed with in this process, found from a step's session without a query.
_KEYS_BY_URL: dict[str, HistoryKeys] = {}
_KEYS_BY_BIND: weakref.WeakKeyDictionary[Any, HistoryKeys] = weakref.WeakKeyDictionary()


def use_keys(url: str, keys: HistoryKeys) -> None:
    """Sign the events appended to database ``url`` by this process with ``keys`` (the engine calls this)."""
    _KEYS_BY_URL[url] = keys
    _KEYS_BY_BIND.clear()


def keys_for(session: Session) -> HistoryKeys | None:
    """The keys registered for the database ``session`` is bound to (cached per SQLAlchemy engine)."""
    bind = session.bind
    found = _KEYS_BY_BIND.get(bind)
    if found is None:
        for url, keys in _KEYS_BY_URL.items():
            if bind is get_engine(url) or bind is get_read_engine(url):
                _KEYS_BY_BIND[bind] = found = keys
                break
    return found


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
    instance row. The event is inserted directly on the cursor (:mod:`engine.sql`), as it is written in every
    step; its MAC is computed here with the key loaded when the engine was built (no query, no file read).
    """
    at, actor, action, task_guid, spec_id = event.at, event.actor, event.action, event.task_guid, event.spec_id
    seq = (instance.history_seq or 0) + 1
    prev = instance.history_hash or GENESIS
    body = canonical(event.payload())
    digest = event_hash(prev, instance_id=instance.id, seq=seq, at=at, actor=actor, action=action,
                        task_guid=task_guid, spec_id=spec_id, payload=body)
    keys = keys_for(session)
    if keys is None:
        raise HistoryKeyError("此数据库没有配置历史密钥：历史事件只能经由 ProcessEngine 写入")
    _INSERT.execute(session, {
        "instance_id": instance.id, "seq": seq, "at": at, "actor": actor, "action": action, "task_guid": task_guid,
        "spec_id": spec_id, "payload": body, "prev_hash": prev, "hash": digest, "mac": keys.sign(digest)})
    instance.history_seq = seq
    instance.history_hash = digest
    return Appended(seq, digest)


# --- verification -------------------------------------------------------------------------------------
@dataclass
class Problem:
    """One broken row (or missing run of rows) of a chain; ``kind`` names what was found, for readers."""

    instance_id: int
    event_id: int | None
    seq: int | None
    reason: str
    kind: str = "broken"  # edited | rehashed | inserted | deleted | broken | head | orphan | unsigned | unknown_key | bad_mac

    def __str__(self) -> str:
        if self.event_id is not None:
            where = f"event id={self.event_id} seq={self.seq}: "
        else:
            where = f"seq={self.seq}: " if self.seq is not None else ""
        return f"instance {self.instance_id}, {where}{self.reason}"


def first_broken(problems: Iterable[Problem]) -> dict[int, Problem]:
    """The first broken row of each chain (lowest seq; a missing run counts at the seq it starts)."""
    out: dict[int, Problem] = {}
    for p in problems:
        best = out.get(p.instance_id)
        if best is None or (p.seq or 0, p.event_id or 0) < (best.seq or 0, best.event_id or 0):
            out[p.instance_id] = p
    return out


VERIFY_BATCH = 500  # chains read per query when verifying many


def verify(session: Session, instance_ids: Iterable[int] | None = None, *, keys: HistoryKeys | None = None,
           keyed: bool = True) -> list[Problem]:
    """Check every chain (or those of ``instance_ids``); return the problems found (empty when intact).

    Each problem names the row: an edited row by its id and seq; an inserted row by its id and seq (found
    because the next genuine row, or the instance head, still links to the row before it); a deleted row by
    the seq that is missing (its id is gone with it). With ``keyed`` (the default) every row's MAC is checked
    against ``keys`` (default: the keys this process signs this database with), so a chain rewritten with
    recomputed plain hashes is found too; ``keyed=False`` checks the plain chain only.
    """
    if keyed and keys is None:
        keys = keys_for(session)
    key_ring = keys if keyed else None
    problems: list[Problem] = []
    if instance_ids is not None:
        wanted = sorted(set(instance_ids))
        heads = session.execute(select(Instance.id, Instance.history_seq, Instance.history_hash)
                                .where(Instance.id.in_(wanted)).order_by(Instance.id)).all()
        for inst_id, head_seq, head_hash in heads:
            rows = list(session.scalars(select(Event).where(Event.instance_id == inst_id)
                                        .order_by(Event.seq, Event.id)))
            problems.extend(_verify_chain(inst_id, rows, head_seq or 0, head_hash or GENESIS, key_ring))
    else:
        after = 0
        while True:
            batch = verify_batch(session, after=after, limit=VERIFY_BATCH, keys=key_ring)
            problems.extend(batch.problems)
            if batch.done:
                break
            after = batch.last_id
    orphans = select(Event).where(Event.instance_id.not_in(select(Instance.id))).order_by(Event.id)
    if instance_ids is not None:
        orphans = orphans.where(Event.instance_id.in_(list(instance_ids)))
    for ev in session.scalars(orphans):
        problems.append(Problem(ev.instance_id, ev.id, ev.seq, "row of a case that does not exist (inserted, "
                                                               "or its case was deleted)", "orphan"))
    return problems


@dataclass
class VerifyBatch:
    problems: list[Problem]
    checked: int  # chains checked in this batch
    last_id: int  # the last instance id checked: the next batch starts after it
    done: bool


def verify_batch(session: Session, *, after: int = 0, limit: int = VERIFY_BATCH, instances: Any = None,
                 keys: HistoryKeys | None = None) -> VerifyBatch:
    """Verify the next ``limit`` chains after instance id ``after`` (keyset: a page costs the same wherever it
    is), optionally only those of ``instances`` (a subquery of instance ids: a caller's visibility rule)."""
    query = select(Instance.id, Instance.history_seq, Instance.history_hash).where(Instance.id > after)
    if instances is not None:
        query = query.where(Instance.id.in_(instances))
    heads = session.execute(query.order_by(Instance.id).limit(limit)).all()
    if not heads:
        return VerifyBatch([], 0, after, True)
    lo, hi = heads[0][0], heads[-1][0]
    by_instance: dict[int, list[Event]] = {}
    for ev in session.scalars(select(Event).where(Event.instance_id.between(lo, hi))
                              .order_by(Event.instance_id, Event.seq, Event.id)):
        by_instance.setdefault(ev.instance_id, []).append(ev)
    problems: list[Problem] = []
    for inst_id, head_seq, head_hash in heads:
        problems.extend(_verify_chain(inst_id, by_instance.get(inst_id, []), head_seq or 0, head_hash or GENESIS,
                                      keys))
    return VerifyBatch(problems, len(heads), hi, len(heads) < limit)


def _verify_chain(inst_id: int, rows: list[Event], head_seq: int, head_hash: str,
                  keys: HistoryKeys | None = None) -> list[Problem]:
    problems: list[Problem] = []
    position = {GENESIS: -1}  # hash → index of the row that produced it (-1: the start of the chain)
    inserted: set[int] = set()

    def mark_inserted(after: int, before: int, why: str) -> None:
        for row in rows[after + 1:before]:
            if row.id not in inserted:
                inserted.add(row.id)
                problems.append(Problem(inst_id, row.id, row.seq, f"row inserted: {why}", "inserted"))

    prev, expected = GENESIS, 1
    for i, ev in enumerate(rows):
        digest = event_hash(ev.prev_hash, instance_id=ev.instance_id, seq=ev.seq, at=ev.at, actor=ev.actor,
                            action=ev.action, task_guid=ev.task_guid, spec_id=ev.spec_id, payload=ev.payload)
        if digest != ev.hash:
            problems.append(Problem(inst_id, ev.id, ev.seq, "row edited: its content does not match its hash",
                                    "edited"))
        if keys is not None:
            bad = keys.check(ev.hash, ev.mac)
            if bad is not None:
                problems.append(Problem(inst_id, ev.id, ev.seq, bad[1], bad[0]))
        if ev.prev_hash != prev:
            origin = position.get(ev.prev_hash)
            if origin is not None and origin < i - 1:
                mark_inserted(origin, i, f"the next row (id={ev.id}) still links to the row before it")
            elif ev.seq > expected:
                problems.append(Problem(inst_id, None, expected,
                                        f"row deleted: seq {_span(expected, ev.seq - 1)} missing before "
                                        f"row id={ev.id} seq={ev.seq}", "deleted"))
            elif i > 0 and digest == ev.hash:
                # this row is intact, so its prev_hash is the previous row's original hash
                before = rows[i - 1]
                problems.append(Problem(inst_id, before.id, before.seq, f"row edited and its hash recomputed: "
                                                                         f"the next row (id={ev.id}) links to its "
                                                                         f"original hash", "rehashed"))
            elif i > 0:
                before = rows[i - 1]
                problems.append(Problem(inst_id, ev.id, ev.seq, f"chain broken: this row does not link to row "
                                                                 f"id={before.id} seq={before.seq}"))
            else:
                problems.append(Problem(inst_id, ev.id, ev.seq, "chain broken: the first row does not start "
                                                                 "the chain (edited or inserted)"))
        elif ev.seq != expected:
            problems.append(Problem(inst_id, ev.id, ev.seq, f"row edited: seq {ev.seq}, expected {expected}",
                                    "edited"))
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
                                    f"(the case's chain head is seq {head_seq})", "deleted"))
        elif rows and last_seq == head_seq:
            problems.append(Problem(inst_id, rows[-1].id, last_seq, "row edited and its hash recomputed: the "
                                                                    "case's chain head has its original hash",
                                    "rehashed"))
        else:
            problems.append(Problem(inst_id, rows[-1].id if rows else None, last_seq or None,
                                    f"chain head mismatch: the case says seq {head_seq}, the chain ends at "
                                    f"seq {last_seq} (rows or the head edited)", "head"))
    # an inserted row with a made-up hash or MAC is also "edited"; saying "inserted" once is enough
    return [p for p in problems if not (p.event_id in inserted and p.kind in ("edited", "unsigned", "unknown_key",
                                                                              "bad_mac"))]


@dataclass
class SealReport:
    signed: int = 0  # rows given a MAC
    chains: int = 0  # chains those rows belong to
    refused: list[Problem] = field(default_factory=list)  # chains left unsigned: they do not verify


def seal(session: Session, keys: HistoryKeys) -> SealReport:
    """Sign the rows written before the keyed chain (the upgrade to it): once, right after upgrading.

    Only rows without a MAC whose id is below the first signed row's are signed — rows written before any
    process had a key — and only in chains whose plain hash chain verifies; a row written without a MAC
    after the keyed chain started is tampering and stays reported. Never re-signs a row that has a MAC.
    """
    report = SealReport()
    first_signed = session.scalar(select(func.min(Event.id)).where(Event.mac.is_not(None)))
    unsigned = select(Event.instance_id).where(Event.mac.is_(None))
    if first_signed is not None:
        unsigned = unsigned.where(Event.id < first_signed)
    chains = list(session.scalars(unsigned.distinct().order_by(Event.instance_id)))
    for inst_id in chains:
        found = verify(session, [inst_id], keyed=False)
        if found:
            report.refused.extend(found)
            continue
        rows = session.execute(select(Event.id, Event.hash).where(
            Event.instance_id == inst_id, Event.mac.is_(None),
            *([Event.id < first_signed] if first_signed is not None else []))).all()
        for event_id, digest in rows:
            session.execute(update(Event).where(Event.id == event_id, Event.mac.is_(None))
                            .values(mac=keys.sign(digest)))
        report.signed += len(rows)
        report.chains += 1
    return report


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


# --- the event log (process mining exports) ---------------------------------------------------------------
@dataclass(frozen=True)
class LogFilter:
    """Which cases an event-log export covers: a process (and version), cases started in [from, before),
    and optionally only the instances of a caller's subquery (its visibility rule)."""

    process_key: str | None = None
    version: int | None = None
    started_from: datetime | None = None
    started_before: datetime | None = None
    instances: Any = None  # a SELECT of instance ids, or None for every instance


@dataclass(frozen=True)
class LogRow:
    """One history event with what an export needs to know of its case."""

    instance_id: int
    business_key: str
    process_key: str
    version: int
    deployment_id: int
    event: StepEvent


LOG_PAGE = 2000  # events per query of an export


def log_page(session: Session, flt: LogFilter, *, after: tuple[int, int] = (0, 0),
             limit: int = LOG_PAGE) -> list[LogRow]:
    """The next ``limit`` events after (instance id, seq) ``after``, in (instance, seq) order: keyset paging
    along the (instance_id, seq) index, so the 1,000th page costs what the first does."""
    last_instance, last_seq = after
    query = (select(Event, Instance.business_key, Deployment.process_key, Deployment.version, Instance.deployment_id)
             .join(Instance, Instance.id == Event.instance_id)
             .join(Deployment, Deployment.id == Instance.deployment_id)
             .where(or_(Event.instance_id > last_instance,
                        and_(Event.instance_id == last_instance, Event.seq > last_seq))))
    if flt.process_key is not None:
        query = query.where(Deployment.process_key == flt.process_key)
    if flt.version is not None:
        query = query.where(Deployment.version == flt.version)
    if flt.started_from is not None:
        query = query.where(Instance.started_at >= _utc(flt.started_from))
    if flt.started_before is not None:
        query = query.where(Instance.started_at < _utc(flt.started_before))
    if flt.instances is not None:
        query = query.where(Event.instance_id.in_(flt.instances))
    rows = session.execute(query.order_by(Event.instance_id, Event.seq).limit(limit)).all()
    return [LogRow(ev.instance_id, key, process, version, deployment, StepEvent.from_row(ev))
            for ev, key, process, version, deployment in rows]


# --- the service -------------------------------------------------------------------------------------------
class HistoryService:
    """History (Camunda's HistoryService): read a case's steps, replay it, verify the chains, export the log.

    ``keys`` sign the events this process appends to the database (registered here, found by
    :func:`append` from the step's session) and verify every row.
    """

    def __init__(self, db: Database, keys: HistoryKeys) -> None:
        self.db = db
        self._keys = keys
        use_keys(db.url, keys)

    @property
    def keys(self) -> HistoryKeys:
        """The keys this process signs the database with (the newest ring registered for it: a rotation in this
        process only ever adds keys, so it verifies everything an older ring did)."""
        return _KEYS_BY_URL.get(self.db.url, self._keys)

    def events(self, instance_id: int) -> list[StepEvent]:
        """The history of one case, oldest first."""
        with self.db.read() as session:
            return events_for(session, instance_id)

    def replay(self, instance_id: int, step: int | None = None) -> ReplayState:
        """The case as it stood after event ``step`` (default: the newest)."""
        with self.db.read() as session:
            return replay(session, instance_id, step)

    def verify(self, instance_ids: Iterable[int] | None = None) -> list[Problem]:
        """Check the hash chains and their MACs of some cases (default: all); empty when the history is intact."""
        with self.db.read() as session:
            return verify(session, instance_ids, keys=self.keys)

    def verify_batch(self, *, after: int = 0, limit: int = VERIFY_BATCH, instances: Any = None) -> VerifyBatch:
        """The next ``limit`` chains after instance id ``after`` (of ``instances``, a subquery), checked."""
        with self.db.read() as session:
            return verify_batch(session, after=after, limit=limit, instances=instances, keys=self.keys)

    def seal(self) -> SealReport:
        """Sign the rows written before the keyed chain (see :func:`seal`)."""
        with self.db.write() as session:
            return seal(session, self.keys)

    def rotate_key(self, now: datetime) -> HistoryKeys:
        """A new signing key in the key file (the older ones stay for verification); this engine signs with it
        at once, other processes when they restart."""
        self._keys = self.keys.rotate(now)
        use_keys(self.db.url, self._keys)
        return self._keys

    def task_due_dates(self, instance_id: int) -> dict[str, datetime | None]:
        """Each user task the case ever opened (task guid) with the due instant it had: replay marks the tasks
        that were overdue at a step."""
        with self.db.read() as session:
            return dict(session.execute(select(HistoricTask.task_guid, HistoricTask.due_at)
                                        .where(HistoricTask.instance_id == instance_id)).all())

    def event_log(self, flt: LogFilter, *, page_size: int = LOG_PAGE) -> Iterator[LogRow]:
        """Every event of the cases ``flt`` selects, case by case, oldest first — streamed a page at a time,
        each page in a read transaction of its own (no long transaction, never every event in memory)."""
        after = (0, 0)
        while True:
            with self.db.read() as session:
                page = log_page(session, flt, after=after, limit=page_size)
            yield from page
            if len(page) < page_size:
                return
            after = (page[-1].instance_id, page[-1].event.seq or 0)

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
