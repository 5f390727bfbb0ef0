"""Timers: due rows, the paths boundary / intermediate / cycle timers take, exactly-once firing, start-up.

Every test runs on SQLite and, when ``QIFU_TEST_PG_URL`` is set, on PostgreSQL. The races run two executors
(each its own :class:`ProcessEngine`, own connections) in threads against the same due timers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text

from engine import db, history, jobs
from engine.clock import FixedClock, SystemClock, to_utc
from engine.models import Event, HumanTask, Instance, Timer
from engine.process_engine import ProcessEngine
from tests.conftest import diagram

START = to_utc("2026-09-30T10:00:00")  # the clock fixture's reading


# --- helpers ---------------------------------------------------------------------------------------------
def deploy(engine: ProcessEngine, name: str) -> None:
    engine.deploy(diagram(f"{name}.bpmn"), filename=f"{name}.bpmn")


def db_utc(value: datetime | None) -> datetime | None:
    """A timestamp read back from the database as aware UTC (SQLite hands back naive UTC)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def timers(engine: ProcessEngine, instance_id: int | None = None) -> list[Timer]:
    with engine.session() as s:
        query = select(Timer).order_by(Timer.id)
        if instance_id is not None:
            query = query.where(Timer.instance_id == instance_id)
        rows = list(s.scalars(query))
        s.expunge_all()
        return rows


def open_tasks(engine: ProcessEngine, instance_id: int) -> list[HumanTask]:
    with engine.session() as s:
        rows = list(s.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id).order_by(HumanTask.id)))
        s.expunge_all()
        return rows


def task_ids(engine: ProcessEngine, instance_id: int) -> list[str]:
    return sorted(t.spec_id for t in open_tasks(engine, instance_id))


def the_task(engine: ProcessEngine, instance_id: int, spec_id: str) -> HumanTask:
    rows = [t for t in open_tasks(engine, instance_id) if t.spec_id == spec_id]
    assert len(rows) == 1, f"expected one open {spec_id}, got {len(rows)}"
    return rows[0]


def events(engine: ProcessEngine, instance_id: int) -> list[Event]:
    with engine.session() as s:
        rows = history.event_rows(s, instance_id)
        s.expunge_all()
        return rows


def status(engine: ProcessEngine, instance_id: int) -> str:
    with engine.session() as s:
        return s.get(Instance, instance_id).status


def completed_elements(engine: ProcessEngine, instance_id: int) -> list[str]:
    return [c["element"] for ev in events(engine, instance_id) for c in json.loads(ev.payload)["completed"]]


def fired_events_per_timer(engine: ProcessEngine) -> Counter[int]:
    with engine.session() as s:
        payloads = s.scalars(select(Event.payload).where(Event.action == "timer_fired"))
        return Counter(json.loads(p)["details"]["timer"] for p in payloads)


# --- interrupting boundary timer ----------------------------------------------------------------------------
@pytest.mark.req("BP-3")
def test_interrupting_boundary_timer_cancels_the_task_and_escalates(engine, clock):
    deploy(engine, "timer_boundary")
    iid = engine.runtime.start("timer_boundary", "TB-1", {"topic": "噪音"}, actor="clerk").instance_id

    [row] = timers(engine, iid)
    assert (row.status, row.spec_id, row.kind, row.interrupting, row.attached_to) == (
        "waiting", "overdue", "duration", True, "handle")
    assert db_utc(row.due_at) == START + timedelta(days=2)
    handle = the_task(engine, iid, "handle")
    assert db_utc(handle.due_at) == START + timedelta(days=2)  # the task's deadline is its boundary timer

    clock.advance(days=1)
    assert engine.management.run_due_timers() == 0
    clock.set(START + timedelta(days=2))  # due exactly now
    assert engine.management.run_due_timers() == 1

    [row] = timers(engine, iid)
    assert row.status == "fired" and db_utc(row.fired_at) == START + timedelta(days=2)
    assert task_ids(engine, iid) == ["escalate"]  # the interrupted task is gone
    assert engine.management.run_due_timers() == 0  # nothing fires twice

    engine.runtime.complete_task(the_task(engine, iid, "escalate").task_guid, {}, actor="boss")
    assert status(engine, iid) == "completed"
    done = completed_elements(engine, iid)
    assert "end_escalated" in done and "end_ok" not in done and "handle" not in done
    assert [e.action for e in events(engine, iid)] == ["started", "timer_fired", "task_completed"]


