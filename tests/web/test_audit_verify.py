"""The verification page (审计): one case's chain or every visible one, 500 a page, naming the first broken
row; and the log of revealed contacts (PIPL: who, when, which field, why) for the cases the auditor sees."""

from __future__ import annotations

from typing import Any

import pytest
from lxml import html as lxml_html
from sqlalchemy import text

from engine import history
from engine.clock import SHANGHAI
from handlers.intake import submit_case
from tests.web.conftest import CONTACT_PHONE, login, logout, post_form, start_case
from tests.web.intake_support import CASE_FIELDS, fenghua_to_rating
from tests.web.test_replay import joint_review_case


def rewrite_plainly(engine: Any, business_key: str, seq: int) -> int:
    """An intruder without the key: edit row ``seq`` and recompute the plain hashes after it (and the head)."""
    with engine.session() as s:
        iid = s.execute(text("SELECT id FROM instance WHERE business_key = :k"), {"k": business_key}).scalar()
        rows = history.event_rows(s, iid)
        prev, target = history.GENESIS, None
        for ev in rows:
            if ev.seq >= seq:
                actor = "mallory" if ev.seq == seq else ev.actor
                target = target or ev.id
                digest = history.event_hash(prev, instance_id=iid, seq=ev.seq, at=ev.at, actor=actor,
                                            action=ev.action, task_guid=ev.task_guid, spec_id=ev.spec_id,
                                            payload=ev.payload)
                s.execute(text("UPDATE event SET actor = :a, prev_hash = :p, hash = :h WHERE id = :id"),
                          {"a": actor, "p": prev, "h": digest, "id": ev.id})
                prev = digest
            else:
                prev = ev.hash
        s.execute(text("UPDATE instance SET history_hash = :h WHERE id = :i"), {"h": prev, "i": iid})
    return target


def chains(page: str) -> list[dict[str, str]]:
    doc = lxml_html.fromstring(page)
    return [{"case": tr.get("data-case"), "seq": tr.get("data-first-seq"), "event": tr.get("data-first-event"),
             "kind": tr.get("data-kind")} for tr in doc.xpath('//table[contains(@class, "verify-problems")]/tbody/tr')]


@pytest.mark.req("AU-1")
def test_verification_page_names_the_first_broken_row(client, web_engine, clock, monkeypatch):
    good = joint_review_case(web_engine, clock)
    bad = submit_case(web_engine, "fenghua_one_place", {**CASE_FIELDS, "channel": "hotline"}, actor="fh_staff").business_key
    fenghua_to_rating(web_engine, bad)
    login(client, "auditor")
    page = client.get("/audit/verify", query_string={"case": good}).get_data(as_text=True)
    assert "历史记录完整" in page and web_engine.history.keys.current.id in page and chains(page) == []

    event_id = rewrite_plainly(web_engine, bad, 3)
    response = client.get("/audit/verify", query_string={"case": bad})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "历史记录被篡改" in page
    assert chains(page) == [{"case": bad, "seq": "3", "event": str(event_id), "kind": "bad_mac"}]
    assert "签名与哈希不符" in page

    monkeypatch.setattr("web.views.audit.VERIFY_PAGE", 1)  # one chain a page: the next page continues
    first = client.get("/audit/verify", query_string={"all": "1"}).get_data(as_text=True)
    assert "本页校验了 1 个案件链" in first and 'id="verify-next"' in first and chains(first) == []
    found, after = [], None
    for _ in range(5):
        page = client.get("/audit/verify", query_string={"all": "1", **({"after": after} if after else {})})
        html = page.get_data(as_text=True)
        found.extend(chains(html))
        nxt = lxml_html.fromstring(html).get_element_by_id("verify-next", None)
        if nxt is None:
            break
        after = nxt.get("href").split("after=")[1]
    assert [c["case"] for c in found] == [bad]

    for args, status, message in (({"case": "FH-20990101-0001"}, 404, "未找到案件"),
                                  ({"all": "1", "after": "abc"}, 400, "起始编号")):
        response = client.get("/audit/verify", query_string=args)
        assert response.status_code == status and message in response.get_data(as_text=True)
    logout(client)
    login(client, "fh_unit")
    assert client.get("/audit/verify").status_code == 403


@pytest.mark.req("AU-1")
def test_the_unmask_log_shows_who_revealed_what_and_why(client, other_client, web_engine, clock):
    fh_case = joint_review_case(web_engine, clock)
    pa_case = start_case(web_engine).business_key
    login(client, "auditor")
    page = client.get(f"/cases/{fh_case}").get_data(as_text=True)
    assert CONTACT_PHONE not in page and 'name="reason"' in page  # masked; may reveal with a reason
    shown = post_form(client, f"/cases/{fh_case}/reveal", {"field": "contact_phone", "reason": "审计抽查回访真实性"},
                      form_url=f"/cases/{fh_case}")
    assert shown.status_code == 200 and CONTACT_PHONE in shown.get_data(as_text=True)
    login(other_client, "pa_accept")
    assert post_form(other_client, f"/cases/{pa_case}/reveal", {"field": "contact_phone", "reason": "联系企业补材料"},
                     form_url=f"/cases/{pa_case}").status_code == 200

    doc = lxml_html.fromstring(client.get("/audit/verify").get_data(as_text=True))
    rows = doc.xpath('//section[@id="unmask-log"]//tbody/tr[@data-case]')
    assert [(r.get("data-user"), r.get("data-case")) for r in rows] == [("auditor", fh_case)]  # only its region
    cells = [c.text_content().strip() for c in rows[0]]
    assert cells[1] == "审计（8718中心）" and cells[3] == "联系电话" and cells[4] == "审计抽查回访真实性"
    assert cells[0] == clock.now().astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")
