"""Notices are written in words: the 督办 notice after a dissatisfied rating names the handling route by its label
in the diagram's form (处置方式：单部门流转), never the code; the history's note names the kind of notice."""

from __future__ import annotations

import json
import os

import pytest
from sqlalchemy import select

from engine.models import Event
from handlers.models import Outbox
from tests.scenarios.conftest import deploy_process
from tests.scenarios.steps import answer
from tests.scenarios.test_fenghua import KEY, contact, reply_revisit_rate, submit


@pytest.fixture
def app_engine(db_url, clock):
    """The engine as the application builds it (web.engine.build_engine): notices label choices."""
    from handlers import reference
    from web.engine import build_engine
    from web.settings import Settings

    engine = build_engine(Settings.from_env({"QIFU_DATABASE_URL": db_url,
                                             "QIFU_HISTORY_KEY_FILE": os.environ["QIFU_HISTORY_KEY_FILE"]}),
                          clock=clock)
    with engine.session() as session:
        reference.load_reference(session)
    deploy_process(engine, KEY)
    return engine


@pytest.mark.req("FH-8", "RC-5")
def test_the_accountability_notice_names_the_route_by_its_label(app_engine, clock):
    iid = submit(app_engine, channel="web_form")
    contact(app_engine, iid, "transfer", handling_unit="FH-JTJ")
    clock.set("2026-10-08T10:00:00")
    answer(app_engine, iid, {"result": "solved", "answer": "已安排巡查。"})
    reply_revisit_rate(app_engine, iid, "不满意")
    with app_engine.session() as s:
        notice = s.scalars(select(Outbox).where(Outbox.instance_id == iid).order_by(Outbox.id.desc())).first()
        payloads = [json.loads(p) for p in s.scalars(select(Event.payload).where(Event.instance_id == iid))]
    assert notice.recipient == "督办" and notice.template == "accountability"
    assert "处置方式：单部门流转" in notice.body and "transfer" not in notice.body
    assert "新厂房用地指标" in notice.body  # the case's title, from the ledger
    notes = [n["note"] for p in payloads for n in p.get("notes", [])]
    assert "通知 督办：督查问责通报" in notes
    assert not any(n.startswith("通知") and n.endswith(("accountability", "answered", "transferred")) for n in notes)
