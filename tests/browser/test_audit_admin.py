"""Issue #13's acceptance in a real browser: the auditor and the administrator at their pages.

1. The auditor (AU-1): finds a Fenghua case with a joint review (专班商办/会商) by the enterprise's name in
   案件查询, replays it step by step (the step links and the slider; at each step the event, the diagram with
   its completed/active/overdue markers as they were, and the case data with the changed fields highlighted),
   verifies its chain, and downloads its event log as XES, which pm4py reads.
2. The administrator (WD-1, FH-9): creates a user, edits a unit's liaison, marks a weekend day of the National
   Day holiday as a make-up working day (调休上班) — the preview lists the open deadline that moves, applying
   moves it, and the case page shows the new deadline — all in the browser; each change is in the admin log
   with who made it.

The cases are built through the engine (``handlers.intake.submit_case`` and tasks completed through the
runtime), as the clerks' forms would; everything the auditor and the administrator do is done in the page.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import login
from tests.web.intake_support import complete, open_tasks

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:Install the optional requirement:UserWarning")]

FH = "fenghua_one_place"
START = "2026-09-30T10:00:00"  # the live server's clock: the day before the National Day holiday
JOINT_ENTERPRISE = "宁波奉化会商示例精工有限公司"
OTHER_ENTERPRISE = "宁波奉化另一家汽配有限公司"
UNIT_TASK = "承办单位办理"
MAKEUP_DAY = "2026-10-04"  # a Sunday inside the 10-01..10-07 holiday


def submit(live_server: Any, enterprise: str, **fields: str) -> str:
    from handlers.intake import submit_case

    data = {"enterprise_name": enterprise, "contact_name": "王经理", "contact_phone": "13805740177",
            "channel": "association", "category": "factor_sewage", "title": "排污管网接入",
            "description": "新厂区排污管网需要接入市政管网。", **fields}
    return submit_case(live_server.engine, FH, data, actor="fh_staff").business_key


def joint_review_case(live_server: Any) -> str:
    """A Fenghua case through the special team's joint review (FH-5): the meeting, its deadline passing, the
    joint answer, the revisit and the enterprise's rating."""
    engine = live_server.engine
    key = submit(live_server, JOINT_ENTERPRISE)
    complete(engine, key, "Task_Contact", {"contact_record": "已电话联系企业，核实了管网接入需求。", "route": "joint",
                                           "opinion": "涉及住建、生态环境两个部门，提请专班商办。"}, "fh_staff")
    complete(engine, key, "Task_Organise", {"joint_units": "FH-ZJJ,FH-STHJ", "meeting_at": "2026-10-09",
                                            "invite_jiwei": True, "invite_zuofeng": False,
                                            "meeting_minutes": "住建局负责管网接入，生态环境分局负责排污许可。"}, "fh_team")
    engine.clock.set("2026-10-16T09:00:00")  # the 5 working days after the meeting have passed (and a week)
    assert engine.management.run_due_timers() >= 1
    complete(engine, key, "Task_ProgressJoint", {"progress": "管网接入施工中。"}, "fh_unit")
    complete(engine, key, "Task_JointHandle", {"result": "solved", "answer": "管网已接入，排污许可已核发。",
                                               "unit_results": "住建局：管网接入完成；生态环境分局：许可已核发。"}, "fh_unit")
    complete(engine, key, "Task_Revisit", {"revisit_mode": "phone", "revisit_note": "企业确认已收到答复。"}, "fh_staff")
    complete(engine, key, "Task_EnterpriseRating", {"satisfaction": "满意", "rating_comment": "辛苦了"}, "企业")
    assert not open_tasks(engine, key), [t.spec_id for t in open_tasks(engine, key)]
    return key


def text(page: Any, selector: str) -> str:
    return page.locator(selector).inner_text().strip()


def shown_step(page: Any) -> dict[str, Any]:
    """What the replay page shows at the current step, read off the page."""
    rows = {}
    for tr in page.locator("#replay-data tbody tr[data-key]").all():
        rows[tr.get_attribute("data-key")] = {
            "label": tr.locator(".label").inner_text().strip(), "before": tr.locator(".before").inner_text().strip(),
            "after": tr.locator(".after").inner_text().strip(), "changed": "changed" in (tr.get_attribute("class") or "")}
    position = re.fullmatch(r"第 (\d+) / (\d+) 步", text(page, "#replay-position"))
    assert position, text(page, "#replay-position")
    return {"step": int(position.group(1)), "steps": int(position.group(2)), "what": text(page, "#replay-what"),
            "who": text(page, "#replay-who"), "channel": text(page, "#replay-channel"), "at": text(page, "#replay-at"),
            "rows": rows}