@pytest.mark.req("BP-3")
def test_task_done_before_the_deadline_cancels_its_timer(engine, clock):
    deploy(engine, "timer_boundary")
    iid = engine.runtime.start("timer_boundary", "TB-2", {}, actor="clerk").instance_id
    clock.advance(days=1)
    engine.runtime.complete_task(the_task(engine, iid, "handle").task_guid, {"result": "ok"}, actor="clerk")

    [row] = timers(engine, iid)
    assert row.status == "cancelled"
    assert status(engine, iid) == "completed"
    clock.advance(days=10)
    assert engine.management.run_due_timers() == 0
    assert engine.management.fire_timer(row.id) is False
    assert "end_ok" in completed_elements(engine, iid)
    assert [e.action for e in events(engine, iid)] == ["started", "task_completed"]


# --- non-interrupting boundary timer ----------------------------------------------------------------------
@pytest.mark.req("BP-3")
def test_non_interrupting_boundary_timer_adds_a_task_and_keeps_the_original(engine, clock):
    deploy(engine, "timer_nonint")
    iid = engine.runtime.start("timer_nonint", "TN-1", {}, actor="clerk").instance_id
    handle = the_task(engine, iid, "handle")
    [row] = timers(engine, iid)
    assert row.interrupting is False and db_utc(row.due_at) == START + timedelta(days=1)

    clock.advance(days=1, hours=1)
    assert engine.management.run_due_timers() == 1
    assert task_ids(engine, iid) == ["handle", "urge"]
    assert the_task(engine, iid, "handle").task_guid == handle.task_guid  # the very same task, still open
    assert [t.status for t in timers(engine, iid)] == ["fired"]  # a duration fires once, no new row
    clock.advance(days=5)
    assert engine.management.run_due_timers() == 0

    engine.runtime.complete_task(handle.task_guid, {"result": "done"}, actor="clerk")
    assert status(engine, iid) == "running"  # the 催办 branch is still open
    assert task_ids(engine, iid) == ["urge"]
    engine.runtime.complete_task(the_task(engine, iid, "urge").task_guid, {}, actor="boss")
    assert status(engine, iid) == "completed"
    assert {"end_ok", "urge_end"} <= set(completed_elements(engine, iid))


# --- intermediate timer -----------------------------------------------------------------------------------
@pytest.mark.req("BP-3")
def test_intermediate_timer_waits_between_two_tasks(engine, clock):
    deploy(engine, "timer_intermediate")
    iid = engine.runtime.start("timer_intermediate", "TI-1", {}, actor="clerk").instance_id
    assert timers(engine, iid) == []
    clock.advance(hours=2)
    engine.runtime.complete_task(the_task(engine, iid, "first").task_guid, {"wait_days": 3}, actor="clerk")

    [row] = timers(engine, iid)
    assert (row.spec_id, row.kind, row.interrupting, row.status) == ("wait", "duration", None, "waiting")
    assert db_utc(row.due_at) == START + timedelta(days=3, hours=2)  # ${"P%dD" % wait_days} from completion
    assert task_ids(engine, iid) == []  # nothing to do while the case waits

    clock.advance(days=3)
    assert engine.management.run_due_timers() == 1
    assert task_ids(engine, iid) == ["second"]
    assert timers(engine, iid)[0].status == "fired"
    engine.runtime.complete_task(the_task(engine, iid, "second").task_guid, {}, actor="clerk")
    assert status(engine, iid) == "completed"


