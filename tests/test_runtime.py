"""Instances: one transaction per step, form validation before any change, conflicts, crashes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.errors import ConflictError, FormValidationError, QifuError, ServiceTaskError
from engine.models import Event, HumanTask, Instance, Timer
from tests.conftest import diagram

RECEIVED = "2026-09-30T10:00:00+08:00"


def _snapshot(engine, instance_id: int) -> dict:
    """Everything a step writes for one instance."""
    with engine.session() as s:
        inst = s.get(Instance, instance_id)
        return {
            "instance": (inst.version, inst.status, inst.state_json, inst.data_json, inst.history_seq,
                         inst.history_hash),
            "tasks": sorted((t.task_guid, t.spec_id, t.assignee) for t in
                            s.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id))),
            "timers": sorted((t.task_guid, t.status, str(t.due_at)) for t in
                             s.scalars(select(Timer).where(Timer.instance_id == instance_id))),
            "events": s.scalar(select(func.count(Event.id)).where(Event.instance_id == instance_id)),
        }


def _open(engine, instance_id: int, spec_id: str) -> HumanTask:
    with engine.session() as s:
        return s.scalar(select(HumanTask).where(HumanTask.instance_id == instance_id, HumanTask.spec_id == spec_id))


@pytest.fixture
def simple(engine):
    engine.deploy(diagram("simple.bpmn"), filename="simple.bpmn")
    return engine.runtime.start("simple", "CASE-1", {"received": RECEIVED, "group": "受理组"}, actor="alice")


@pytest.mark.req("UI-1", "WD-1")
def test_start_opens_task_with_groups_from_data_and_working_day_due(engine, simple) -> None:
    task = _open(engine, simple.instance_id, "review")
    assert task.candidate_groups == "受理组" and task.name == "审核"
    # received on 2026-09-30 (last working day before National Day): 2 working days → 2026-10-09, 23:59:59 +08
    assert task.due_at.isoformat().startswith("2026-10-09T15:59:59")
    with engine.session() as s:
        timer = s.scalar(select(Timer).where(Timer.instance_id == simple.instance_id))
        assert timer.spec_id == "remind" and timer.interrupting is False and timer.attached_to == "review"
        inst = s.get(Instance, simple.instance_id)
        assert '"spec"' not in inst.state_json[:2000] and "task_specs" not in inst.state_json


def test_form_errors_change_nothing(engine, simple) -> None:
    task = _open(engine, simple.instance_id, "review")
    before = _snapshot(engine, simple.instance_id)
    bad = [
        {"comment": ""},                                   # required
        {"comment": "x" * 51},                             # maxlength
        {"comment": "ok", "days": "0"},                    # min
        {"comment": "ok", "days": "abc"},                  # type
        {"comment": "ok", "level": "urgent"},              # enum
        {"comment": "ok", "approved": "maybe"},            # boolean
        {"comment": "ok", "group": "admins"},              # not a form field: cannot overwrite case data
    ]
    for data in bad:
        with pytest.raises(FormValidationError) as info:
            engine.runtime.complete_task(task.task_guid, data, actor="bob")
        assert info.value.errors and all(isinstance(m, str) and m for m in info.value.errors.values())
    assert _snapshot(engine, simple.instance_id) == before


def test_complete_runs_service_and_gateway_and_records_history(engine, simple) -> None:
    task = _open(engine, simple.instance_id, "review")
    result = engine.runtime.complete_task(task.task_guid, {"comment": "同意办理", "approved": "true", "days": "5",
                                                           "level": "high"}, actor="bob")
    assert result.status == "completed"
    with engine.session() as s:
        inst = s.get(Instance, simple.instance_id)
        data = json.loads(inst.data_json)
        assert data["approved"] is True and data["days"] == 5 and data["notified"] == "同意办理"
        events = list(s.scalars(select(Event).where(Event.instance_id == simple.instance_id).order_by(Event.seq)))
        assert [e.action for e in events] == ["started", "task_completed"]
        assert events[1].actor == "bob"
        completed = [c["element"] for c in json.loads(events[1].payload)["completed"]]
        assert completed[:4] == ["review", "notify", "gw", "end_ok"]
        timers = list(s.scalars(select(Timer).where(Timer.instance_id == simple.instance_id)))
        assert [t.status for t in timers] == ["cancelled"]   # the reminder stopped waiting with its task
        assert s.scalar(select(func.count(HumanTask.id))) == 0


def test_second_completion_is_a_conflict(engine, simple) -> None:
    task = _open(engine, simple.instance_id, "review")
    engine.runtime.complete_task(task.task_guid, {"comment": "一"}, actor="bob")
    after_first = _snapshot(engine, simple.instance_id)
    with pytest.raises(ConflictError):
        engine.runtime.complete_task(task.task_guid, {"comment": "二"}, actor="carol")
    assert _snapshot(engine, simple.instance_id) == after_first


def test_stale_version_is_a_conflict(engine, simple) -> None:
    task = _open(engine, simple.instance_id, "review")
    before = _snapshot(engine, simple.instance_id)
    with pytest.raises(ConflictError):
        engine.runtime.complete_task(task.task_guid, {"comment": "x"}, expected_version=before["instance"][0] - 1)
    assert _snapshot(engine, simple.instance_id) == before


def test_concurrent_completions_one_wins(engine, simple, db_url, clock, services) -> None:
    """Two clerks submit the same task at the same moment: exactly one succeeds, one gets a conflict."""
    from engine.process_engine import ProcessEngine

    task = _open(engine, simple.instance_id, "review")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def submit(who: str) -> None:
        own = ProcessEngine(db_url, clock, services)
        barrier.wait()
        try:
            own.runtime.complete_task(task.task_guid, {"comment": who}, actor=who)
            outcomes.append("ok")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=submit, args=(w,)) for w in ("bob", "carol")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["conflict", "ok"]
    with engine.session() as s:
        assert s.scalar(select(func.count(Event.id)).where(Event.action == "task_completed")) == 1


def test_duplicate_business_key_is_refused(engine, simple) -> None:
    with pytest.raises(ConflictError):
        engine.runtime.start("simple", "CASE-1", {"received": RECEIVED, "group": "g"})


def test_writes_joined_to_a_start_commit_with_it_or_not_at_all(engine, simple) -> None:
    """``start(also=…)``: the caller's writes share the start's transaction (the API's idempotency record)."""
    seen = []

    def fails(session, result):
        seen.append(result.business_key)
        raise RuntimeError("调用方写入失败")

    with pytest.raises(RuntimeError):
        engine.runtime.start("simple", "CASE-2", {"received": RECEIVED, "group": "g"}, also=fails)
    assert seen == ["CASE-2"]
    with engine.session() as s:
        assert s.scalar(select(func.count(Instance.id)).where(Instance.business_key == "CASE-2")) == 0
        assert s.scalar(select(func.count(Event.id))) == 1  # only CASE-1's start

    def notes(session, result):
        session.add(Event(instance_id=result.instance_id, seq=99, at=engine.clock.now(), action="note",
                          payload="{}", prev_hash="", hash=""))

    done = engine.runtime.start("simple", "CASE-2", {"received": RECEIVED, "group": "g"}, also=notes)
    with engine.session() as s:
        assert s.scalar(select(func.count(Event.id)).where(Event.instance_id == done.instance_id)) == 2


def test_assignee_is_enforced(engine, simple) -> None:
    task = _open(engine, simple.instance_id, "review")
    engine.tasks.claim(task.task_guid, "bob")
    with pytest.raises(ConflictError):
        engine.tasks.claim(task.task_guid, "carol")
    with pytest.raises(ConflictError):
        engine.runtime.complete_task(task.task_guid, {"comment": "x"}, actor="carol")
    engine.runtime.complete_task(task.task_guid, {"comment": "x"}, actor="bob")


@pytest.mark.req("AU-1")
def test_claims_and_reassignments_are_in_the_history(engine, simple) -> None:
    from engine import history

    task = _open(engine, simple.instance_id, "review")
    engine.tasks.claim(task.task_guid, "bob")
    engine.tasks.claim(task.task_guid, "bob")  # again: nothing to record
    with pytest.raises(ConflictError):
        engine.tasks.claim(task.task_guid, "carol")
    engine.tasks.reassign(task.task_guid, "carol", actor="boss")
    engine.tasks.unclaim(task.task_guid, "carol")
    with engine.session() as s:
        events = history.events_for(s, simple.instance_id)
        moves = [(e.action, e.actor, e.details) for e in events if e.action.startswith("task_")]
        assert history.verify(s) == []
        assert s.scalar(select(HumanTask.assignee).where(HumanTask.task_guid == task.task_guid)) is None
    assert moves == [("task_claimed", "bob", {"assignee": "bob", "previous": None}),
                     ("task_reassigned", "boss", {"assignee": "carol", "previous": "bob"}),
                     ("task_unclaimed", "carol", {"assignee": None, "previous": "carol"})]


# --- crashes ----------------------------------------------------------------------------------------------
@pytest.fixture
def crash_case(engine, services):
    calls: list[str] = []

    def work(call):
        calls.append(call.params.get("mode", "ok"))
        if call.data.get("note") == "boom":
            # half-way: the step has already run a script task and written to the session
            raise RuntimeError("外部系统不可用")
        return {"next_group": "后续组", "worked": True}

    services.register("work", work)
    engine.deploy(diagram("crash.bpmn"), filename="crash.bpmn")
    started = engine.runtime.start("crash", "CRASH-1", {}, actor="alice")
    return started, calls


def test_exception_half_way_leaves_last_committed_step(engine, crash_case) -> None:
    started, calls = crash_case
    task = _open(engine, started.instance_id, "fill")
    before = _snapshot(engine, started.instance_id)
    with pytest.raises(QifuError):
        engine.runtime.complete_task(task.task_guid, {"note": "boom"}, actor="bob")
    assert calls == ["ok"]  # the handler really ran
    assert _snapshot(engine, started.instance_id) == before
    result = engine.runtime.complete_task(task.task_guid, {"note": "fine"}, actor="bob")  # still workable
    after = _open(engine, started.instance_id, "after")
    assert result.status == "running" and after.candidate_groups == "后续组"
    with engine.session() as s:
        assert json.loads(s.get(Instance, started.instance_id).data_json)["score"] == 8


def test_handler_error_is_structured(engine, crash_case) -> None:
    started, _ = crash_case
    task = _open(engine, started.instance_id, "fill")
    with pytest.raises(ServiceTaskError) as info:
        engine.runtime.complete_task(task.task_guid, {"note": "boom"}, actor="bob")
    assert info.value.to_dict()["error"] == "service_task_failed"


KILL_SCRIPT = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {root!r})
    from engine.clock import FixedClock
    from engine.process_engine import ProcessEngine
    from engine.services import ServiceRegistry
    services = ServiceRegistry()
    def work(call):
        call.session.flush()      # the step's writes so far are in the open transaction
        os._exit(9)               # the process dies half-way through the step
    services.register("work", work)
    engine = ProcessEngine({url!r}, FixedClock("2026-09-30T10:00:00"), services)
    engine.runtime.complete_task({task!r}, {{"note": "killed"}}, actor="bob")
