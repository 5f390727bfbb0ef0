"""Task forms refuse NUL, other C0 controls and lone surrogates in text, on SQLite and PostgreSQL alike.

PostgreSQL cannot store NUL in text and SQLite stores it silently; a lone surrogate cannot be encoded as
UTF-8 at all. ``engine.forms.validate_form`` refuses them with a Chinese message for the field, before the
case changes (TAB, LF and CR stay allowed: an opinion has lines).
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from engine.errors import FormValidationError
from engine.forms import FieldDef, validate_form
from engine.models import Event, HumanTask, Instance
from tests.conftest import diagram

REFUSED = [chr(c) for c in range(0x20) if chr(c) not in "\t\n\r"] + ["\ud800", "\udbff", "\udc00", "\udfff"]
ALLOWED = "第一行\t缩进\r\n第二行\n"
COMMENT = FieldDef(id="comment", type="string", label="意见", default=None)


@pytest.mark.parametrize("char", REFUSED, ids=lambda c: f"U+{ord(c):04X}")
def test_validate_form_refuses_each_control_and_lone_surrogate(char: str) -> None:
    with pytest.raises(FormValidationError) as refused:
        validate_form([COMMENT], {"comment": f"同意{char}"})
    message = refused.value.errors["comment"]
    assert message.startswith("意见含有") and f"U+{ord(char):04X}" in message


def test_validate_form_keeps_tab_newline_and_carriage_return() -> None:
    assert validate_form([COMMENT], {"comment": ALLOWED}) == {"comment": ALLOWED}


def test_an_unknown_key_is_named_without_its_control_characters() -> None:
    with pytest.raises(FormValidationError) as refused:
        validate_form([COMMENT], {"x\x00\ud800": "1"})
    assert list(refused.value.errors) == ["x\\x00\\ud800"]
    refused.value.message.encode("utf-8")  # printable in a terminal or a JSON answer


@pytest.fixture
def review(engine) -> tuple:
    engine.deploy(diagram("simple.bpmn"), filename="simple.bpmn")
    started = engine.runtime.start("simple", "T-1", {"received": "2026-09-30T10:00:00+08:00", "group": "g"})
    with engine.session() as s:
        guid = s.scalar(select(HumanTask.task_guid).where(HumanTask.spec_id == "review"))
    return engine, started.instance_id, guid


def _snapshot(engine, instance_id: int) -> tuple:
    with engine.session() as s:
        instance = s.get(Instance, instance_id)
        return (instance.version, instance.state_json, s.scalar(select(func.count(Event.id))),
                s.scalar(select(func.count(HumanTask.id))))


@pytest.mark.parametrize("value", ["同意\x00", "\x00", "同意\x1b[31m", "x\ud800", "\udfff同意"],
                         ids=["nul", "only-nul", "escape", "high-surrogate", "low-surrogate"])
def test_complete_task_refuses_it_and_changes_nothing(review, value: str) -> None:
    engine, instance_id, guid = review
    before = _snapshot(engine, instance_id)
    with pytest.raises(FormValidationError) as refused:
        engine.runtime.complete_task(guid, {"comment": value, "approved": True}, actor="alice")
    assert set(refused.value.errors) == {"comment"}
    assert refused.value.errors["comment"].startswith("意见含有")
    assert _snapshot(engine, instance_id) == before


def test_complete_task_stores_tab_newline_and_carriage_return(review) -> None:
    engine, instance_id, guid = review
    engine.runtime.complete_task(guid, {"comment": ALLOWED, "approved": True}, actor="alice")
    with engine.session() as s:
        payload = s.scalar(select(Event.payload).where(Event.instance_id == instance_id,
                                                       Event.action == "task_completed"))
    assert json.loads(payload)["details"]["form"]["comment"] == ALLOWED