# --- cycles ---------------------------------------------------------------------------------------------------
@pytest.mark.req("BP-3")
def test_cycle_timer_fires_three_times_then_stops(engine, clock):
    deploy(engine, "timer_cycle")
    iid = engine.runtime.start("timer_cycle", "TC-1", {}, actor="clerk").instance_id
    handle = the_task(engine, iid, "handle")
    for n in (1, 2, 3):
        waiting = [t for t in timers(engine, iid) if t.status == "waiting"]
        assert [(t.occurrence, db_utc(t.due_at)) for t in waiting] == [(n, START + timedelta(days=n))]
        clock.set(START + timedelta(days=n, minutes=1))
        assert engine.management.run_due_timers() == 1
        assert task_ids(engine, iid) == ["handle"] + ["reminder"] * n
        assert engine.management.run_due_timers() == 0
    rows = timers(engine, iid)
    assert [(t.occurrence, t.status) for t in rows] == [(1, "fired"), (2, "fired"), (3, "fired")]
    assert len({t.task_guid for t in rows}) == 1  # one waiting boundary event, three occurrences

    clock.advance(days=30)
    assert engine.management.run_due_timers() == 0
    assert len(timers(engine, iid)) == 3
    assert the_task(engine, iid, "handle").task_guid == handle.task_guid
    assert completed_elements(engine, iid).count("log_reminder") == 3  # the echo service ran per firing
    with engine.session() as s:
        assert json.loads(s.get(Instance, iid).data_json)["echoed"] == "提醒"


@pytest.mark.req("BP-3")
def test_cycle_stops_when_its_task_is_completed(engine, clock):
    deploy(engine, "timer_cycle")
    iid = engine.runtime.start("timer_cycle", "TC-2", {}, actor="clerk").instance_id
    clock.advance(days=1, minutes=1)
    assert engine.management.run_due_timers() == 1
    engine.runtime.complete_task(the_task(engine, iid, "handle").task_guid, {}, actor="clerk")
    assert [(t.occurrence, t.status) for t in timers(engine, iid)] == [(1, "fired"), (2, "cancelled")]
    clock.advance(days=10)
    assert engine.management.run_due_timers() == 0
    assert task_ids(engine, iid) == ["reminder"]  # what the first firing started carries on (BPMN)
    assert status(engine, iid) == "running"
    engine.runtime.complete_task(the_task(engine, iid, "reminder").task_guid, {}, actor="boss")
    assert status(engine, iid) == "completed"
    assert {"end_ok", "reminder_end"} <= set(completed_elements(engine, iid))


@pytest.mark.req("BP-3")
def test_cycle_occurrences_missed_during_downtime_fire_once_at_start_up(engine, clock):
    """Ten days down: the overdue reminder fires once; the occurrences also missed are spent, not replayed."""
    deploy(engine, "timer_cycle")
    iid = engine.runtime.start("timer_cycle", "TC-3", {}, actor="clerk").instance_id
    clock.advance(days=10)  # nothing ran for ten days
    scheduler = jobs.TimerScheduler(engine.management.run_due_timers, lambda: _next_due(engine), poll_seconds=3600)
    try:
        scheduler.start()
        assert [t.status for t in timers(engine, iid)] == ["fired"]
        assert task_ids(engine, iid) == ["handle", "reminder"]
        fired = [e for e in events(engine, iid) if e.action == "timer_fired"]
        assert len(fired) == 1 and "错过的 2 次周期定时" in json.dumps(json.loads(fired[0].payload), ensure_ascii=False)
    finally:
        scheduler.shutdown()


def test_a_cycle_after_downtime_fires_once_then_keeps_its_rhythm(engine, clock):
    deploy(engine, "timer_cycle")
    iid = engine.runtime.start("timer_cycle", "TC-4", {}, actor="clerk").instance_id
    [first] = timers(engine, iid)
    period = to_utc(first.due_at) - START  # the cycle's first occurrence is one period after the start
    clock.set(START + period * 2 + timedelta(hours=1))  # two occurrences missed
    assert engine.management.run_due_timers() == 1
    assert engine.management.run_due_timers() == 0  # the second missed one is not replayed
    waiting = [t for t in timers(engine, iid) if t.status == "waiting"]
    assert [to_utc(t.due_at) for t in waiting] == [START + period * 3]  # the next one, on the old rhythm


