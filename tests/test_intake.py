"""Intake: validation against the reference data (nothing saved on error), business keys, tracking tokens."""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import func, select

from engine.errors import FormValidationError, QifuError
from engine.models import Event, Instance
from handlers import intake
from handlers.models import EnterpriseCase
from tests.conftest import diagram

FIELDS = {"unit": "PA01", "channel": "walk_in", "enterprise_name": "磐安某药业有限公司", "contact_name": "李女士",
          "contact_phone": "0579-84661160", "description": "排污许可证延续办理进度咨询"}


@pytest.fixture
def flow(case_engine):
    case_engine.deploy(diagram("domain_handlers.bpmn"), filename="domain_handlers.bpmn")
    return case_engine


def submit(engine, region: str = "pan_an", **over) -> intake.SubmittedCase:
    return intake.submit_case(engine, "domain_handlers", {**FIELDS, **over}, actor="clerk", region=region)


def counts(engine) -> tuple[int, int]:
    with engine.session() as s:
        return s.scalar(select(func.count(Instance.id))), s.scalar(select(func.count(EnterpriseCase.id)))


@pytest.mark.req("PA-1", "PA-2")
def test_submit_allocates_keys_sets_case_data_and_returns_a_token_once(flow) -> None:
    first, second = submit(flow), submit(flow)
    assert (first.business_key, second.business_key) == ("PA-20260930-0001", "PA-20260930-0002")
    fh = submit(flow, region="fenghua", unit="FH-CENTRE", channel="hotline", category="policy_talent")
    assert fh.business_key == "FH-20260930-0001"
    assert fh.opened and first.opened  # the dispatch task is open
    with flow.session() as s:
        data = json.loads(s.get(Instance, first.instance_id).data_json)
        assert data["region"] == "pan_an" and data["unit"] == "PA01" and data["channel"] == "walk_in"
        assert data["received_at"] == flow.clock.now().isoformat()
        assert data["title"] == "排污许可证延续办理进度咨询"  # defaulted from the description
        assert data["tracking_hash"] == intake.token_hash(first.tracking_token)
        case = intake.find_by_token(s, first.tracking_token)
        assert case is not None and case.business_key == first.business_key
        assert intake.find_by_token(s, second.tracking_token).business_key == second.business_key
        assert intake.find_by_token(s, "not-a-token") is None and intake.find_by_token(s, " ") is None
        # the plain token is stored nowhere: not in the case data, not in the history
        payloads = " ".join(s.scalars(select(Event.payload)))
        assert first.tracking_token not in payloads and first.tracking_token not in json.dumps(data)
    assert first.tracking_token != second.tracking_token and len(first.tracking_token) >= 20


@pytest.mark.req("PA-1")
def test_unknown_unit_changes_nothing(flow) -> None:
    submit(flow)
    before = counts(flow)
    with pytest.raises(FormValidationError) as err:
        submit(flow, unit="PA99")
    assert err.value.errors == {"unit": "未知的受理单位“PA99”"}
    assert counts(flow) == before


@pytest.mark.parametrize(("over", "field", "message"), [
    ({"enterprise_name": " "}, "enterprise_name", "请填写企业名称"),
    ({"contact_name": None}, "contact_name", "请填写联系人"),
    ({"description": ""}, "description", "请填写问题描述"),
    ({"description": "长" * 2001}, "description", "问题描述过长（最多 2000 字，现 2001 字）"),
    ({"contact_phone": "12345"}, "contact_phone", "联系电话格式不正确"),
    ({"contact_id_number": "330727199001011235"}, "contact_id_number", "身份证号不正确"),
    ({"credit_code": "ABC"}, "credit_code", "统一社会信用代码应为 18 位"),
    ({"channel": "hotline"}, "channel", "未知的受理渠道“hotline”"),  # a Fenghua channel on a Pan'an case
    ({"channel": ""}, "channel", "请选择受理渠道"),
    ({"unit": "FH-CENTRE"}, "unit", "不是本区域的受理站点"),
    ({"unit": "PA-COUNTY", "category": "nope"}, "category", "未知的问题分类“nope”"),
])
def test_bad_fields_are_refused_in_chinese_and_nothing_is_saved(flow, over, field, message) -> None:
    with pytest.raises(FormValidationError) as err:
        submit(flow, **over)
    assert field in err.value.errors and message in err.value.errors[field]
    assert counts(flow) == (0, 0)


def test_valid_optional_identifiers_are_accepted_and_normalised(flow) -> None:
    sub = submit(flow, contact_phone="138 0013 8000", credit_code="91330727ma2dabcd1x",
                 contact_id_number="11010519491231002x")
    with flow.session() as s:
        case = s.scalar(select(EnterpriseCase).where(EnterpriseCase.business_key == sub.business_key))
        assert (case.contact_phone, case.credit_code, case.contact_id_number) == (
            "13800138000", "91330727MA2DABCD1X", "11010519491231002X")


def test_fenghua_requires_a_category_and_defaults_the_centre(flow) -> None:
    with pytest.raises(FormValidationError) as err:
        submit(flow, region="fenghua", unit=None, channel="hotline")
    assert set(err.value.errors) == {"category"}
    sub = submit(flow, region="fenghua", unit=None, channel="hotline", category="other")
    with flow.session() as s:
        assert json.loads(s.get(Instance, sub.instance_id).data_json)["unit"] == "FH-CENTRE"


def test_channel_mode_restricts_the_channel(flow) -> None:
    with pytest.raises(FormValidationError, match="不是线上渠道"):
        intake.submit_case(flow, "domain_handlers", {**FIELDS, "unit": "FH-CENTRE", "channel": "window_8718",
                                                     "category": "other"}, region="fenghua", channel_mode="online")
    sub = intake.submit_case(flow, "domain_handlers", {**FIELDS, "unit": "FH-CENTRE", "channel": "wechat_account",
                                                       "category": "other"}, region="fenghua", channel_mode="online")
    assert sub.business_key.startswith("FH-")


def test_callers_cannot_set_system_variables(flow) -> None:
    sub = submit(flow, region_override="x", received_at="2020-01-01T00:00:00+08:00", tracking_hash="0" * 64,
                 status="closed")
    with flow.session() as s:
        data = json.loads(s.get(Instance, sub.instance_id).data_json)
    assert data["received_at"] == flow.clock.now().isoformat()
    assert data["tracking_hash"] == intake.token_hash(sub.tracking_token)
    assert "status" not in data and "region_override" not in data


def test_unknown_process_is_refused(flow) -> None:
    with pytest.raises(QifuError, match="未知的流程"):
        intake.submit_case(flow, "no_such_process", FIELDS)
    # the seed process keys know their region without being told
    with pytest.raises(FormValidationError, match="不是本区域的受理站点"):
        intake.submit_case(flow, "fenghua_one_place", {**FIELDS, "category": "other"})


def test_business_key_uses_the_shanghai_date(flow) -> None:
    flow.clock.set("2026-09-30T23:59:00")
    assert submit(flow).business_key == "PA-20260930-0001"
    flow.clock.set("2026-10-01T00:01:00")  # still 2026-09-30 in UTC
    assert submit(flow).business_key == "PA-20261001-0001"


def test_concurrent_submissions_get_distinct_keys(flow) -> None:
    keys: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(3):
                keys.append(submit(flow).business_key)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(keys) == [f"PA-20260930-{n:04d}" for n in range(1, 13)]
    assert counts(flow) == (12, 12)
