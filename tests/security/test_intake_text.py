"""Intake refuses control characters and lone surrogates in every text field, on SQLite and PostgreSQL alike.

PostgreSQL cannot store NUL in text (the driver raises) while SQLite keeps it silently, so without a check of
their own the two databases would answer the same submission differently; ``handlers.intake.validate`` refuses
it first, with a message per field, and nothing is saved. TAB, LF and CR stay allowed (a description has lines).
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from engine.errors import FormValidationError
from engine.models import Event, Instance
from handlers import intake
from handlers.models import EnterpriseCase
from tests.conftest import diagram

FIELDS = {"unit": "PA01", "channel": "walk_in", "category": "other", "enterprise_name": "磐安某药业有限公司",
          "contact_name": "李女士", "contact_phone": "0579-84661160", "credit_code": "91330727MA2DABCD1X",
          "contact_id_number": "11010519491231002X", "title": "排污许可证延续", "description": "排污许可证延续办理进度咨询"}
TEXT_FIELDS = sorted(FIELDS)  # every text field validate() reads
REFUSED = ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x0e", "\x1b", "\x1f", "\ud800", "\udfff"]
MESSAGES = ("含有不允许的控制字符", "含有无法保存的字符")  # engine.forms.text_problem, the one rule


@pytest.fixture
def flow(case_engine):
    case_engine.deploy(diagram("domain_handlers.bpmn"), filename="domain_handlers.bpmn")
    return case_engine


def submit(engine, **over) -> intake.SubmittedCase:
    return intake.submit_case(engine, "domain_handlers", {**FIELDS, **over}, actor="clerk", region="pan_an")


def saved(engine) -> tuple[int, int, int]:
    with engine.session() as s:
        return (s.scalar(select(func.count(Instance.id))), s.scalar(select(func.count(EnterpriseCase.id))),
                s.scalar(select(func.count(Event.id))))


def test_the_valid_fields_are_accepted(flow) -> None:
    """The base the other tests spoil one character of is itself a valid submission."""
    submit(flow)
    assert saved(flow)[:2] == (1, 1)


@pytest.mark.parametrize("field", TEXT_FIELDS)
def test_nul_in_any_text_field_is_refused_with_a_message_for_that_field(flow, field: str) -> None:
    value = FIELDS[field]
    with pytest.raises(FormValidationError) as err:
        submit(flow, **{field: value[:2] + "\x00" + value[2:]})
    assert err.value.errors == {field: f"{intake.LABELS.get(field) or intake.CODE_LABELS[field]}含有不允许的控制字符"
                                       f"（第 3 个字符 U+0000，只允许制表符、换行、回车），请删除后重新提交"}
    assert saved(flow) == (0, 0, 0)


@pytest.mark.parametrize("char", REFUSED, ids=[f"U+{ord(c):04X}" for c in REFUSED])
def test_every_c0_control_and_lone_surrogate_is_refused(flow, char: str) -> None:
    with pytest.raises(FormValidationError) as err:
        submit(flow, enterprise_name=f"磐安{char}药业", description=f"{char}咨询", unit=f"PA01{char}")
    assert set(err.value.errors) == {"enterprise_name", "description", "unit"}
    assert all(any(m in message for m in MESSAGES) for message in err.value.errors.values())
    assert saved(flow) == (0, 0, 0)


def test_a_control_character_at_the_end_is_not_stripped_away_silently(flow) -> None:
    """``str.strip`` removes U+001C–U+001F and VT/FF: the raw value is checked, so they are refused, not dropped."""
    with pytest.raises(FormValidationError) as err:
        submit(flow, contact_name="李女士\x1f", contact_phone="0579-84661160\x0c")
    assert set(err.value.errors) == {"contact_name", "contact_phone"}
    assert saved(flow) == (0, 0, 0)


def test_tab_newline_and_carriage_return_are_kept(flow) -> None:
    text = "第一行\t说明\r\n第二行\n第三行"
    sub = submit(flow, description=text)
    with flow.session() as s:
        data = json.loads(s.get(Instance, sub.instance_id).data_json)
        case = s.scalar(select(EnterpriseCase).where(EnterpriseCase.business_key == sub.business_key))
    assert data["description"] == text and case.description == text