# --- not yet due / downtime / the scheduler -----------------------------------------------------------
def _next_due(engine: ProcessEngine) -> datetime | None:
    with engine.session() as s:
        return jobs.next_due(s)


@pytest.mark.req("BP-3")
def test_a_timer_not_yet_due_does_not_fire(engine, clock):
    deploy(engine, "timer_boundary")
    iid = engine.runtime.start("timer_boundary", "ND-1", {}, actor="clerk").instance_id
    [row] = timers(engine, iid)
    assert _next_due(engine) == START + timedelta(days=2)

    clock.set(START + timedelta(days=2) - timedelta(seconds=1))
    assert engine.management.run_due_timers() == 0
    assert engine.management.fire_timer(row.id) is False  # asking for it explicitly changes nothing
    clock.set(START + timedelta(days=2) - timedelta(hours=1))
    assert engine.management.fire_timer(row.id) is False
    assert timers(engine, iid)[0].status == "waiting"
    assert task_ids(engine, iid) == ["handle"]
    assert [e.action for e in events(engine, iid)] == ["started"]

    scheduler = jobs.TimerScheduler(engine.management.run_due_timers, lambda: _next_due(engine), poll_seconds=3600)
    try:
        scheduler.start()
        assert scheduler.tick() == 0
        assert timers(engine, iid)[0].status == "waiting"
    finally:
        scheduler.shutdown()


@pytest.mark.req("BP-3")
def test_a_timer_due_during_downtime_fires_at_start_up(db_url, clock, services):
    from web.cli.setup import _scheduler  # exactly what `qifu serve` and `qifu worker` start

    before = ProcessEngine(db_url, clock, services)
    deploy(before, "timer_boundary")
    due_iid = before.runtime.start("timer_boundary", "DT-1", {}, actor="clerk").instance_id
    clock.advance(days=1)
    later_iid = before.runtime.start("timer_boundary", "DT-2", {}, actor="clerk").instance_id
    # ... the server goes down; two and a half days pass; DT-1's deadline passes meanwhile, DT-2's does not.
    clock.advance(days=1, hours=12)

    after = ProcessEngine(db_url, clock, services)
    scheduler = _scheduler(after)
    try:
        scheduler.start()  # fires what fell due while nothing was running, before returning
        assert [t.status for t in timers(after, due_iid)] == ["fired"]
        assert task_ids(after, due_iid) == ["escalate"]
        assert [t.status for t in timers(after, later_iid)] == ["waiting"]
        assert task_ids(after, later_iid) == ["handle"]
        [fired] = [e for e in events(after, due_iid) if e.action == "timer_fired"]
        assert db_utc(fired.at) == clock.now()
        assert json.loads(fired.payload)["details"]["due_at"] == (START + timedelta(days=2)).isoformat()
    finally:
        scheduler.shutdown()


@pytest.mark.req("BP-3")
def test_scheduler_wakes_when_the_next_timer_falls_due(db_url, services):
    """Real time: the executor loop sleeps until the next due instant and fires the timer then, not on the poll."""
    engine = ProcessEngine(db_url, SystemClock(), services)
    deploy(engine, "timer_boundary")
    iid = engine.runtime.start("timer_boundary", "WK-1", {}, actor="clerk").instance_id
    [row] = timers(engine, iid)
    due = datetime.now(UTC) + timedelta(seconds=1.5)
    engine.management.reschedule_timer(row.id, due, reason="测试: 一秒半后到期", actor="admin")

    scheduler = jobs.TimerScheduler(engine.management.run_due_timers, lambda: _next_due(engine), poll_seconds=3600)
    try:
        scheduler.start()
        assert timers(engine, iid)[0].status == "waiting"  # not due yet at start-up
        deadline = time.monotonic() + 15
        while timers(engine, iid)[0].status == "waiting" and time.monotonic() < deadline:
            time.sleep(0.1)
        row = timers(engine, iid)[0]
        assert row.status == "fired"
        assert db_utc(row.fired_at) >= due
        assert task_ids(engine, iid) == ["escalate"]
    finally:
        scheduler.shutdown()