def diagram_marked(page: Any, element_id: str, marker: str) -> bool:
    """Whether bpmn-js drew the element with the marker (qifu-completed / qifu-active / qifu-overdue)."""
    page.wait_for_selector("#case-diagram svg [data-element-id]")
    return page.locator(f'#case-diagram g.djs-element.{marker}[data-element-id="{element_id}"]').count() == 1


@pytest.mark.req("AU-1", "FH-5")
def test_auditor_finds_replays_verifies_and_exports_a_joint_review_case(live_server, new_page, tmp_path: Path) -> None:
    import pm4py

    engine = live_server.engine
    try:
        submit(live_server, OTHER_ENTERPRISE)  # a second Fenghua case the search must leave out
        key = joint_review_case(live_server)
    finally:
        engine.clock.set(START)

    auditor = new_page()
    login(auditor, "auditor")
    assert auditor.locator("#nav-audit").inner_text().strip() == "审计"

    # 案件查询 by the enterprise's name
    auditor.get_by_role("link", name="案件查询").click()
    auditor.wait_for_load_state()
    auditor.fill("#case-search input[name=q]", "会商示例精工")
    auditor.locator("#case-search button[type=submit]").click()
    auditor.wait_for_load_state()
    assert "q=" in auditor.url
    rows = auditor.locator("#cases tbody tr[data-case]")
    assert rows.count() == 1, auditor.inner_text("#cases")
    row = rows.first
    assert row.get_attribute("data-case") == key
    assert JOINT_ENTERPRISE in row.inner_text() and "销账" in row.inner_text()
    assert "共 1 件" in text(auditor, "#search-total")

    # the case page, then 逐步回放
    row.get_by_role("link", name=key).click()
    auditor.wait_for_url(f"**/cases/{key}")
    auditor.get_by_role("link", name="逐步回放").click()
    auditor.wait_for_url(f"**/audit/cases/{key}/replay")
    assert "逐步回放" in text(auditor, "h1") and "只读" in text(auditor, "h1")
    assert auditor.locator("main form[method=post]").count() == 0  # nothing on the page changes the case

    first = shown_step(auditor)
    assert first["step"] == 1 and first["steps"] >= 8
    assert first["what"] == "案件受理" and first["who"].startswith("中心工作人员")
    assert "商会" in first["channel"]
    assert first["rows"]["enterprise_name"]["after"] == JOINT_ENTERPRISE
    assert first["rows"]["enterprise_name"]["label"] == "企业名称"
    assert "13805740177" not in auditor.inner_text("main")  # the contact number masked
    assert diagram_marked(auditor, "StartEvent_Intake", "qifu-completed")
    assert diagram_marked(auditor, "Task_Contact", "qifu-active")
    assert not diagram_marked(auditor, "Task_Organise", "qifu-active")

    # step by step with 下一步, reading every step
    steps = [first]
    while auditor.locator("#replay-next").count():
        auditor.locator("#replay-next").click()
        auditor.wait_for_load_state()
        shown = shown_step(auditor)
        assert shown["step"] == steps[-1]["step"] + 1 and auditor.url.endswith(f"step={shown['step']}")
        steps.append(shown)
        if shown["what"] == "办理任务：联系企业、了解诉求":
            route = shown["rows"]["route"]
            assert (route["label"], route["before"], route["after"], route["changed"]) == (
                "处置方式", "", "专班商办", True)
            changed_bg = auditor.locator('#replay-data tr[data-key="route"] td.after').evaluate(
                "el => getComputedStyle(el).backgroundColor")
            plain_bg = auditor.locator('#replay-data tr[data-key="enterprise_name"] td.after').evaluate(
                "el => getComputedStyle(el).backgroundColor")
            assert changed_bg == "rgb(254, 249, 195)" and plain_bg != changed_bg  # highlighted as the legend says
            assert not shown["rows"]["enterprise_name"]["changed"]
            assert diagram_marked(auditor, "Task_Contact", "qifu-completed")
            assert diagram_marked(auditor, "Task_Organise", "qifu-active")
            assert not diagram_marked(auditor, "Boundary_JointDeadline", "qifu-overdue")  # not yet, as it was
        if shown["what"] == "办理任务：组织专班商办会":
            units = shown["rows"]["joint_units"]
            assert units["changed"] and "区住建局" in units["after"] and "FH-ZJJ" not in units["after"]
    assert len(steps) == first["steps"]
    whats = [s["what"] for s in steps]
    for expected in ("办理任务：联系企业、了解诉求", "办理任务：组织专班商办会", "期限到达：会后5个工作日",
                     "办理任务：满意度评价"):
        assert expected in whats, whats
    assert not any("Gateway" in w or "Task_" in w for w in whats)
    assert steps[-1]["what"] == "办理任务：满意度评价" and steps[-1]["who"] == "企业"

    # the slider: jump straight to the step where the meeting's deadline passed
    fired = whats.index("期限到达：会后5个工作日") + 1
    auditor.locator("#replay-step").fill(str(fired))
    auditor.wait_for_url(f"**/replay?step={fired}")
    timer_step = shown_step(auditor)
    assert timer_step["step"] == fired and timer_step["who"] == "系统（期限到达）"
    assert timer_step["channel"] == "定时器" and timer_step["at"].startswith("2026-10-16")
    assert diagram_marked(auditor, "Boundary_JointDeadline", "qifu-overdue")
    assert auditor.js_errors == []

    # verification of the case's chain, from the replay page
    auditor.get_by_role("link", name="校验本案历史记录").click()
    auditor.wait_for_url("**/audit/verify?case=*")
    assert text(auditor, "h1") == "校验历史记录"
    status = text(auditor, "#verify-status")
    assert re.fullmatch(r"历史记录完整：\d+ 条记录的哈希链与签名均正确。", status), status
    assert key in text(auditor, "#verify-result h2")
    assert auditor.locator("#verify-result .verify-problems").count() == 0

    # the event log of the case, downloaded as XES from the replay page, read by pm4py
    auditor.goto(f"/audit/cases/{key}/replay")
    with auditor.expect_download() as download_info:
        auditor.locator("#export-case-xes").click()
    download = download_info.value
    assert download.suggested_filename == f"qifu-eventlog-{key}.xes"
    xes = tmp_path / download.suggested_filename
    download.save_as(xes)
    log = pm4py.read_xes(str(xes))
    assert set(log["case:concept:name"]) == {key}
    activities = set(log["concept:name"])
    assert {"联系企业、了解诉求", "组织专班商办会", "满意度评价"} <= activities, activities
    assert not any(a.startswith(("Gateway", "Task_")) for a in activities)
    assert {"time:timestamp", "org:resource", "org:group", "lifecycle:transition"} <= set(log.columns)
    organised = log[(log["concept:name"] == "组织专班商办会") & (log["lifecycle:transition"] == "complete")]
    assert list(organised["org:resource"]) == ["企服专班（8718中心）"] and list(organised["org:group"]) == ["企服专班"]
    assert set(log["lifecycle:transition"]) == {"start", "complete"}
    _dfg, starts, ends = pm4py.discover_dfg(log)
    assert set(starts) == {"登记台账"} and set(ends) == {"销账"}


