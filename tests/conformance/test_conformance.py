"""The conformance suite: each diagram of tests/conformance/diagrams runs on Qifu (persisted, with the workflow
cache on and off, on SQLite and PostgreSQL) and on raw SpiffWorkflow in memory (tests/conformance/harness.py),
and the completed elements in order, the final data and the end state must be the same.

README's coverage table lists every BPMN element; each one marked supported has a diagram here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.services import ServiceRegistry
from tests.conformance.harness import DIAGRAMS, Outcome, conform


def test_sequence_of_tasks(db_url: str) -> None:
    """A none task and a manual task wait for a person, as in SpiffWorkflow (Camunda passes through them)."""
    out = conform(db_url, "c_sequence", "c_sequence", [("complete", "Fill", {"amount": 21}), ("complete", "Note", {}),
                                                        ("complete", "Hand", {})])
    assert out.finished and out.data["doubled"] == 42
    assert out.completed == ["S", "Fill", "Double", "Note", "Hand", "E"]


@pytest.mark.parametrize(("level", "path"), [(9, "high"), (3, "mid"), (1, "low")])
def test_exclusive_gateway(db_url: str, level: int, path: str) -> None:
    out = conform(db_url, "c_exclusive", "c_exclusive", [("complete", "Decide", {"level": level}),
                                                          ("complete", "Check", {"ok": True})])
    assert out.data["path"] == path and out.finished


def test_parallel_gateway(db_url: str) -> None:
    out = conform(db_url, "c_parallel", "c_parallel", [("complete", "B", {"b": 2}), ("complete", "A", {"a": 1})])
    assert out.data["total"] == 6 and out.finished
    assert out.completed.count("Join") == 1 and out.completed[-2:] == ["Sum", "E"]


def test_parallel_join_inside_a_loop(db_url: str) -> None:
    script = []
    for turn in range(5):  # enough turns for compaction to drop the first turns from the saved tree
        first, second = ("A", "B") if turn % 2 == 0 else ("B", "A")
        script += [("complete", first, {first.lower(): turn}), ("complete", second, {second.lower(): turn}),
                   ("complete", "Decide", {"again": turn < 4})]
    out = conform(db_url, "c_parallel_loop", "c_parallel_loop", script, reference_differs=_join_fired_early)
    assert out.finished and out.completed.count("Decide") == 5
    assert out.completed.count("Join") == 5  # once a turn: it waited for both branches every time


def _join_fired_early(qifu: Outcome, reference: Outcome) -> None:
    """The one documented deviation: SpiffWorkflow 3.2 counts the join tasks an earlier turn left behind, so
    from the second turn on its join fires after the first branch (and again after the second). Qifu waits
    for the branches of the turn, as BPMN and SpiffWorkflow's own documentation say. All else is the same."""
    assert reference.completed.count("Join") > qifu.completed.count("Join")
    assert [e for e in reference.completed if e != "Join"] == [e for e in qifu.completed if e != "Join"]
    assert (reference.data, reference.finished, reference.open) == (qifu.data, qifu.finished, qifu.open)


def test_parallel_gateway_merging_the_loop(db_url: str) -> None:
    """start → join ← loop: SpiffWorkflow passes the join on every turn; Qifu stopped once the saved tree
    had been compacted (the join waited for the first turn's task forever, silently)."""
    script = [("complete", "Work", {"note": str(turn)}) for turn in range(8)]
    out = conform(db_url, "c_parallel_merge_loop", "c_parallel_merge_loop", script)
    assert out.finished and out.data["n"] == 8 and out.completed.count("Merge") == 8


@pytest.mark.parametrize(("x", "y"), [(True, True), (True, False), (False, False)])
def test_inclusive_gateway(db_url: str, x: bool, y: bool) -> None:
    script = [("complete", "Pick", {"x": x, "y": y})]
    script += [("complete", name, {}) for name, chosen in (("X", x), ("Y", y)) if chosen]
    out = conform(db_url, "c_inclusive", "c_inclusive", script)
    assert out.finished and ("Z" in out.completed) == (not x and not y)


def test_event_based_gateway_timer(db_url: str) -> None:
    """The timer behind the gateway fires (it had no timer row before), once; the message branch is cancelled."""
    out = conform(db_url, "c_event_gateway", "c_event_gateway", [("wait", {"hours": 1}), ("wait", {"hours": 2}),
                                                                  ("wait", {"hours": 5})])
    assert out.finished and out.data["outcome"] == "timeout"
    assert out.completed.count("Timeout") == 1 and "Reply" not in out.completed


def test_event_based_gateway_message_from_outside(db_url: str) -> None:
    """The message arrives first: its branch runs, the timer's row is cancelled and never fires."""
    out = conform(db_url, "c_event_gateway", "c_event_gateway", [("wait", {"hours": 1}), ("message", "reply", "reply"),
                                                                  ("wait", {"hours": 5}), ("complete", "Answered", {})])
    assert out.finished and "Timeout" not in out.completed and out.data["reply"] == {}


@pytest.mark.parametrize("withdrawn", [False, True])
def test_messages_from_outside(db_url: str, withdrawn: bool) -> None:
    script = [("message", "materials", None)]
    script += [("message", "withdraw", None)] if withdrawn else [("complete", "Review", {"ok": True})]
    out = conform(db_url, "c_message_from_outside", "c_message_from_outside", script)
    assert out.finished and (out.data.get("closed") is True) == withdrawn
    assert ("Review" in out.completed) != withdrawn