""")


def test_killed_process_leaves_last_committed_step(engine, crash_case, db_url) -> None:
    started, _ = crash_case
    task = _open(engine, started.instance_id, "fill")
    before = _snapshot(engine, started.instance_id)
    root = str(Path(__file__).resolve().parent.parent)
    script = KILL_SCRIPT.format(root=root, url=db_url, task=task.task_guid)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    assert _snapshot(engine, started.instance_id) == before
    engine.runtime.complete_task(task.task_guid, {"note": "again"}, actor="bob")
    assert _open(engine, started.instance_id, "after") is not None


@pytest.mark.req("BP-3")
def test_timer_does_not_fire_before_its_due_instant(engine, simple, clock) -> None:
    """Due instants read back from the database are UTC (SQLite returns them naive): never early by 8 hours."""
    with engine.session() as s:
        timer = s.scalar(select(Timer).where(Timer.instance_id == simple.instance_id))
        assert timer.due_at.tzinfo is not None
        assert timer.due_at.isoformat() == "2026-10-09T15:59:59+00:00"
    clock.set("2026-10-09T23:59:58")        # Shanghai wall time, one second before the deadline ends
    assert engine.management.fire_timer(timer.id) is False
    assert engine.management.run_due_timers() == 0
    clock.set("2026-10-10T00:00:00")
    assert engine.management.fire_timer(timer.id) is True
    assert engine.management.fire_timer(timer.id) is False


def test_agreed_date_moves_the_deadline_with_its_reason(engine, simple) -> None:
    """An agreed completion date rewrites the stored due instant of the timer and the task, and says why."""
    with engine.session() as s:
        timer = s.scalar(select(Timer).where(Timer.instance_id == simple.instance_id))
    before = _snapshot(engine, simple.instance_id)
    with pytest.raises(QifuError):
        engine.management.reschedule_timer(timer.id, "2026-10-20T23:59:59+08:00", reason="  ", actor="bob")
    assert _snapshot(engine, simple.instance_id) == before
    engine.management.reschedule_timer(timer.id, "2026-10-20T23:59:59+08:00", reason="与企业约定办结时间", actor="bob")
    with engine.session() as s:
        moved = s.get(Timer, timer.id)
        task = s.scalar(select(HumanTask).where(HumanTask.instance_id == simple.instance_id))
        event = s.scalar(select(Event).where(Event.instance_id == simple.instance_id).order_by(Event.seq.desc()))
    assert moved.due_at.isoformat() == "2026-10-20T15:59:59+00:00" and moved.status == "waiting"
    assert task.due_at == moved.due_at
    details = json.loads(event.payload)["details"]
    assert event.action == "timer_rescheduled" and event.actor == "bob"
    assert details["reason"] == "与企业约定办结时间" and details["from"].startswith("2026-10-09T15:59:59")


def test_cli_task_list_shows_deadlines_in_beijing_time(engine, simple, db_url) -> None:
    """People read the due instant as Beijing wall time; ``--json`` keeps the stored UTC instant."""
    from click.testing import CliRunner

    from web.cli import main

    def qifu(*args: str):
        return CliRunner().invoke(main, list(args), env={"QIFU_DATABASE_URL": db_url}, catch_exceptions=False)

    text_out = qifu("task", "list").output
    assert "期限 2026-10-09 23:59 (北京时间)" in text_out and "15:59" not in text_out
    assert "2026-10-09 15:59:59+00:00" in qifu("--json", "task", "list").output
