"""History: the hash-chained event log, ``qifu audit verify`` and ``qifu audit replay CASE --step K``.

Tampering is done the way an intruder with database access would: raw SQL against the ``event`` table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select, text

from engine import history
from engine.models import Event, HumanTask, Instance, Timer
from engine.process_engine import ProcessEngine
from tests.conftest import diagram
from web.cli import main


# --- helpers ---------------------------------------------------------------------------------------------
def qifu(db_url: str, *args: str):  # click.testing.Result
    return CliRunner().invoke(main, list(args), env={"QIFU_DATABASE_URL": db_url}, catch_exceptions=False)


@dataclass
class Snapshot:
    """What the case looked like after one step, read from the engine's own tables and state."""

    seq: int
    action: str
    data: dict
    open_tasks: list[tuple[str, str]]  # (element, task guid) of the open human tasks
    waiting: list[tuple[str, str]]  # (element, task guid) of the waiting timers
    completed: list[tuple[str, str]]  # (element, task guid) of every completed diagram element so far


def snapshot(engine: ProcessEngine, instance_id: int) -> Snapshot:
    with engine.session() as s:
        inst = s.get(Instance, instance_id)
        wf = engine.runtime.workflow(instance_id)
        [last] = s.scalars(select(Event).where(Event.instance_id == instance_id, Event.seq == inst.history_seq))
        return Snapshot(
            seq=inst.history_seq, action=last.action, data=json.loads(inst.data_json),
            open_tasks=sorted((r.spec_id, r.task_guid) for r in s.scalars(
                select(HumanTask).where(HumanTask.instance_id == instance_id))),
            waiting=sorted((r.spec_id, r.task_guid) for r in s.scalars(
                select(Timer).where(Timer.instance_id == instance_id, Timer.status == "waiting"))),
            completed=sorted((t.task_spec.bpmn_id, str(t.id)) for t in wf.get_tasks(state=TaskState.COMPLETED)
                             if t.task_spec.bpmn_id),
        )


def open_task(engine: ProcessEngine, instance_id: int, element: str) -> str:
    with engine.session() as s:
        [guid] = s.scalars(select(HumanTask.task_guid).where(HumanTask.instance_id == instance_id,
                                                             HumanTask.spec_id == element))
        return guid


def run_case(engine: ProcessEngine, clock, key: str = "HX-1") -> tuple[int, list[Snapshot]]:
    """A case with data, a non-interrupting timer, parallel tasks and several actors: 5 steps."""
    engine.deploy(diagram("timer_nonint.bpmn"), filename="timer_nonint.bpmn")
    steps = []
    iid = engine.runtime.start("timer_nonint", key, {"applicant": "张三", "topic": "噪音扰民"}, actor="clerk").instance_id
    steps.append(snapshot(engine, iid))
    clock.advance(days=1, minutes=5)
    assert engine.management.run_due_timers() == 1  # 催办: a second open task next to the first
    steps.append(snapshot(engine, iid))
    clock.advance(hours=2)
    engine.runtime.complete_task(open_task(engine, iid, "urge"), {}, actor="boss")
    steps.append(snapshot(engine, iid))
    clock.advance(hours=1)
    engine.runtime.complete_task(open_task(engine, iid, "handle"), {"result": "已协调"}, actor="clerk")
    steps.append(snapshot(engine, iid))
    assert [s.seq for s in steps] == [1, 2, 3, 4]
    return iid, steps


def row(engine: ProcessEngine, instance_id: int, seq: int) -> Event:
    with engine.session() as s:
        ev = s.scalar(select(Event).where(Event.instance_id == instance_id, Event.seq == seq))
        s.expunge(ev)
        return ev


def sql(engine: ProcessEngine, statement: str, **params) -> None:
    with engine.session() as s:
        s.execute(text(statement), params)


# --- the chain ----------------------------------------------------------------------------------------------
@pytest.mark.req("AU-1")
def test_every_step_appends_one_chained_row(engine, clock):
    iid, steps = run_case(engine, clock)
    with engine.session() as s:
        rows = history.event_rows(s, iid)
        inst = s.get(Instance, iid)
        assert [(r.seq, r.action) for r in rows] == [
            (1, "started"), (2, "timer_fired"), (3, "task_completed"), (4, "task_completed")]
        assert [rows[0].actor, rows[2].actor, rows[3].actor] == ["clerk", "boss", "clerk"]
        assert rows[1].actor  # the executor that fired the timer (host:pid:thread)
        assert rows[0].prev_hash == history.GENESIS
        assert all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:], strict=False))
        assert (inst.history_seq, inst.history_hash) == (4, rows[-1].hash)
        assert json.loads(rows[0].payload)["data_set"] == {"applicant": "张三", "topic": "噪音扰民"}
        assert json.loads(rows[3].payload)["data_set"] == {"result": "已协调"}
        assert rows[2].task_guid == steps[1].open_tasks[1][1] and rows[2].spec_id == "urge"
        assert history.verify(s) == []


