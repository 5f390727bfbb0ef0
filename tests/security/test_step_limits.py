"""A step whose expressions or scripts run away fails cleanly: a Chinese error naming the element and the
limit, the case at its last committed step, and no database lock held past the limit — also while other
steps run in other threads (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from engine.errors import ExpressionError
from engine.models import Event, HumanTask, Instance, Timer
from engine.process_engine import ProcessEngine
from engine.scripting import StepLimitError
from tests.security import limit_diagrams as diagrams

LIMIT = 0.5
SPIN = "i = 0\nwhile True:\n    i += 1"


@pytest.fixture(autouse=True)
def low_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QIFU_EXPRESSION_TIME_LIMIT", str(LIMIT))


def reread(engine):
    """The same engine built again, so it reads the settings the test has just put in the environment."""
    return ProcessEngine(engine.url, engine.clock, engine.services)


def snapshot(engine, instance_id: int) -> dict[str, Any]:
    """What a step writes for one instance."""
    with engine.session() as s:
        inst = s.get(Instance, instance_id)
        return {
            "instance": (inst.version, inst.status, inst.state_json, inst.data_json, inst.history_hash),
            "tasks": sorted((t.task_guid, t.spec_id) for t in
                            s.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id))),
            "timers": sorted((t.task_guid, t.status) for t in
                             s.scalars(select(Timer).where(Timer.instance_id == instance_id))),
            "events": s.scalar(select(func.count(Event.id)).where(Event.instance_id == instance_id)),
        }


def open_task(engine, instance_id: int, spec_id: str) -> str:
    with engine.session() as s:
        return s.scalar(select(HumanTask.task_guid).where(HumanTask.instance_id == instance_id,
                                                          HumanTask.spec_id == spec_id))


def start(engine, diagram: bytes, key: str, business_key: str, **data: Any) -> int:
    engine.deploy(diagram, filename=f"{key}.bpmn")
    return engine.runtime.start(key, business_key, data, actor="alice").instance_id


def fails_and_changes_nothing(engine, instance_id: int, *, data: dict[str, Any] | None = None,
                              error: type[Exception] = ExpressionError) -> Exception:
    before = snapshot(engine, instance_id)
    with pytest.raises(error) as info:
        engine.runtime.complete_task(open_task(engine, instance_id, "fill"), data or {}, actor="alice")
    assert snapshot(engine, instance_id) == before, "the case stays at its last committed step"
    return info.value


# --- one step at a time ---------------------------------------------------------------------------------------
def test_a_spinning_script_fails_naming_the_element_and_the_limit(engine) -> None:
    iid = start(engine, diagrams.after_form("spin", diagrams.script(SPIN, name="死循环")), "spin", "SPIN-1")
    started = time.monotonic()
    error = fails_and_changes_nothing(engine, iid)
    assert time.monotonic() - started < LIMIT + 5
    assert error.element == "t (死循环)"
    assert "CPU 时间上限" in error.message and "QIFU_EXPRESSION_TIME_LIMIT" in error.message
    assert str(error).startswith("t (死循环): ")
    fails_and_changes_nothing(engine, iid)  # the next clerk gets the same clean refusal, not a frozen server


@pytest.mark.parametrize("expression, words", [
    ("sum(range(10**9)) >= 0", "range"),  # the expression that froze every request for 25 s
    ("any(a < 0 for a in range(10**6) for b in range(10**6))", "CPU 时间上限"),
    ("len('a' * v) > 0", "长度上限"),
])
def test_a_runaway_gateway_condition_fails_naming_the_gateway(engine, expression: str, words: str) -> None:
    iid = start(engine, diagrams.gateway_after_form("gw", "${" + expression + "}"), "gw", "GW-1", v=10**10)
    error = fails_and_changes_nothing(engine, iid)
    assert error.element == "t (判断)" and words in error.message, (error.element, error.message)


def test_a_runaway_output_parameter_names_the_service_task(engine) -> None:
    task = ('<bpmn:serviceTask id="t" name="通知" camunda:type="external" camunda:topic="echo">'
            '<bpmn:extensionElements><camunda:inputOutput>'
            '<camunda:outputParameter name="done">${"x" * v}</camunda:outputParameter>'
            f'</camunda:inputOutput></bpmn:extensionElements>{diagrams.FLOWS}</bpmn:serviceTask>')
    iid = start(engine, diagrams.after_form("out", task), "out", "OUT-1", v=10**10)
    error = fails_and_changes_nothing(engine, iid)
    assert error.element == "t (通知)" and "长度上限" in error.message


def test_a_runaway_candidate_group_expression_names_the_user_task(engine) -> None:
    """Evaluated after the engine's steps, when the new task's row is written: still named, still rolled back."""
    plain = '<bpmn:userTask id="after" name="后续" camunda:candidateGroups="g">'
    text = diagrams.after_form("grp", diagrams.script("w = 1")).decode()
    assert plain in text
    xml = text.replace(plain, plain.replace('"g"', '"${\'g\' * v}"')).encode()
    iid = start(engine, xml, "grp", "GRP-1", v=10**10)
    error = fails_and_changes_nothing(engine, iid)
    assert error.element == "after (后续)", error.element
    assert "长度上限" in error.message


def test_ordinary_python_in_a_script_task_reaches_the_case_data(engine) -> None:
    source = ("a, b = pair\nprint('办理', a)\nmsg = '{}号-{}'.format(a, b)\nnote = f'{b:>4}|'\n"
              "label = '%s/%03d' % (msg, a)\nboth = [*pair, *pair]")
    iid = start(engine, diagrams.after_form("py", diagrams.script(source)), "py", "PY-1", pair=[7, "甲"])
    engine.runtime.complete_task(open_task(engine, iid, "fill"), {}, actor="alice")
    with engine.session() as s:
        data = s.get(Instance, iid).data_json
    values = json.loads(data)
    assert {k: values.get(k) for k in ("a", "msg", "note", "label", "both")} == {
        "a": 7, "msg": "7号-甲", "note": "   甲|", "label": "7号-甲/007", "both": [7, "甲", 7, "甲"]}
    assert "办理" not in data  # printed text is not case data


def test_an_integer_beyond_64_bits_is_kept_exactly(engine) -> None:
    iid = start(engine, diagrams.after_form("big", diagrams.script("big = 2 ** 70 + 1\nsmall = -(2 ** 63)")),
                "big", "BIG-1")
    engine.runtime.complete_task(open_task(engine, iid, "fill"), {}, actor="alice")
    with engine.session() as s:
        data = json.loads(s.get(Instance, iid).data_json)
    assert data["big"] == 2 ** 70 + 1 and isinstance(data["big"], int)
    assert data["small"] == -(2 ** 63)
    assert engine.runtime.workflow(iid).data.get("big", 2 ** 70 + 1) == 2 ** 70 + 1
    assert not engine.history.verify([iid])


# --- step limits ----------------------------------------------------------------------------------------------
def test_a_loop_without_a_wait_state_stops_at_the_task_limit(engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QIFU_MAX_STEP_TASKS", "200")
    engine = reread(engine)
    iid = start(engine, diagrams.loop_after_form("loop"), "loop", "LOOP-1")
    error = fails_and_changes_nothing(engine, iid, error=StepLimitError)
    assert "200" in error.message and "QIFU_MAX_STEP_TASKS" in error.message
    assert error.element in ("count (计数)", "again (再来?)")


def test_a_call_activity_calling_itself_stops_at_the_task_limit(engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QIFU_MAX_STEP_TASKS", "100")
    engine = reread(engine)
    engine.deploy(diagrams.self_call("selfcall"), filename="selfcall.bpmn")
    with pytest.raises(StepLimitError) as info:
        engine.runtime.start("selfcall", "SELF-1", {}, actor="alice")
    assert "QIFU_MAX_STEP_TASKS" in info.value.message and info.value.element
    with engine.session() as s:
        assert s.scalar(select(func.count(Instance.id))) == 0, "the failed start left no case"


def test_a_long_chain_of_busy_tasks_stops_at_the_step_time_limit(engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each script is well within its own limit; together they would hold the step's lock for minutes."""
    monkeypatch.setenv("QIFU_MAX_STEP_SECONDS", "1")
    monkeypatch.setenv("QIFU_MAX_STEP_TASKS", "100000")
    engine = reread(engine)
    iid = start(engine, diagrams.loop_after_form("busy", "n = sum(range(200000))"), "busy", "BUSY-1")
    started = time.monotonic()
    error = fails_and_changes_nothing(engine, iid, error=StepLimitError)
    assert time.monotonic() - started < 1 + 5
    assert "QIFU_MAX_STEP_SECONDS" in error.message and error.element


