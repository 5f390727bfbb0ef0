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
