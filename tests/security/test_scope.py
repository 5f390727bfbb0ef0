"""Scope (#10, items 1 and 6): what a user may not see answers exactly like what does not exist, every list
and export shows only the cases the case page would show, intake offers only the user's own units, the
auditor changes nothing, a finished case takes no attachments."""

from __future__ import annotations

import itertools
import random
import re
from datetime import UTC, datetime
from io import BytesIO

import pytest
from openpyxl import load_workbook
from sqlalchemy import insert, select

from engine.models import Deployment, Instance
from handlers.models import CaseUnit, EnterpriseCase
from tests.web.conftest import CONTACT_PHONE, login, open_task_guid, post_form, start_case
from tests.web.test_supervision import case_rows, page, world  # noqa: F401 - the fixture
from tests.xlsx import table
from web.models import Attachment
from web.scope import CaseScope, may_see_case, visible_cases

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


# --- the rule in Python and in SQL are one ------------------------------------------------------------
class _User:
    def __init__(self, unit: str | None, region: str | None, roles: set[str]) -> None:
        self.unit, self.region, self.roles = unit, region, frozenset(roles)


def test_sql_scope_is_the_case_page_rule(db_url: str) -> None:
    """Generated cases and users: the SQL condition selects exactly the cases ``may_see_case`` allows."""
    from engine import db

    rng = random.Random(10)
    units = {"pan_an": ["PA01", "PA02", "PA03"], "fenghua": ["FH-CENTRE", "FH-JXJ", "FH-ZJJ"]}
    now = datetime(2026, 10, 1, tzinfo=UTC)
    scopes: dict[int, CaseScope] = {}
    engine = db.get_engine(db_url)
    with engine.begin() as conn:
        dep = conn.execute(insert(Deployment.__table__).values(
            process_key="p", version=1, content_hash="x", xml="", spec_json="{}", deployed_at=now)).inserted_primary_key[0]
        for i in range(60):
            region = rng.choice(list(units))
            unit = rng.choice(units[region])
            iid = conn.execute(insert(Instance.__table__).values(
                deployment_id=dep, business_key=f"K{i}", status="running", state_json="{}", data_json="{}",
                version=1, started_at=now, updated_at=now, history_seq=0, history_hash="")).inserted_primary_key[0]
            cid = conn.execute(insert(EnterpriseCase.__table__).values(
                instance_id=iid, business_key=f"K{i}", process_key="p", region=region, unit=unit,
                enterprise_name="e", received_at=now, ledger_status="handling", overdue=False, created_at=now,
                updated_at=now)).inserted_primary_key[0]
            involved = set(rng.sample(units[region] + units["fenghua"], rng.randint(0, 2)))
            for code, role in zip(involved, itertools.cycle(("handling", "co_handling", "escalated")), strict=False):
                conn.execute(insert(CaseUnit.__table__).values(case_id=cid, unit_code=code, role=role, at=now))
            scopes[cid] = CaseScope(f"K{i}", iid, unit, region, frozenset(involved))
    roles = [set(), {"综合受理板块"}, {"督办"}, {"审计"}, {"承办单位"}, {"企业综合服务办公室"}, {"管理员", "代办服务板块"}]
    users = [_User(unit, region, r) for region, codes in units.items() for unit in [*codes, None] for r in roles]
    with engine.connect() as conn:
        for user in users:
            by_sql = set(conn.scalars(select(EnterpriseCase.id).where(visible_cases(user))))
            by_rule = {cid for cid, scope in scopes.items() if may_see_case(user, scope)}
            assert by_sql == by_rule, (user.unit, user.region, sorted(user.roles))
    assert any(by_rule for by_rule in [{c for c, s in scopes.items() if may_see_case(u, s)} for u in users])


# --- what one may not see looks like what does not exist -------------------------------------------------
def _answer(response) -> tuple[int, str]:
    return response.status_code, re.sub(r'value="[^"]+"', "", response.get_data(as_text=True))


def test_probing_task_ids_of_another_region_learns_nothing(client, other_client, web_engine) -> None:
    """The old lookup searched event payloads with LIKE and answered 403 for a match: a Fenghua clerk recovered a
    Pan'an phone number digit by digit. Every guess now gets the same 404."""
    case = start_case(web_engine, unit="PA01")
    guid = open_task_guid(web_engine, case.business_key, "accept")
    web_engine.runtime.complete_task(guid, {"opinion": "同意受理"}, actor="pa_accept")  # the task closes
    login(other_client, "pa_accept")
    assert web_engine.tasks.instance_of(guid) == case.instance_id
    login(client, "fh_staff")  # another region
    guesses = [f"%{CONTACT_PHONE[:k]}%" for k in range(1, 12)] + ["%", "%_%", "13%", "00000000-0000-0000-0000-0"]
    answers = {_answer(client.get(f"/tasks/{g}")) for g in [*guesses, guid, "no-such-task"]}
    assert len(answers) == 1 and next(iter(answers))[0] == 404
    # the user who may see the case is led from the closed task to its case
    response = other_client.get(f"/tasks/{guid}")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/cases/{case.business_key}")