def test_scheduler_does_not_spin_on_a_due_timer_it_cannot_fire():
    """A due row that the executor cannot fire right now (e.g. its case is busy) waits for the poll."""
    calls = []

    def run_due() -> int:
        calls.append(time.monotonic())
        return 0

    past = datetime.now(UTC) - timedelta(hours=1)
    scheduler = jobs.TimerScheduler(run_due, lambda: past, poll_seconds=3600)
    try:
        scheduler.start()
        time.sleep(0.6)
    finally:
        scheduler.shutdown()
    assert len(calls) <= 2, f"the executor ran {len(calls)} times in 0.6 s"


# --- failures ----------------------------------------------------------------------------------------------------
@pytest.mark.req("BP-3")
def test_a_failing_firing_rolls_back_and_is_retried_then_given_up(engine, clock, services):
    deploy(engine, "timer_cycle")
    iid = engine.runtime.start("timer_cycle", "FL-1", {}, actor="clerk").instance_id
    fail = {"on": True}

    def flaky(call):
        if fail["on"]:
            raise RuntimeError("下游服务不可用")
        return {"echoed": call.params.get("what")}

    services.register("echo", flaky)
    clock.advance(days=1, minutes=1)
    assert engine.management.run_due_timers() == 0
    [row] = timers(engine, iid)
    assert (row.status, row.attempts, row.fired_at) == ("waiting", 1, None)
    assert "下游服务不可用" in row.last_error
    assert task_ids(engine, iid) == ["handle"]
    assert [e.action for e in events(engine, iid)] == ["started"]  # the step rolled back entirely

    fail["on"] = False
    assert engine.management.run_due_timers() == 1
    assert fired_events_per_timer(engine) == {row.id: 1}
    assert task_ids(engine, iid) == ["handle", "reminder"]

    fail["on"] = True
    clock.advance(days=1)
    for _ in range(jobs.MAX_ATTEMPTS):
        assert engine.management.run_due_timers() == 0
    second = timers(engine, iid)[1]
    assert (second.occurrence, second.status, second.attempts) == (2, "failed", jobs.MAX_ATTEMPTS)
    assert engine.management.run_due_timers() == 0  # given up: not retried for ever
    assert _next_due(engine) is None


# --- exactly once ---------------------------------------------------------------------------------------------------
def _due_cases(engine: ProcessEngine, clock: FixedClock, n: int) -> list[int]:
    deploy(engine, "timer_boundary")
    ids = [engine.runtime.start("timer_boundary", f"RACE-{i:02d}", {}, actor="clerk").instance_id for i in range(n)]
    clock.advance(days=2, minutes=1)
    return ids


def _assert_fired_exactly_once(engine: ProcessEngine, instance_ids: list[int]) -> None:
    rows = timers(engine)
    assert len(rows) == len(instance_ids)
    assert all(r.status == "fired" and r.fired_at is not None and r.claimed_by for r in rows)
    assert fired_events_per_timer(engine) == {r.id: 1 for r in rows}
    for iid in instance_ids:
        assert task_ids(engine, iid) == ["escalate"]
        assert [e.action for e in events(engine, iid)] == ["started", "timer_fired"]
    with engine.session() as s:
        assert s.scalar(select(text("count(*)")).select_from(HumanTask.__table__)) == len(instance_ids)
        assert history.verify(s) == []


def _run_threads(targets: list) -> list:
    results: list = [None] * len(targets)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = targets[i]()
        except BaseException as exc:  # re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(targets))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "an executor hung"
    if errors:
        raise errors[0]
    return results


@pytest.mark.req("BP-3")
@pytest.mark.parametrize("executors", [2, 4])
def test_executors_racing_on_the_same_due_timers_fire_each_once(db_url, clock, services, executors):
    setup = ProcessEngine(db_url, clock, services)
    ids = _due_cases(setup, clock, 20)
    engines = [ProcessEngine(db_url, clock, services) for _ in range(executors)]
    barrier = threading.Barrier(executors)

    def executor(i: int):
        def run() -> int:
            barrier.wait()
            total = 0
            while n := engines[i].management.run_due_timers(worker=f"executor-{i}"):
                total += n
            return total
        return run

    fired = _run_threads([executor(i) for i in range(executors)])
    assert sum(fired) == 20
    _assert_fired_exactly_once(setup, ids)
    assert Counter(t.claimed_by for t in timers(setup)) == {f"executor-{i}": n for i, n in enumerate(fired) if n}