@pytest.mark.req("AU-1")
def test_verify_passes_on_an_intact_history(engine, clock, db_url):
    run_case(engine, clock, "HX-1")
    run_case(engine, clock, "HX-2")
    result = qifu(db_url, "audit", "verify")
    assert result.exit_code == 0, result.output
    assert "历史记录完整" in result.output and "2 case chains" in result.output
    result = qifu(db_url, "--json", "audit", "verify")
    assert result.exit_code == 0
    report = json.loads(result.output)
    assert (report["ok"], report["problems"], report["first_broken"], report["checked"]) == (True, [], [], 2)


# --- tampering ---------------------------------------------------------------------------------------------
def tamper(engine: ProcessEngine, iid: int, how: str) -> tuple[int | None, int, str]:
    """Tamper with case ``iid``'s history; return (event id or None, seq) the report must name, and a word."""
    if how == "edit_payload":
        ev = row(engine, iid, 3)
        forged = ev.payload.replace('"boss"', '"nobody"').replace('"data_set":{}', '"data_set":{"result":"驳回"}')
        assert forged != ev.payload
        sql(engine, "UPDATE event SET payload = :p WHERE id = :id", p=forged, id=ev.id)
        return ev.id, 3, "edited"
    if how == "edit_actor":
        ev = row(engine, iid, 2)
        sql(engine, "UPDATE event SET actor = 'mallory' WHERE id = :id", id=ev.id)
        return ev.id, 2, "edited"
    if how == "edit_action":
        ev = row(engine, iid, 4)
        sql(engine, "UPDATE event SET action = 'task_cancelled' WHERE id = :id", id=ev.id)
        return ev.id, 4, "edited"
    if how == "edit_and_rehash":  # a careful intruder recomputes the edited row's own hash
        ev = row(engine, iid, 2)
        digest = history.event_hash(ev.prev_hash, instance_id=iid, seq=2, at=ev.at, actor="mallory",
                                    action=ev.action, task_guid=ev.task_guid, spec_id=ev.spec_id, payload=ev.payload)
        sql(engine, "UPDATE event SET actor = 'mallory', hash = :h WHERE id = :id", h=digest, id=ev.id)
        return ev.id, 2, "edited"
    if how in ("insert_forged_end", "insert_forged_end_valid_hash"):
        last = row(engine, iid, 4)
        payload = history.canonical({"data_set": {"result": "伪造"}, "completed": [], "active": []})
        at = datetime(2026, 10, 3, 1, 0, tzinfo=UTC)
        digest = (history.event_hash(last.hash, instance_id=iid, seq=5, at=at, actor="mallory", action="task_completed",
                                     task_guid=None, spec_id=None, payload=payload)
                  if how.endswith("valid_hash") else "f" * 64)
        with engine.session() as s:
            s.add(Event(instance_id=iid, seq=5, at=at, actor="mallory", action="task_completed", payload=payload,
                        prev_hash=last.hash, hash=digest))
            s.flush()
            forged_id = s.scalar(select(Event.id).where(Event.instance_id == iid, Event.seq == 5))
        return forged_id, 5, "inserted"
    if how == "insert_forged_middle":  # renumber the rows after seq 2 and slip a well-hashed row in at seq 3
        sql(engine, "UPDATE event SET seq = seq + 1000 WHERE instance_id = :i AND seq >= 3", i=iid)
        sql(engine, "UPDATE event SET seq = seq - 999 WHERE instance_id = :i AND seq >= 1000", i=iid)
        before = row(engine, iid, 2)
        payload = history.canonical({"data_set": {"result": "伪造"}, "completed": [], "active": []})
        at = datetime(2026, 10, 1, 3, 0, tzinfo=UTC)
        digest = history.event_hash(before.hash, instance_id=iid, seq=3, at=at, actor="mallory", action="task_completed",
                                    task_guid=None, spec_id=None, payload=payload)
        with engine.session() as s:
            s.add(Event(instance_id=iid, seq=3, at=at, actor="mallory", action="task_completed", payload=payload,
                        prev_hash=before.hash, hash=digest))
            s.flush()
            forged_id = s.scalar(select(Event.id).where(Event.instance_id == iid, Event.seq == 3))
        return forged_id, 3, "inserted"
    if how == "delete_middle":
        ev = row(engine, iid, 2)
        sql(engine, "DELETE FROM event WHERE id = :id", id=ev.id)
        return None, 2, "deleted"
    if how == "delete_first":
        ev = row(engine, iid, 1)
        sql(engine, "DELETE FROM event WHERE id = :id", id=ev.id)
        return None, 1, "deleted"
    if how == "delete_newest":
        ev = row(engine, iid, 4)
        sql(engine, "DELETE FROM event WHERE id = :id", id=ev.id)
        return None, 4, "deleted"
    raise AssertionError(how)


