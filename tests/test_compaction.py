"""The saved state of a looping case stays small, and compaction never changes what the case does next.

The diagram loops through a three-way parallel split/join (branches completed in a different order each
turn, in separate steps) and a task with a non-interrupting reminder timer that fires on some turns.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from engine import compaction
from engine.models import HumanTask, Instance
from engine.process_engine import ProcessEngine
from tests.conftest import diagram

ORDERS = [("Task_A", "Task_B", "Task_C"), ("Task_C", "Task_A", "Task_B"), ("Task_B", "Task_C", "Task_A")]
FIELD = {"Task_A": "a", "Task_B": "b", "Task_C": "c"}


def open_tasks(engine: ProcessEngine, instance_id: int) -> dict[str, str]:
    with engine.session() as s:
        rows = s.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id))
        return {r.spec_id: r.task_guid for r in rows}


def tree_size(engine: ProcessEngine, instance_id: int) -> int:
    with engine.session() as s:
        return len(json.loads(s.get(Instance, instance_id).state_json)["tasks"])


def run_turns(engine: ProcessEngine, key: str, turns: int) -> tuple[dict, list[int]]:
    """Drive one case through ``turns`` loop turns; returns its final data and the tree size after each turn."""
    started = engine.runtime.start("loop_parallel", key, {})
    iid, sizes = started.instance_id, []
    for turn in range(turns):
        for n, spec in enumerate(ORDERS[turn % 3]):
            tasks = open_tasks(engine, iid)
            # the join waits: Task_Decide opens only after the third branch of this turn
            assert "Task_Decide" not in tasks, f"turn {turn}: join fired after {n} of 3 branches"
            engine.runtime.complete_task(tasks[spec], {FIELD[spec]: turn})
        tasks = open_tasks(engine, iid)
        assert set(tasks) == {"Task_Decide"}, f"turn {turn}: {sorted(tasks)}"
        if turn % 4 == 0:  # let the reminder fire on some turns
            engine.clock.advance(days=2)
            assert engine.management.run_due_timers() == 1
        engine.runtime.complete_task(tasks["Task_Decide"], {"again": turn < turns - 1, "total": turn})
        sizes.append(tree_size(engine, iid))
    with engine.session() as s:
        inst = s.get(Instance, iid)
        assert inst.status == "completed"
        return json.loads(inst.data_json), sizes


def test_looping_case_keeps_a_bounded_tree_and_behaves_the_same(engine: ProcessEngine,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    engine.deploy(diagram("loop_parallel.bpmn"), filename="loop_parallel.bpmn")
    data, sizes = run_turns(engine, "LOOP-1", 24)
    last_branch = FIELD[ORDERS[23 % 3][-1]]
    assert (data[last_branch], data["total"]) == (23, 23)
    # the tree stops growing (without compaction it gains about a dozen tasks a turn, see below)
    assert max(sizes[16:]) <= max(sizes[4:12]), sizes

    monkeypatch.setattr(compaction, "compact", lambda workflow, keep=compaction.KEEP: 0)
    plain_data, plain_sizes = run_turns(engine, "LOOP-2", 24)
    assert plain_sizes[20] > plain_sizes[4] + 100, plain_sizes  # so the bound above is not trivially true
    assert plain_data == data  # compaction changed nothing the case did