@pytest.mark.req("BP-3")
def test_two_executors_firing_the_same_timer_at_once_fire_it_once(db_url, clock, services):
    setup = ProcessEngine(db_url, clock, services)
    ids = _due_cases(setup, clock, 10)
    a, b = ProcessEngine(db_url, clock, services), ProcessEngine(db_url, clock, services)
    for row in timers(setup):
        barrier = threading.Barrier(2)

        def fire(engine: ProcessEngine, worker: str, timer_id: int = row.id, barrier=barrier):
            def run() -> bool:
                barrier.wait()
                return engine.management.fire_timer(timer_id, worker)
            return run

        results = _run_threads([fire(a, "A"), fire(b, "B")])
        assert sorted(results) == [False, True], results
        winner = "A" if results[0] else "B"
        assert timers(setup)[[r.id for r in timers(setup)].index(row.id)].claimed_by == winner
    _assert_fired_exactly_once(setup, ids)


@pytest.mark.req("BP-3")
@pytest.mark.postgres_only
def test_postgres_executor_skips_rows_locked_by_another(db_url, clock, services):
    """On PostgreSQL a row another executor holds (``FOR UPDATE``) is skipped, not waited for, and not fired."""
    setup = ProcessEngine(db_url, clock, services)
    ids = _due_cases(setup, clock, 3)
    locked = timers(setup)[0].id
    with setup.session() as holder:  # another executor, mid-transaction on the first timer
        holder.execute(select(Timer).where(Timer.id == locked).with_for_update())
        with setup.session() as s:
            assert locked not in jobs.due_timer_ids(s, clock.now())
        other = ProcessEngine(db_url, clock, services)
        assert other.management.run_due_timers(worker="other") == 2
    assert [t.status for t in timers(setup)] == ["waiting", "fired", "fired"]
    assert setup.management.run_due_timers() == 1
    _assert_fired_exactly_once(setup, ids)


# --- `qifu worker`: separate processes ---------------------------------------------------------------------
class Worker:
    """``qifu worker`` in a process of its own; its output is collected line by line."""

    def __init__(self, db_url: str) -> None:
        env = {**os.environ, "QIFU_DATABASE_URL": db_url, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-c", "from web.cli import main; main()", "worker"],
                                     env=env, cwd=Path(__file__).parent.parent, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(iter(self.proc.stdout.readline, "")),
                                        daemon=True)
        self._reader.start()

    @property
    def started(self) -> bool:
        return any("定时器执行器已启动" in line for line in self.lines)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)
        return self.proc.returncode


@pytest.mark.req("BP-3")
def test_qifu_worker_processes_racing_fire_timers_due_during_downtime_once(db_url, clock, services):
    """Cases whose deadlines passed while nothing ran (the fixed clock is weeks behind the real one); two
    ``qifu worker`` processes start at once on the same database: every timer fires exactly once."""
    setup = ProcessEngine(db_url, clock, services)
    ids = _due_cases(setup, clock, 12)
    workers = [Worker(db_url), Worker(db_url)]
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
                all(w.started for w in workers) and all(t.status != "waiting" for t in timers(setup))):
            assert all(w.proc.poll() is None for w in workers), [w.lines for w in workers]
            time.sleep(0.2)
    finally:
        codes = [w.stop() for w in workers]
    assert codes == [0, 0], [w.lines for w in workers]
    assert all(w.started for w in workers)
    _assert_fired_exactly_once(setup, ids)


def test_timer_rows_are_indexed_by_status_and_due_instant(engine):
    indexes = {ix["name"]: ix["column_names"] for ix in inspect(db.get_engine(engine.url)).get_indexes("timer")}
    assert indexes["ix_timer_due_open"] == ["status", "due_at"]