def case_deadline(page: Any, key: str, task: str) -> str:
    """The deadline of the case's open task as its case page shows it (当前期限)."""
    page.goto(f"/cases/{key}")
    row = page.locator("tr", has=page.locator("td", has_text=task)).filter(has_text="任务")
    assert row.count() == 1, page.inner_text("main")
    return row.locator("td").nth(4).inner_text().strip()


@pytest.mark.req("WD-1", "FH-9")
def test_administrator_creates_a_user_edits_a_liaison_and_marks_a_makeup_day(live_server, new_page) -> None:
    engine = live_server.engine
    engine.clock.set(START)
    key = submit(live_server, "宁波奉化调休示例电子有限公司", category="factor_power", title="用电增容")
    complete(engine, key, "Task_Contact", {"contact_record": "已电话联系企业，核实用电增容需求。", "route": "transfer",
                                           "opinion": "请区经信局协调供电部门办理增容。", "handling_unit": "FH-JXJ"},
             "fh_staff")
    [task] = open_tasks(engine, key)
    assert task.spec_id == "Task_UnitHandle"  # 2 working days from 09-30: across the holiday

    admin = new_page()
    login(admin, "admin")
    admin.locator("#nav-admin").click()
    admin.wait_for_load_state()

    # a new user
    admin.get_by_role("link", name="用户", exact=True).first.click()
    admin.locator("#new-user").click()
    admin.wait_for_load_state()
    assert text(admin, "h1") == "新建用户"
    admin.fill("#user-form input[name=username]", "fh_clerk9")
    admin.fill("#user-form input[name=display_name]", "李受理")
    admin.select_option("#user-form select[name=unit]", "FH-CENTRE")
    admin.check('#user-form input[name=roles][value="中心工作人员"]')
    admin.get_by_role("button", name="新建并生成临时密码").click()
    admin.wait_for_load_state()
    assert text(admin, "h1") == "已新建用户 fh_clerk9"
    assert len(text(admin, "#temporary-password")) >= 8
    admin.get_by_role("link", name="用户列表").click()
    admin.wait_for_load_state()
    assert "李受理" in admin.locator('tr[data-user="fh_clerk9"]').inner_text()

    # a unit's liaison
    admin.get_by_role("link", name="单位与联络员").first.click()
    admin.wait_for_load_state()
    admin.locator('tr[data-unit="FH-KJJ"]').get_by_role("link", name="FH-KJJ").click()
    admin.wait_for_url("**/admin/units/FH-KJJ")
    admin.fill("#unit-form input[name=liaison_name]", "办公室联络员")
    admin.fill("#unit-form input[name=liaison_phone]", "13905740001")
    admin.locator("#unit-form button[type=submit]").click()
    admin.wait_for_load_state()
    assert "已保存 FH-KJJ" in admin.inner_text("main")
    assert admin.input_value("#unit-form input[name=liaison_name]") == "办公室联络员"

    # the case's deadline before: counted in working days across the National Day holiday
    before = case_deadline(admin, key, UNIT_TASK)
    assert before.startswith("2026-10-09 23:59"), before  # 10-08, 10-09: the first two after the holiday

    # the make-up day: click the day in the year view, preview, apply
    admin.locator("#nav-admin").click()
    admin.wait_for_load_state()
    admin.get_by_role("link", name="工作日历").first.click()
    admin.wait_for_load_state()
    day = admin.locator(f'#year-grid td[data-day="{MAKEUP_DAY}"]')
    assert day.get_attribute("data-kind") == "rest"  # a Sunday, within the holiday
    day.locator("a").click()
    admin.wait_for_load_state()
    assert admin.input_value("#day-form input[name=day]") == MAKEUP_DAY
    assert admin.is_checked('#day-form input[name=kind][value="work"]')  # the other kind, proposed
    admin.fill("#day-form input[name=note]", "国庆节调休上班")
    admin.locator("#preview-day").click()
    admin.wait_for_load_state()
    assert text(admin, "h1").startswith(f"预览：{MAKEUP_DAY} 设为")
    assert "尚未修改任何内容" in text(admin, "#preview-summary")
    moved = admin.locator(f'#deadline-changes tr[data-case="{key}"][data-moved="yes"]')
    assert moved.count() == 1, admin.inner_text("#deadline-changes")
    old, new = text(admin, f'#deadline-changes tr[data-case="{key}"] .old-due'), \
        text(admin, f'#deadline-changes tr[data-case="{key}"] .new-due')
    assert old.split()[0] == before.split()[0] and new < old, (old, new)
    assert UNIT_TASK in moved.inner_text() and "提前" in moved.inner_text()
    assert int(admin.locator("#change-counts").get_attribute("data-moved")) >= 1
    assert case_deadline(new_page_for(admin), key, UNIT_TASK) == before  # nothing changed yet
    admin.locator("#apply-change").click()
    admin.wait_for_load_state()
    assert text(admin, "h1").startswith(f"已修改：{MAKEUP_DAY} 设为")
    assert admin.locator(f'#deadline-changes tr[data-case="{key}"][data-moved="yes"]').count() == 1
    assert "已调整" in text(admin, "#change-counts")

    # the case page shows the moved deadline; the year view shows the make-up day
    after = case_deadline(admin, key, UNIT_TASK)
    assert after.startswith("2026-10-08 23:59") and new.startswith("2026-10-08 23:59"), (before, after, new)
    admin.goto("/admin/calendar?year=2026")
    assert admin.locator(f'#year-grid td[data-day="{MAKEUP_DAY}"]').get_attribute("data-kind") == "makeup"

    # the admin log: each change, with who
    admin.get_by_role("link", name="操作日志").first.click()
    admin.wait_for_load_state()
    log = {tr.get_attribute("data-kind"): tr for tr in admin.locator("#admin-log tbody tr[data-kind]").all()}
    for kind, label, target in (("user_created", "新建用户", "fh_clerk9"), ("unit_updated", "修改单位与联络员", "FH-KJJ"),
                                ("calendar_day", "修改工作日历", MAKEUP_DAY)):
        assert kind in log, list(log)
        cells = [td.inner_text().strip() for td in log[kind].locator("td").all()]
        assert cells[1] == "admin" and cells[2] == label and target in cells[3] + cells[4], cells
    assert "办公室联络员" in log["unit_updated"].inner_text()
    assert admin.js_errors == []


def new_page_for(page: Any) -> Any:
    """Another tab of the same person (same cookies)."""
    return page.context.new_page()