def test_the_step_time_limit_also_stops_an_expression_within_its_own_limit(engine,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QIFU_EXPRESSION_TIME_LIMIT", "30")
    monkeypatch.setenv("QIFU_MAX_STEP_SECONDS", str(LIMIT))
    engine = reread(engine)
    iid = start(engine, diagrams.after_form("slow", diagrams.script(SPIN)), "slow", "SLOW-1")
    started = time.monotonic()
    error = fails_and_changes_nothing(engine, iid)
    assert time.monotonic() - started < LIMIT + 5
    assert "QIFU_MAX_STEP_SECONDS" in error.message and error.element == "t (计算)"


# --- other work goes on meanwhile ---------------------------------------------------------------------------------
def test_a_stuck_step_does_not_hold_up_other_cases(engine, clock) -> None:
    """While one thread's step spins in a script, another completes a task of another case and fires a timer.

    On SQLite the spinning step holds the database's write lock, so the other work waits for it: it must be
    done within the limit plus a margin. On PostgreSQL it only holds its own row and nothing waits.
    """
    entered = threading.Event()
    engine.services.register("mark", lambda call: entered.set() or {}, "signals that the step is running")
    mark = ('<bpmn:serviceTask id="mark" name="标记" camunda:type="external" camunda:topic="mark">'
            '<bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>to_spin</bpmn:outgoing></bpmn:serviceTask>'
            '<bpmn:sequenceFlow id="to_spin" sourceRef="mark" targetRef="t" />')
    spin_flows = "<bpmn:incoming>to_spin</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>"
    stuck = start(engine, diagrams.after_form("stuck", mark + diagrams.script(SPIN, name="死循环", flows=spin_flows),
                                              first="mark"), "stuck", "STUCK-1")
    engine.deploy(diagrams.timer_between_forms("timed"), filename="timed.bpmn")
    waiting = engine.runtime.start("timed", "TIMED-1", {}, actor="bob").instance_id
    engine.runtime.complete_task(open_task(engine, waiting, "fill"), {}, actor="bob")  # its timer now waits
    other = engine.runtime.start("timed", "TIMED-2", {}, actor="bob").instance_id
    clock.advance(days=2)
    before = snapshot(engine, stuck)

    outcome: dict[str, Any] = {}

    def run_stuck() -> None:
        try:
            engine.runtime.complete_task(open_task(engine, stuck, "fill"), {}, actor="alice")
        except Exception as exc:  # examined below
            outcome["error"] = exc

    spinner = threading.Thread(target=run_stuck, daemon=True)
    spinner.start()
    assert entered.wait(10), "the stuck step did not start"
    started = time.monotonic()
    engine.runtime.complete_task(open_task(engine, other, "fill"), {}, actor="bob")
    assert engine.management.run_due_timers(worker="w1") == 1
    elapsed = time.monotonic() - started
    spinner.join(10)

    assert not spinner.is_alive(), "the spinning step never stopped"
    assert elapsed < LIMIT + 4, f"other work waited {elapsed:.1f} s"
    error = outcome["error"]
    assert isinstance(error, ExpressionError) and error.element == "t (死循环)"
    assert "CPU 时间上限" in error.message
    assert snapshot(engine, stuck) == before
    assert open_task(engine, waiting, "after") and open_task(engine, other, "fill") is None
    with engine.session() as s:
        assert s.scalar(select(Timer.status).where(Timer.instance_id == waiting)) == "fired"
        assert s.scalar(select(func.count(Timer.id)).where(Timer.instance_id == other,
                                                          Timer.status == "waiting")) == 1