def test_signals_from_outside(db_url: str) -> None:
    """A non-interrupting signal boundary event fires once, as in SpiffWorkflow (Camunda keeps it armed)."""
    script = [("signal", "go"), ("signal", "notice"), ("complete", "Work", {"done": True})]
    out = conform(db_url, "c_signal_from_outside", "c_signal_from_outside", script)
    assert out.finished and out.completed.count("Noted") == 1 and out.data["done"] is True


def test_message_start_event(db_url: str) -> None:
    """Messages in the suite carry no variables: Qifu also sets them as case variables (Camunda), the reference only
    as the result variable (tests/test_messages.py covers the variables)."""
    out = conform(db_url, "c_message_start", "c_message_start", [("complete", "Handle", {"ok": True})],
                  start_message="apply")
    assert out.finished and out.completed[:2] == ["S", "Handle"]


def test_intermediate_timer(db_url: str) -> None:
    out = conform(db_url, "c_timer_intermediate", "c_timer_intermediate", [("wait", {"hours": 2}),
                                                                            ("wait", {"hours": 2})])
    assert out.finished and out.data["waited"] is True


def test_date_timer_and_cycle_boundary_timer(db_url: str) -> None:
    """timeDate waits for its instant; an R2/PT1H cycle on the task fires twice, once an hour, then stops."""
    script = [("wait", {"hours": 20}), ("wait", {"hours": 7}), ("wait", {"minutes": 90}), ("wait", {"hours": 1}),
              ("wait", {"hours": 3}), ("complete", "Work", {"done": True})]
    out = conform(db_url, "c_timer_date_cycle", "c_timer_date_cycle", script, reference_differs=_cycle_ends_earlier)
    assert out.finished and out.completed.count("Every") == 1 and out.completed.count("Remind") == 2


def _cycle_ends_earlier(qifu: Outcome, reference: Outcome) -> None:
    """Within the step of a cycle's last occurrence, Qifu completes the cycle event before the branch that
    occurrence started has run to its end; SpiffWorkflow after it. Nothing else differs."""
    assert qifu.completed != reference.completed
    assert [e for e in qifu.completed if e != "Every"] == [e for e in reference.completed if e != "Every"]
    assert qifu.completed.count("Every") == reference.completed.count("Every")
    assert (reference.data, reference.finished, reference.open) == (qifu.data, qifu.finished, qifu.open)


def test_interrupting_boundary_timer(db_url: str) -> None:
    out = conform(db_url, "c_timer_boundary", "c_timer_boundary", [("wait", {"days": 2})])
    assert out.finished and out.data["escalated"] is True and "Work" not in out.completed


def test_non_interrupting_boundary_timer(db_url: str) -> None:
    out = conform(db_url, "c_timer_noninterrupting", "c_timer_noninterrupting",
                  [("wait", {"hours": 5}), ("complete", "Work", {"done": True})])
    assert out.finished and out.data["reminded"] is True and out.data["done"] is True


def test_external_service_task(db_url: str) -> None:
    services = ServiceRegistry()
    services.register("echo", lambda call: {"echoed": call.params.get("what")}, "returns its input")
    out = conform(db_url, "c_service_task", "c_service_task", [], data={"subject": "营业执照"}, services=services)
    assert out.finished and out.data["answer"] == "营业执照"


@pytest.mark.parametrize("fail", [False, True])
def test_embedded_subprocess_and_error_boundary(db_url: str, fail: bool) -> None:
    out = conform(db_url, "c_subprocess", "c_subprocess", [("complete", "Inner", {"fail": fail})])
    assert out.finished and (out.data.get("handled") is True) == fail


def test_message_and_signal_within_a_case(db_url: str) -> None:
    out = conform(db_url, "c_message_in_case", "c_message_in_case", [("complete", "Work", {"answer": "好"})])
    assert out.finished and {"GotMsg", "GotSig"} <= set(out.completed)


def test_call_activity_to_a_process_of_the_same_file(db_url: str) -> None:
    out = conform(db_url, "c_call_activity", "c_call_activity", [("complete", "Review", {"bonus": 2})])
    assert out.finished and out.data["total"] == 7 and out.completed[:4] == ["S", "Prepare", "RS", "Review"]


def test_terminate_end_event(db_url: str) -> None:
    out = conform(db_url, "c_terminate", "c_terminate", [("complete", "Fast", {})])
    assert out.finished and "Slow" not in out.completed


def test_multi_instance(db_url: str) -> None:
    script = [("complete", "Review", {"score": n}) for n in range(3)]
    out = conform(db_url, "c_multi_instance", "c_multi_instance", script + [("complete_all", "Each", {})])
    assert out.finished and out.completed.count("Review") == 4  # three instances and the task itself


def test_every_element_readme_lists_as_supported_has_a_diagram_in_the_suite() -> None:
    """README's coverage table: a row marked supported names a diagram here, and a test of this module runs it."""
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    rows = [line for line in readme.split("### BPMN coverage", 1)[1].splitlines() if line.startswith("| ")][2:]
    suite = Path(__file__).read_text(encoding="utf-8")
    supported = [row for row in rows if row.split("|")[2].strip().startswith("supported")]
    assert len(supported) >= 15, rows
    for row in supported:
        names = re.findall(r"`(c_[a-z_]+)`", row.split("|")[3])
        assert names, f"a supported element without a conformance diagram: {row}"
        for name in names:
            assert (DIAGRAMS / f"{name}.bpmn").is_file(), name
            assert f'"{name}"' in suite, f"{name} is not run by the suite"
