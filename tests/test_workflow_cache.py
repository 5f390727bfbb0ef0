"""The live-workflow cache and the row mirrors: a step that trusts memory must equal one that reads the row.

The suite runs with ``QIFU_VERIFY_STEPS=1`` (tests/conftest.py), so every step elsewhere also checks a reused
workflow against the stored state and the task/timer rows against the workflow. These tests show that the
checks can fail, and that the cache is never trusted when the row says otherwise.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import delete, select, update

from engine import history
from engine.errors import QifuError
from engine.models import HumanTask, Instance, Timer
from engine.process_engine import ProcessEngine
from engine.workflow_cache import CacheMismatch
from tests.conftest import diagram

RECEIVED = "2026-09-30T10:00:00+08:00"


def _open_task(engine: ProcessEngine, instance_id: int) -> str:
    with engine.session() as s:
        return s.scalar(select(HumanTask.task_guid).where(HumanTask.instance_id == instance_id))


def _row(engine: ProcessEngine, instance_id: int) -> Instance:
    with engine.session() as s:
        row = s.get(Instance, instance_id)
        s.expunge(row)
        return row


@pytest.fixture
def simple(engine: ProcessEngine):
    engine.deploy(diagram("simple.bpmn"), filename="simple.bpmn")
    return engine.runtime.start("simple", "C-1", {"received": RECEIVED, "group": "受理组"}, actor="alice")


def test_a_step_reuses_the_workflow_its_process_saved(engine, simple) -> None:
    cache = engine.cache
    assert len(cache) == 1  # the start step left its workflow
    hits = cache.hits
    result = engine.runtime.complete_task(_open_task(engine, simple.instance_id), {"comment": "同意"}, actor="bob")
    assert cache.hits == hits + 1
    assert result.status == "completed" and len(cache) == 0  # a finished case takes no more steps


def test_a_claim_keeps_the_cached_workflow(engine, simple) -> None:
    """Claiming changes the row's version and history but not the workflow: the next step still hits."""
    guid = _open_task(engine, simple.instance_id)
    hits = engine.cache.hits
    engine.tasks.claim(guid, "bob")
    engine.runtime.complete_task(guid, {"comment": "同意"}, actor="bob")
    assert engine.cache.hits == hits + 2  # the claim re-filed it, the completion used it


def test_cached_and_rebuilt_workflows_give_the_same_case(engine, services, clock, db_url) -> None:
    """The same path with the cache and without it: same rows, same data, same history actions."""
    engine.deploy(diagram("simple.bpmn"), filename="simple.bpmn")
    cold = ProcessEngine(db_url, clock, services)
    cold.cache.size = 0  # every step rebuilds from the row

    outcomes = []
    for eng, key in ((engine, "WARM"), (cold, "COLD")):
        iid = eng.runtime.start("simple", key, {"received": RECEIVED, "group": "受理组"}, actor="alice").instance_id
        result = eng.runtime.complete_task(_open_task(eng, iid), {"comment": "同意"}, actor="bob")
        with eng.session() as s:
            inst = s.get(Instance, iid)
            tasks = sorted(t.spec_id for t in s.scalars(select(HumanTask).where(HumanTask.instance_id == iid)))
            actions = [e.action for e in history.events_for(s, iid)]
            outcomes.append((result.status, inst.version, json.loads(inst.data_json), tasks, actions))
    assert engine.cache.hits >= 1 and cold.cache.hits == 0
    assert outcomes[0] == outcomes[1]


def test_a_failed_step_leaves_nothing_in_the_cache(engine, services) -> None:
    """A step that fails half-way changed the workflow object in place; it must not be used again."""
    def work(call):
        if call.data.get("note") == "boom":
            raise RuntimeError("外部系统不可用")
        return {"next_group": "后续组", "worked": True}

    services.register("work", work)
    engine.deploy(diagram("crash.bpmn"), filename="crash.bpmn")
    iid = engine.runtime.start("crash", "CRASH-1", {}, actor="alice").instance_id
    guid = _open_task(engine, iid)
    with pytest.raises(QifuError):
        engine.runtime.complete_task(guid, {"note": "boom"}, actor="bob")
    assert len(engine.cache) == 0
    misses = engine.cache.misses
    engine.runtime.complete_task(guid, {"note": "fine"}, actor="bob")  # rebuilt from the committed row
    assert engine.cache.misses == misses + 1
    with engine.session() as s:
        assert json.loads(s.get(Instance, iid).data_json)["note"] == "fine"


def test_another_process_step_makes_the_cached_workflow_stale(engine, simple, services, clock, db_url) -> None:
    """Process B moves the case on; process A's kept workflow is of an older version and is not used."""
    other = ProcessEngine(db_url, clock, services)
    other.management.reschedule_timer(_timer_id(engine, simple.instance_id), "2026-10-20T10:00:00+08:00",
                                   reason="约定办结时限", actor="bob")
    assert len(engine.cache) == 1  # A still holds the workflow it left after the start
    misses = engine.cache.misses
    result = engine.runtime.complete_task(_open_task(engine, simple.instance_id), {"comment": "A 办理"},
                                          actor="carol")
    assert engine.cache.misses == misses + 1  # A read the row B wrote
    assert result.version == 4  # started (2), rescheduled by B (3), completed by A (4)
    with engine.session() as s:
        assert history.verify(s) == []
        assert [e.action for e in history.events_for(s, simple.instance_id)] == [
            "started", "timer_rescheduled", "task_completed"]


def test_same_version_with_another_history_is_a_miss(engine, simple) -> None:
    """A restored backup or a recreated database can show the same version with a different history."""
    row = _row(engine, simple.instance_id)
    with engine.session() as s:
        s.execute(update(Instance).where(Instance.id == row.id).values(history_hash="f" * 64)
                  .execution_options(synchronize_session=False))
    cache = engine.cache
    assert cache.take(row.id, row.version, "f" * 64, row.state_json, lambda wf: "") is None
    assert len(cache) == 0


def test_verify_mode_catches_a_cached_workflow_that_differs_from_the_row(engine, simple) -> None:
    cache = engine.cache
    assert cache.verify  # set by tests/conftest.py
    row = _row(engine, simple.instance_id)
    version, head, workflow = cache._entries[row.id]
    next(iter(workflow.tasks.values())).data["tampered"] = True  # memory no longer matches the row
    with pytest.raises(CacheMismatch):
        engine.runtime.complete_task(_open_task(engine, simple.instance_id), {"comment": "x"}, actor="bob")


def test_verify_mode_catches_task_rows_that_do_not_mirror_the_workflow(engine, simple) -> None:
    """Steps write only the difference in task rows; a row lost behind the engine's back is reported."""
    guid = _open_task(engine, simple.instance_id)
    with engine.session() as s:
        s.execute(delete(HumanTask).where(HumanTask.task_guid == guid))
    with pytest.raises(AssertionError, match="human_task rows"):
        engine.management.reschedule_timer(_timer_id(engine, simple.instance_id), "2026-10-20T10:00:00+08:00",
                                        reason="约定办结时限")


def _timer_id(engine: ProcessEngine, instance_id: int) -> int:
    with engine.session() as s:
        return s.scalar(select(Timer.id).where(Timer.instance_id == instance_id, Timer.status == "waiting"))
