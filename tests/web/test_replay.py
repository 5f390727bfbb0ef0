"""The replay page (审计, read-only) and ``qifu audit replay``: the same step of the same case says the same
thing in both, at every step of a Fenghua joint-review case; and the history reads in words everywhere
(case page 办理记录, replay), with gateways and bookkeeping only in the raw view."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from click.testing import CliRunner
from lxml import html as lxml_html

from engine.clock import FixedClock
from tests.web.conftest import CONTACT_PHONE, login, logout
from tests.web.intake_support import complete, ensure_deployed, open_tasks
from web.cli import main

FH = "fenghua_one_place"


def joint_review_case(engine: Any, clock: FixedClock) -> str:
    """A Fenghua case through the special team's joint review (FH-5), its deadline passing (督办), the answer,
    the revisit and a satisfied rating: every kind of step a replay must show."""
    from handlers.intake import submit_case

    ensure_deployed(engine, FH)
    key = submit_case(engine, FH, {
        "enterprise_name": "宁波奉化示例机械有限公司", "contact_name": "王经理", "contact_phone": CONTACT_PHONE,
        "channel": "association", "category": "factor_sewage", "title": "排污管网接入",
        "description": "新厂区排污管网需要接入市政管网。"}, actor="fh_staff").business_key
    complete(engine, key, "Task_Contact", {"contact_record": "已电话联系企业，核实了管网接入需求。", "route": "joint",
                                           "opinion": "涉及住建、生态环境两个部门，提请专班商办。"}, "fh_staff")
    complete(engine, key, "Task_Organise", {"joint_units": "FH-ZJJ,FH-STHJ", "meeting_at": "2026-10-09",
                                            "invite_jiwei": True, "invite_zuofeng": False,
                                            "meeting_minutes": "住建局负责管网接入，生态环境分局负责排污许可。"}, "fh_team")
    clock.set("2026-10-16T09:00:00")  # the 5 working days after the meeting have passed (and a week: 进度)
    assert engine.management.run_due_timers() >= 1
    complete(engine, key, "Task_ProgressJoint", {"progress": "管网接入施工中。"}, "fh_unit")
    complete(engine, key, "Task_JointHandle", {"result": "solved", "answer": "管网已接入，排污许可已核发。",
                                               "unit_results": "住建局：管网接入完成；生态环境分局：许可已核发。"}, "fh_unit")
    complete(engine, key, "Task_Revisit", {"revisit_mode": "phone", "revisit_note": "企业确认已收到答复。"}, "fh_staff")
    complete(engine, key, "Task_EnterpriseRating", {"satisfaction": "满意", "rating_comment": "辛苦了"}, "企业")
    assert not open_tasks(engine, key), [t.spec_id for t in open_tasks(engine, key)]
    return key


def cli(db_url: str, *args: str) -> Any:
    return CliRunner().invoke(main, list(args), env={"QIFU_DATABASE_URL": db_url}, catch_exceptions=False)


def page_step(html: str) -> dict[str, Any]:
    """What the replay page shows, read off the page as a person would see it."""
    doc = lxml_html.fromstring(html)

    def text(id_: str) -> str | None:
        found = doc.get_element_by_id(id_, None)
        return found.text_content().strip() if found is not None else None

    rows = [{"key": tr.get("data-key"), "label": tr.find_class("label")[0].text_content().strip(),
             "before": tr.find_class("before")[0].text_content().strip(),
             "after": tr.find_class("after")[0].text_content().strip(),
             "changed": "changed" in (tr.get("class") or "")}
            for tr in doc.xpath('//table[@id="replay-data"]/tbody/tr[@data-key]')]
    markers = json.loads(doc.get_element_by_id("case-diagram-markers").text_content())

    def items(id_: str) -> list[str]:
        return [li.text_content().strip() for li in doc.xpath(f'//ul[@id="{id_}"]/li[not(@class="muted")]')]

    return {"event": {"at": text("replay-at"), "who": text("replay-who"), "channel": text("replay-channel"),
                      "what": text("replay-what")},
            "elements": items("replay-elements"), "data_rows": rows, "markers": markers,
            "active": items("replay-active"), "notes": [n.text_content().strip() for n in doc.find_class("replay-note")],
            "position": text("replay-position")}


@pytest.mark.req("AU-1", "FH-5")
def test_replay_page_and_cli_show_the_same_at_every_step(client, web_engine, web_db_url, clock):
    key = joint_review_case(web_engine, clock)
    login(client, "auditor")
    steps = json.loads(cli(web_db_url, "--json", "audit", "replay", key).output)["steps"]
    assert steps >= 8
    seen: dict[str, Any] = {}
    for step in range(1, steps + 1):
        response = client.get(f"/audit/cases/{key}/replay?step={step}")
        assert response.status_code == 200, step
        shown = page_step(response.get_data(as_text=True))
        result = cli(web_db_url, "--json", "audit", "replay", key, "--step", str(step))
        assert result.exit_code == 0, result.output
        told = json.loads(result.output)
        assert shown["event"] == told["event"], step
        assert shown["elements"] == told["elements"], step
        assert shown["data_rows"] == told["data_rows"], step
        assert shown["markers"] == told["markers"], step
        assert shown["notes"] == told["notes"], step
        assert shown["active"] == told["active_names"], step
        assert shown["position"] == f"第 {step} / {steps} 步"
        # the text form prints the same values
        text = cli(web_db_url, "audit", "replay", key, "--step", str(step)).output
        for value in [*told["event"].values(), *(f"{r['label']}：{r['before'] or '—'} → {r['after'] or '—'}"
                                                 for r in told["data_rows"])]:
            assert value in text, (step, value)
        seen[told["event"]["what"]] = told

    # what the steps said, in words: people by name and unit, the timer as the system, choices by label
    started = seen["案件受理"]
    assert started["event"]["who"] == "中心工作人员（奉化8718中心）" or started["event"]["who"].startswith("中心工作人员")
    assert "工业协会/商会" in started["event"]["channel"] or "商会" in started["event"]["channel"]
    contact = seen["办理任务：联系企业、了解诉求"]
    route = next(r for r in contact["data_rows"] if r["key"] == "route")
    assert (route["label"], route["before"], route["after"], route["changed"]) == ("处置方式", "", "专班商办", True)
    assert contact["markers"]["completed"][:2] == ["StartEvent_Intake", "Task_Register"]
    assert "Task_Organise" in contact["markers"]["active"]
    fired = seen["期限到达：会后5个工作日"]
    assert fired["event"]["who"] == "系统（期限到达）" and fired["event"]["channel"] == "定时器"
    assert "Boundary_JointDeadline" in fired["markers"]["overdue"]
    assert "Boundary_JointDeadline" not in contact["markers"]["overdue"]  # as they were: not yet overdue then
    organise = seen["办理任务：组织专班商办会"]
    units = next(r for r in organise["data_rows"] if r["key"] == "joint_units")
    assert "区住建局" in units["after"] and "FH-ZJJ" not in units["after"]
    rating = seen["办理任务：满意度评价"]
    assert rating["event"]["who"] == "企业" and rating["event"]["channel"] == "企业查询链接"
    # never shown: gateways, bookkeeping, full contact numbers
    for told in seen.values():
        readable = json.dumps({k: v for k, v in told.items() if k not in ("raw", "data")}, ensure_ascii=False)
        assert "Gateway" not in json.dumps(told["elements"]) + told["event"]["what"]
        assert "cycle_started_at" not in readable and "tracking_hash" not in readable
        assert CONTACT_PHONE not in json.dumps(told, ensure_ascii=False)
    assert any("Gateway_Route" in json.dumps(t["raw"]) for t in seen.values())  # the raw view keeps them


@pytest.mark.req("AU-1")
def test_replay_is_for_auditors_read_only_and_within_scope(client, other_client, web_engine, clock):
    key = joint_review_case(web_engine, clock)
    login(client, "fh_staff")  # 中心工作人员: sees the case, is no auditor
    assert client.get(f"/cases/{key}").status_code == 200
    assert client.get(f"/audit/cases/{key}/replay").status_code == 403
    assert client.get("/audit/verify").status_code == 403
    assert other_client.get(f"/audit/cases/{key}/replay").status_code == 302  # not logged in: the login page
    login(other_client, "pa_super")  # 督办 of the other region: the case does not exist for it
    assert other_client.get(f"/audit/cases/{key}/replay").status_code == 404
    logout(client)
    login(client, "auditor")
    page = client.get(f"/audit/cases/{key}/replay?step=2").get_data(as_text=True)
    main_part = page.split("<main>")[1].split("</main>")[0]
    assert 'method="post"' not in main_part and "只读" in main_part  # nothing on the page changes the case
    for bad, status in (("0", 400), ("-1", 400), ("abc", 400), ("99999", 404)):
        response = client.get(f"/audit/cases/{key}/replay?step={bad}")
        assert response.status_code == status, bad
        assert "步" in response.get_data(as_text=True)
    assert client.get("/audit/cases/FH-20990101-0001/replay").status_code == 404


@pytest.mark.req("AU-1")
def test_case_page_history_reads_in_words_and_keeps_a_raw_view(client, web_engine, clock):
    key = joint_review_case(web_engine, clock)
    login(client, "auditor")
    page = client.get(f"/cases/{key}").get_data(as_text=True)
    history = page[page.index('id="history"'):page.index("<h2>附件</h2>")]
    assert "联系企业、了解诉求" in history and "专班商办" in history and "系统（期限到达）" in history
    assert "企服专班" in history and "区住建局" in history and "逐步回放" in history
    for internal in ("Gateway_", "cycle_started_at", "Task_", "joint", "fh_staff", "FH-ZJJ", "association"):
        assert internal not in re.sub(r'href="[^"]*"', "", history), internal
    raw = client.get(f"/cases/{key}?history=raw").get_data(as_text=True)
    raw_history = raw[raw.index('id="history"'):raw.index("<h2>附件</h2>")]
    assert "Gateway_Reenter" in raw_history and "cycle_started_at" in raw_history and "fh_staff" in raw_history
    assert CONTACT_PHONE not in raw and "tracking_hash" not in raw
