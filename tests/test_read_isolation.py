"""Reads never block writes, and writes never block reads (issue #17): engine.db's read-only transactions.

Every page reads in :meth:`engine.process_engine.ProcessEngine.read` (SQLite: deferred ``BEGIN`` and
``query_only``; PostgreSQL: ``READ ONLY``), every step writes in its own transaction (SQLite: ``BEGIN
IMMEDIATE``). These tests hold one side open in a thread for a while and time the other side: if either
waited for the other, a step or a read would take about as long as the hold. They run on SQLite and,
with ``QIFU_TEST_PG_URL`` set, on PostgreSQL.

Shown to fail by hand (a copy of the tree with engine/db.py changed): with the SQLite read engine opening
its transactions like the write engine (``BEGIN IMMEDIATE`` in ``_on_begin``, no ``PRAGMA query_only`` —
with query_only on, ``BEGIN IMMEDIATE`` itself is refused and every read errors), the two timing tests go red
on SQLite: the steps finish only after the read has ended, the reads only after the write. Without
``query_only`` (SQLite) or ``postgresql_readonly`` (PostgreSQL) the write-refusal tests go red.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError

from engine.clock import FixedClock
from engine.models import Event, HumanTask, Instance, Timer, Workday
from engine.process_engine import ProcessEngine
from engine.tasks import TaskQuery
from tests.conftest import diagram
from tests.held_transactions import Held, timed

HOLD = 2.0   # seconds the other side keeps its transaction open
LIMIT = 0.5  # seconds one step or one read may take meanwhile (a waiting one takes about HOLD)


def _counts(session: Any) -> tuple[int, int, int]:
    """Rows of instance, human_task and event, as one read sees them."""
    return tuple(session.scalar(select(func.count()).select_from(t)) for t in (Instance, HumanTask, Event))


def _deploy(engine: ProcessEngine) -> None:
    engine.deploy(diagram("timer_boundary.bpmn"), filename="timer_boundary.bpmn")


def _task_of(engine: ProcessEngine, instance_id: int) -> str:
    [task] = engine.tasks.query(TaskQuery(instance_id=instance_id)).rows
    return task.task_guid


# --- a slow read while steps run ---------------------------------------------------------------------------
def test_a_slow_read_does_not_hold_up_steps_or_timers(engine: ProcessEngine, clock: FixedClock) -> None:
    """A read that has read instance, task and event rows stays open for HOLD seconds; meanwhile cases start,
    a task is completed and due timers fire, each quickly. The read is not blocked either: its later
    queries answer at once (on SQLite from the snapshot it began with; PostgreSQL reads committed rows)."""
    _deploy(engine)
    first = engine.runtime.start("timer_boundary", "RI-1", {}, actor="clerk").instance_id  # warm: spec cached
    engine.runtime.start("timer_boundary", "RI-2", {}, actor="clerk")
    before = (2, 2, 2)

    def slow_read(ready: threading.Event) -> dict[str, Any]:
        with engine.read() as session:
            seen = _counts(session)
            ready.set()
            time.sleep(HOLD)
            again, took = timed(lambda: _counts(session))
        return {"seen": seen, "again": again, "took": took}

    steps: dict[str, float] = {}
    with Held(slow_read) as read:
        _, steps["start"] = timed(lambda: engine.runtime.start("timer_boundary", "RI-3", {}, actor="clerk"))
        task = _task_of(engine, first)
        _, steps["complete"] = timed(lambda: engine.runtime.complete_task(task, {"result": "办结"}, actor="clerk"))
        clock.advance(days=2, minutes=1)  # RI-2's and RI-3's deadline timers are due
        fired, steps["timers"] = timed(lambda: engine.management.run_due_timers())
        assert read.open(), "the steps finished only after the read had ended: they waited for it"
    assert fired == 2
    assert all(took < LIMIT for took in steps.values()), f"steps waited for the open read: {steps}"

    after = (3, 2, 6)  # RI-1 done; RI-2 and RI-3 escalated (a task each); 3 starts, a completion, 2 timers
    with engine.read() as session:
        assert _counts(session) == after
        assert session.scalar(select(func.count()).select_from(Timer).where(Timer.status == "fired")) == 2
    assert read.result["seen"] == before
    assert read.result["took"] < LIMIT, "the read's later query waited for the writers"
    if engine.url.startswith("sqlite"):
        assert read.result["again"] == before  # WAL: the read kept its snapshot while steps committed
    else:
        assert read.result["again"] == after   # READ COMMITTED: each statement sees what was committed
    assert engine.history.verify() == []


def test_a_read_does_not_wait_for_an_open_write(engine: ProcessEngine) -> None:
    """A write transaction holds a row lock on an instance (PostgreSQL) and the write lock (SQLite) for HOLD
    seconds; the services' reads answer quickly meanwhile, and see only what was committed."""
    _deploy(engine)
    iid = engine.runtime.start("timer_boundary", "RW-1", {}, actor="clerk").instance_id

    def open_write(ready: threading.Event) -> None:
        session = engine.db.writes()
        try:
            session.execute(update(Instance).where(Instance.id == iid).values(status="held"))
            ready.set()
            time.sleep(HOLD)
        finally:
            session.rollback()
            session.close()

    reads: dict[str, float] = {}
    with Held(open_write) as write:
        views, reads["instances"] = timed(lambda: engine.runtime.instances([iid]))
        page, reads["tasks"] = timed(lambda: engine.tasks.query(TaskQuery(groups=("clerks",))))
        events, reads["history"] = timed(lambda: engine.history.events(iid))
        assert write.open(), "the reads finished only after the write had ended: they waited for it"
    assert all(took < LIMIT for took in reads.values()), f"reads waited for the open write: {reads}"
    assert views[iid].status == "running"  # the uncommitted change is not seen
    assert page.total == 1 and [e.action for e in events] == ["started"]


