"""A step that the diagram refuses comes back on the form in Chinese with the input kept (#10, item 8):
an unknown unit code in the transfer form was a bare English "Internal Server Error"."""

from __future__ import annotations

from sqlalchemy import select

from engine.models import Instance
from handlers.intake import submit_case
from tests.web.conftest import login, open_task_guid, post_form
from tests.web.test_supervision import FH_FIELDS


def test_an_unknown_unit_in_the_transfer_form_is_a_chinese_form_error(client, web_engine) -> None:
    case = submit_case(web_engine, "fenghua_one_place", FH_FIELDS)
    guid = open_task_guid(web_engine, case.business_key, "Task_Contact")
    with web_engine.session() as session:
        before = session.scalar(select(Instance.version).where(Instance.id == case.instance_id))
    login(client, "fh_staff")
    for unit in ("NO-SUCH-UNIT", " "):
        response = post_form(client, f"/tasks/{guid}", {
            "f_contact_record": "已电话联系企业", "f_route": "transfer", "f_opinion": "请承办单位答复",
            "f_handling_unit": unit})
        html = response.get_data(as_text=True)
        assert response.status_code in (400, 422), html[:300]
        assert "Internal Server Error" not in html and "承办单位" in html
        assert "已电话联系企业" in html  # what the clerk typed is kept
    with web_engine.session() as session:
        assert session.scalar(select(Instance.version).where(Instance.id == case.instance_id)) == before