def test_a_case_of_another_unit_is_a_404_like_a_missing_one(client, web_engine) -> None:
    case = start_case(web_engine, unit="PA01")
    login(client, "pa2_accept")
    assert _answer(client.get(f"/cases/{case.business_key}")) == _answer(client.get("/cases/PA-20990101-0001"))


# --- every list and export has the case page's scope ------------------------------------------------------
def test_a_station_office_sees_only_its_station_in_every_supervision_page(client, world) -> None:  # noqa: F811
    """pa_office (企业综合服务办公室 of PA01) saw PA02's case C in the ledger and its xlsx while the case page
    refused it."""
    login(client, "pa_office")
    assert client.get(f"/cases/{world['C']}").status_code == 404
    ledger = case_rows(page(client, "/supervision/ledger"))
    assert world["C"] not in ledger and {world["A"], world["B"], world["D"]} <= set(ledger)
    _, body = table(load_workbook(BytesIO(client.get("/supervision/ledger.xlsx").data)).active)
    assert world["C"] not in {r[0] for r in body} and world["A"] in {r[0] for r in body}
    tracking = page(client, "/supervision/tracking")
    assert world["C"] not in tracking and 'data-unit="PA02"' not in tracking
    briefing = page(client, "/supervision/briefing?month=2026-09")
    assert 'data-unit="PA02"' not in briefing and 'data-unit="PA01"' in briefing


# --- the auditor reads, a finished case is closed ---------------------------------------------------------
def test_the_pan_an_auditor_sees_but_cannot_upload(client, web_engine) -> None:
    from web.auth import add_user

    case = start_case(web_engine, unit="PA01")
    with web_engine.session() as session:
        add_user(session, "pa_auditor", "audit-pass-2026", unit="PA-COUNTY", roles=["审计"])
    login(client, "pa_auditor", "audit-pass-2026")
    html = client.get(f"/cases/{case.business_key}").get_data(as_text=True)
    assert case.business_key in html and "上传附件" not in html
    response = post_form(client, f"/cases/{case.business_key}/attachments", {"file": (BytesIO(PDF), "a.pdf")},
                         form_url=f"/cases/{case.business_key}", content_type="multipart/form-data")
    assert response.status_code == 403
    with web_engine.session() as session:
        assert session.scalar(select(Attachment.id)) is None


def test_a_finished_case_takes_no_new_attachments(client, web_engine) -> None:
    case = start_case(web_engine, unit="PA01")
    with web_engine.session() as session:
        session.get(Instance, case.instance_id).status = "completed"
    login(client, "pa_accept")
    assert "上传附件" not in client.get(f"/cases/{case.business_key}").get_data(as_text=True)
    response = post_form(client, f"/cases/{case.business_key}/attachments", {"file": (BytesIO(PDF), "a.pdf")},
                         form_url=f"/cases/{case.business_key}", content_type="multipart/form-data")
    assert response.status_code == 409 and "已办结" in response.get_data(as_text=True)
    with web_engine.session() as session:
        assert session.scalar(select(Attachment.id)) is None


@pytest.mark.parametrize("username", ["pa_accept"])
def test_attachments_download_with_the_default_relative_var_dir(username, web_engine, tmp_path,
                                                                monkeypatch) -> None:
    """With README's set-up (QIFU_VAR_DIR unset: ``var/`` under the working directory) every download was a 500:
    send_file resolved ``var/attachments`` under the package."""
    from web.app import create_app

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QIFU_VAR_DIR", raising=False)
    app = create_app(engine=web_engine, config={"TESTING": True, "SECRET_KEY": "k"})
    assert app.config["ATTACHMENT_DIR"] == str(tmp_path / "var" / "attachments")
    client = app.test_client()
    case = start_case(web_engine, unit="PA01")
    login(client, username)
    post_form(client, f"/cases/{case.business_key}/attachments", {"file": (BytesIO(PDF), "a.pdf")},
              form_url=f"/cases/{case.business_key}", content_type="multipart/form-data")
    with web_engine.session() as session:
        row = session.scalar(select(Attachment))
    monkeypatch.chdir("/")  # a server's working directory may change; the resolved path does not
    download = client.get(f"/cases/{case.business_key}/attachments/{row.id}")
    assert download.status_code == 200 and download.data == PDF