TAMPERING = ["edit_payload", "edit_actor", "edit_action", "edit_and_rehash", "insert_forged_end",
             "insert_forged_end_valid_hash", "insert_forged_middle", "delete_middle", "delete_first",
             "delete_newest"]


@pytest.mark.req("AU-1")
@pytest.mark.parametrize("how", TAMPERING)
def test_verify_fails_and_names_the_tampered_row(engine, clock, db_url, how):
    other, _ = run_case(engine, clock, "HX-OK")  # an untouched case next to it
    iid, _ = run_case(engine, clock, "HX-BAD")
    event_id, seq, word = tamper(engine, iid, how)

    result = qifu(db_url, "audit", "verify")
    assert result.exit_code == 1, result.output
    where = f"event id={event_id} seq={seq}" if event_id is not None else f"seq={seq}"
    lines = [line for line in result.output.splitlines() if line.startswith("篡改")]
    named = [line for line in lines if f"instance {iid}, {where}:" in line]
    assert named, result.output
    assert any(word in line for line in named), result.output
    assert not any(f"instance {other}," in line for line in lines), result.output

    result = qifu(db_url, "--json", "audit", "verify")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["ok"] is False
    assert {"instance_id": iid, "event_id": event_id, "seq": seq} in [
        {k: p[k] for k in ("instance_id", "event_id", "seq")} for p in report["problems"]]
    assert {p["instance_id"] for p in report["problems"]} == {iid}


@pytest.mark.req("AU-1")
def test_verify_reports_a_tampered_chain_head(engine, clock, db_url):
    iid, _ = run_case(engine, clock)
    sql(engine, "UPDATE instance SET history_seq = 3 WHERE id = :i", i=iid)
    result = qifu(db_url, "audit", "verify")
    assert result.exit_code == 1 and f"instance {iid}," in result.output


# --- replay ---------------------------------------------------------------------------------------------------
def _ready(active: list[dict]) -> list[tuple[str, str]]:
    return sorted((a["element"], a["task"]) for a in active if a["state"] == "ready")


def _waiting(active: list[dict]) -> list[tuple[str, str]]:
    return sorted((a["element"], a["task"]) for a in active if a["state"] == "waiting")


@pytest.mark.req("AU-1")
def test_replay_at_step_k_matches_the_case_after_step_k(engine, clock, db_url):
    iid, steps = run_case(engine, clock)
    assert [s.action for s in steps] == ["started", "timer_fired", "task_completed", "task_completed"]
    assert [len(s.open_tasks) for s in steps] == [1, 2, 1, 0]  # the steps really differ

    for snap in steps:
        with engine.session() as s:
            st = history.replay(s, iid, snap.seq)
        assert (st.step, st.action) == (snap.seq, snap.action)
        assert st.data == snap.data
        assert _ready(st.active) == snap.open_tasks
        assert _waiting(st.active) == snap.waiting
        assert sorted((c["element"], c["task"]) for c in st.completed) == snap.completed
        assert all(c["seq"] <= snap.seq for c in st.completed)

        result = qifu(db_url, "--json", "audit", "replay", "HX-1", "--step", str(snap.seq))
        assert result.exit_code == 0, result.output
        out = json.loads(result.output)
        assert (out["instance"], out["step"], out["action"]) == (iid, snap.seq, snap.action)
        assert out["data"] == snap.data
        assert _ready(out["active"]) == snap.open_tasks
        assert _waiting(out["active"]) == snap.waiting
        assert sorted((c["element"], c["task"]) for c in out["completed"]) == snap.completed

    # the raw form (ids and codes as stored), after step 2: both tasks open, the data as started
    result = qifu(db_url, "audit", "replay", "HX-1", "--step", "2", "--raw")
    assert result.exit_code == 0, result.output
    assert "第 2 步" in result.output and "timer_fired" in result.output
    active_part = result.output.split("进行中:")[1].split("已完成:")[0]
    assert "handle  办理  (ready)" in active_part and "urge  催办  (ready)" in active_part
    assert '"applicant": "张三"' in result.output and "已协调" not in result.output

    # without --step: the newest; the case by id works as well as by business key
    with engine.session() as s:
        assert history.replay(s, iid).step == 4
    out = json.loads(qifu(db_url, "--json", "audit", "replay", str(iid)).output)
    assert out["step"] == 4 and out["data"]["result"] == "已协调" and out["active"] == []


@pytest.mark.req("AU-1")
def test_replay_refuses_steps_that_do_not_exist(engine, clock, db_url):
    run_case(engine, clock)
    for step in ("0", "5"):
        result = qifu(db_url, "audit", "replay", "HX-1", "--step", step)
        assert result.exit_code == 2 and "错误" in result.output
    result = qifu(db_url, "audit", "replay", "NO-SUCH-CASE")
    assert result.exit_code == 2 and "NO-SUCH-CASE" in result.output
