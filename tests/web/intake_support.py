"""Helpers shared by the intake, public-page, API and browser tests (not a test module itself)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from engine.models import Deployment, Instance

ROOT = Path(__file__).resolve().parents[2]
FENGHUA = ROOT / "processes" / "fenghua_one_place.bpmn"
PAN_AN = ROOT / "processes" / "pan_an_station.bpmn"

CASE_FIELDS: dict[str, str] = {
    "enterprise_name": "宁波市奉化区某某精密机械有限公司",
    "contact_name": "王经理",
    "contact_phone": "13805740001",
    "category": "factor_power",
    "title": "新厂房用电增容",
    "description": "新建厂房需要用电增容，申请已提交两个月仍无答复，影响投产。",
}


def ensure_deployed(engine: Any, process_key: str) -> None:
    """Deploy the seed diagram of ``process_key`` unless some version of it is deployed already."""
    with engine.session() as session:
        deployed = session.scalar(select(Deployment.id).where(Deployment.process_key == process_key).limit(1))
    if deployed is None:
        path = ROOT / "processes" / f"{process_key}.bpmn"
        engine.deploy(path.read_bytes(), filename=path.name, actor="test")


def new_api_client(engine: Any, name: str = "wechat", channels: tuple[str, ...] = ("wechat_account",)) -> str:
    """Create an API client and return its plain bearer token."""
    from web.views.api import create_client

    with engine.session() as session:
        _client, token = create_client(session, name, list(channels), engine.clock.now())
    return token


def case_count(engine: Any) -> int:
    with engine.session() as session:
        return session.scalar(select(func.count(Instance.id))) or 0


def enterprise_case(engine: Any, business_key: str) -> Any:
    from handlers.models import EnterpriseCase

    with engine.session() as session:
        case = session.scalar(select(EnterpriseCase).where(EnterpriseCase.business_key == business_key))
        if case is not None:
            session.expunge(case)
        return case


def open_tasks(engine: Any, business_key: str) -> list[Any]:
    """Open human-task rows of one case (detached)."""
    from engine.models import HumanTask

    with engine.session() as session:
        rows = list(session.scalars(select(HumanTask).join(Instance, Instance.id == HumanTask.instance_id)
                                    .where(Instance.business_key == business_key).order_by(HumanTask.id)))
        for row in rows:
            session.expunge(row)
        return rows


def complete(engine: Any, business_key: str, spec_id: str, data: dict[str, Any], actor: str) -> None:
    """Complete the open task ``spec_id`` of a case (what a clerk's form post ends in)."""
    rows = [t for t in open_tasks(engine, business_key) if t.spec_id == spec_id]
    assert rows, f"{spec_id} is not open; open: {[t.spec_id for t in open_tasks(engine, business_key)]}"
    engine.runtime.complete_task(rows[0].task_guid, data, actor=actor)


def fenghua_to_rating(engine: Any, business_key: str, unit: str = "FH-JXJ") -> None:
    """Drive a Fenghua case through a single-department transfer (FH-4), the unit's answer and the revisit,
    until the enterprise's rating task is open."""
    complete(engine, business_key, "Task_Contact", {
        "contact_record": "已电话联系企业，核实用电增容需求。", "route": "transfer",
        "opinion": "请区经信局协调供电部门办理增容。", "handling_unit": unit}, "fh_staff")
    complete(engine, business_key, "Task_UnitHandle", {
        "result": "solved", "answer": "已协调供电公司，增容方案本周内实施。"}, "fh_unit")
    complete(engine, business_key, "Task_SignOff", {"signoff": "approve"}, "fh_staff")  # 办结审核 (RC-3)
    complete(engine, business_key, "Task_Revisit", {"revisit_mode": "phone", "revisit_note": "企业确认已收到答复。"},
             "fh_staff")
