"""An instance's saved state: SpiffWorkflow's serializer through its public API, the stored version honoured."""

from __future__ import annotations

import json

import pytest

from engine import state
from engine.errors import QifuError
from tests.conftest import diagram


@pytest.fixture
def saved(engine):
    engine.deploy(diagram("simple.bpmn"), filename="simple.bpmn")
    started = engine.runtime.start("simple", "S-1", {"applicant": "张三", "received": "2026-09-30T10:00:00+08:00",
                                                      "group": "受理组"})
    workflow = engine.runtime.workflow(started.instance_id)
    ref = engine.repository.latest("simple")
    return state.dump_state(workflow), engine.repository.specs(ref.id)


def test_a_state_round_trips_and_keeps_chinese_text_unescaped(saved) -> None:
    text, (spec, subs) = saved
    assert json.loads(text)["serializer_version"] == state.STATE_VERSION and "张三" in text
    assert state.dump_state(state.load_state(text, spec, subs)) == text


def test_a_state_saved_before_this_format_still_loads(saved) -> None:
    text, (spec, subs) = saved
    older = json.loads(text)
    older.pop("typename")  # what the runtime wrote before engine.state
    assert state.dump_state(state.load_state(json.dumps(older, ensure_ascii=False), spec, subs)) == text


def test_an_older_serializer_version_is_migrated_with_spiffworkflows_migrations(saved, monkeypatch) -> None:
    text, (spec, subs) = saved
    seen = []
    original = state.MIGRATIONS["1.4"]

    def recording(dct):
        seen.append(("spec" in dct, "subprocess_specs" in dct))
        return original(dct)

    monkeypatch.setitem(state.MIGRATIONS, "1.4", recording)
    older = {**json.loads(text), "serializer_version": "1.4"}
    restored = state.load_state(json.dumps(older), spec, subs)
    assert seen == [(True, True)]  # the migration saw the spec, as SpiffWorkflow's migrations expect
    assert state.dump_state(restored) == text


def test_an_unknown_version_is_refused_not_guessed(saved) -> None:
    text, (spec, subs) = saved
    with pytest.raises(QifuError, match="9.9"):
        state.load_state(json.dumps({**json.loads(text), "serializer_version": "9.9"}), spec, subs)


def _spiffworkflows_own_document(workflow) -> dict:
    """The state as SpiffWorkflow's unmodified converters and JSON encoder write it (our spec-less top level)."""
    from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer

    from engine.bpmn import serializer_config

    config = serializer_config()
    config[state.BpmnWorkflow] = state._SpeclessWorkflowConverter
    reference = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(config), version=state.STATE_VERSION)
    return json.loads(reference.serialize_json(workflow))


@pytest.mark.parametrize("extra", [{}, {"when": "datetime"}, {"when": "datetime", "tags": "set"}])
def test_the_fast_writer_writes_spiffworkflows_document(engine, extra) -> None:
    from datetime import UTC, datetime

    engine.deploy(diagram("simple.bpmn"), filename="simple.bpmn")
    started = engine.runtime.start("simple", "S-2", {"applicant": "李四", "received": "2026-09-30T10:00:00+08:00",
                                                      "group": "受理组", "n": 2 ** 70})
    workflow = engine.runtime.workflow(started.instance_id)
    task = [t for t in workflow.get_tasks() if t.parent is not None and "n" in t.data][-1]
    values = {"datetime": datetime(2026, 10, 8, 9, 0, tzinfo=UTC), "set": {"甲"}}
    task.data.update({k: values[v] for k, v in extra.items()})
    assert json.loads(state.dump_state(workflow)) == _spiffworkflows_own_document(workflow)
    ref = engine.repository.latest("simple")
    restored = state.load_state(state.dump_state(workflow), *engine.repository.specs(ref.id))
    data = restored.get_task_from_id(task.id).data
    if "when" in extra:
        assert data["when"] == values["datetime"]  # a datetime comes back a datetime, cached or not
    assert data["n"] == 2 ** 70