# --- a read transaction cannot write -----------------------------------------------------------------------
WRITES = {
    "insert": insert(Workday).values(day=FixedClock("2040-01-02T00:00:00").now().date(), is_workday=True,
                                     source="test"),
    "update": update(Workday).values(note="changed"),
    "delete": delete(Workday),
}


@pytest.mark.parametrize("kind", list(WRITES))
def test_a_read_session_refuses_to_write(engine: ProcessEngine, kind: str) -> None:
    """INSERT, UPDATE and DELETE in ``engine.read()`` fail on both databases and change nothing; the pooled
    connections that served the reads still write afterwards (PostgreSQL shares one pool for both)."""
    with engine.read() as session:
        days = session.scalar(select(func.count()).select_from(Workday))
        notes = session.scalar(select(func.count()).select_from(Workday).where(Workday.note == "changed"))
    assert days and not notes
    with engine.read() as session, pytest.raises(DBAPIError) as refused:
        session.execute(WRITES[kind])
    message = str(refused.value.orig).lower().replace("-", "")
    assert "readonly" in message, message
    with engine.read() as session:
        assert session.scalar(select(func.count()).select_from(Workday)) == days
        assert session.scalar(select(func.count()).select_from(Workday).where(Workday.note == "changed")) == 0
    for _ in range(8):  # more than the pool holds: every connection a read used
        with engine.session() as session:
            session.execute(update(Workday).where(Workday.day == Workday.day).values(note=None))
        with engine.read() as session:
            session.scalar(select(func.count()).select_from(Workday))


def test_a_read_after_a_refused_write_is_still_read_only(engine: ProcessEngine) -> None:
    """Each read transaction is read-only, not only the first one a connection serves."""
    for _ in range(3):
        with engine.read() as session, pytest.raises(DBAPIError):
            session.execute(WRITES["insert"])
    _deploy(engine)  # writes in between do not turn the pooled connections writable for reads
    engine.runtime.start("timer_boundary", "RO-1", {}, actor="clerk")
    with engine.read() as session, pytest.raises(DBAPIError):
        session.execute(WRITES["update"])
