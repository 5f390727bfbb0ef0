"""RC-2 through the web: the centre's 审批延期申请 form shows the unit's request (date and reason, read-only) and
its decision moves the deadline."""

from __future__ import annotations

import pytest
from lxml import html as lxml_html
from sqlalchemy import select

from engine.clock import to_utc
from engine.models import Instance, Timer
from handlers.intake import submit_case
from tests.scenarios.steps import end_of_day
from tests.web.conftest import login, open_task_guid, post_form
from tests.web.intake_support import CASE_FIELDS, complete


@pytest.mark.req("RC-2")
def test_the_centre_sees_the_request_and_approves_it(client, web_engine, clock):
    key = submit_case(web_engine, "fenghua_one_place", {**CASE_FIELDS, "channel": "hotline"}, actor="fh_staff").business_key
    complete(web_engine, key, "Task_Contact", {"contact_record": "已电话联系企业。", "route": "transfer",
                                               "opinion": "请区经信局办理。", "handling_unit": "FH-JXJ"}, "fh_staff")
    clock.set("2026-10-08T09:00:00")
    complete(web_engine, key, "Task_UnitHandle", {"result": "extend", "answer": "需等待供电公司方案。",
                                                  "extension_date": "2026-10-16",
                                                  "extension_reason": "供电公司增容方案需市公司批复"}, "fh_unit")
    guid = open_task_guid(web_engine, key, "Task_ExtensionDecision")
    login(client, "fh_staff")
    page = client.get(f"/tasks/{guid}").get_data(as_text=True)
    (date_input,) = lxml_html.fromstring(page).xpath("//input[@name='f_extension_date']")
    assert date_input.get("value") == "2026-10-16" and date_input.get("disabled") is not None
    assert "供电公司增容方案需市公司批复" in page
    response = post_form(client, f"/tasks/{guid}", {"f_extension_decision": "approve", "f_extension_opinion": "同意"})
    assert response.status_code in (200, 302, 303)
    with web_engine.session() as s:
        due = s.scalars(select(Timer.due_at).join(Instance, Instance.id == Timer.instance_id).where(
            Instance.business_key == key, Timer.spec_id == "Boundary_UnitDeadline",
            Timer.status == "waiting")).all()
    assert [to_utc(d) for d in due] == [end_of_day("2026-10-16")]
