"""Supervision ledger (FH-8, PA-7), tracking view (PA-9) and monthly briefing (FH-10) with its .xlsx export,
computed from cases driven through the engine with tests/diagrams/domain_handlers.bpmn."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy import select

from engine.errors import QifuError
from engine.models import HumanTask, Instance
from engine.process_engine import ProcessEngine
from handlers import intake
from handlers.models import EnterpriseCase
from tests.conftest import diagram
from tests.xlsx import table
from web.read import ledger as ledger_report

FH = {"unit": "FH-CENTRE", "channel": "hotline", "category": "factor_land", "enterprise_name": "奉化某电子科技有限公司",
      "contact_name": "陈先生", "contact_phone": "13912345678", "description": "用地指标咨询"}
PA = {**FH, "unit": "PA01", "channel": "visit", "category": None}


@pytest.fixture
def flow(case_engine):
    case_engine.deploy(diagram("domain_handlers.bpmn"), filename="domain_handlers.bpmn")
    return case_engine


def start(engine, region: str = "fenghua", **over) -> int:
    fields = {**(FH if region == "fenghua" else PA), **over}
    return intake.submit_case(engine, "domain_handlers", fields, region=region).instance_id


def complete(engine, iid: int, spec_id: str, **data) -> None:
    with engine.session() as s:
        guid = s.scalar(select(HumanTask.task_guid).where(HumanTask.instance_id == iid, HumanTask.spec_id == spec_id))
    assert guid, spec_id
    engine.runtime.complete_task(guid, data, actor="clerk")


def dispatch(engine, iid: int, unit: str = "FH-JXJ", route: str = "transfer", joint: str = "") -> None:
    complete(engine, iid, "dispatch", route=route, target_unit=unit, joint_list=joint, escalate_to="", opinion="按职能交办",
             revisit_kind="complaint")


@pytest.fixture
def september(flow):
    """Three Fenghua cases received 2026-09-30 and one Pan'an case; followed into October.

    A: FH-JXJ answers the same day, satisfied → closed in September.
    B: FH-KJJ misses its deadline (督办 on 2026-10-10), answers late in October, dissatisfied → carried.
    C: joint review FH-JXJ + FH-SWJ, still open.
    P: a Pan'an case at PA01, not yet dispatched.
    """
    a, b, c = start(flow), start(flow), start(flow)
    dispatch(flow, a)
    complete(flow, a, "answer", reply="已答复")
    complete(flow, a, "revisit", satisfaction="满意")
    dispatch(flow, b, unit="FH-KJJ")
    dispatch(flow, c, route="joint", joint="FH-JXJ,FH-SWJ")
    p = start(flow, region="pan_an")
    flow.clock.set("2026-10-10T08:00:00")
    assert flow.management.run_due_timers() == 2  # B and C passed their 2 working days (due 2026-10-09)
    flow.clock.set("2026-10-12T10:00:00")
    complete(flow, b, "answer", reply="迟复")
    complete(flow, b, "revisit", satisfaction="不满意")
    return {"A": a, "B": b, "C": c, "P": p}


@pytest.mark.req("FH-8", "PA-7")
def test_ledger_lists_every_case_with_status_deadline_and_overdue(flow, september) -> None:
    with flow.session() as s:
        now = flow.clock.now()

        def ledger(**query: str) -> list[ledger_report.LedgerRow]:
            return ledger_report.ledger_page(flow, s, ledger_report.LedgerQuery(**query), now=now).rows

        rows = {r.business_key: r for r in ledger()}
        counts = ledger_report.ledger_counts(s, "fenghua")
        pan_an = ledger(region="pan_an")
        jxj = {r.business_key for r in ledger(unit="FH-JXJ")}
        assert [r.business_key for r in ledger_report.ledger_rows(flow, s, ledger_report.LedgerQuery(), now=now)] \
            == [r.business_key for r in ledger()]  # the export streams the same rows
    a, b, c = (rows[f"FH-20260930-000{n}"] for n in (1, 2, 3))
    assert (a.ledger_status, a.status_name, a.overdue, a.deadline, a.case_status) == (
        "closed", "销账", False, None, "completed")
    assert (b.ledger_status, b.status_name, b.overdue, b.answered_late) == ("carried", "挂账", True, True)
    assert b.stage == "办理答复" and b.deadline is not None  # back with the unit after 不满意
    assert c.ledger_status == "carried" and c.overdue and c.deadline.isoformat() == "2026-10-09T15:59:59+00:00"
    assert counts == {"handling": 0, "answered": 0, "closed": 1, "carried": 2, "overdue": 2, "total": 3}
    assert [r.business_key for r in pan_an] == ["PA-20260930-0001"] and pan_an[0].unit_name.startswith("安文街道")
    assert jxj == {a.business_key, c.business_key}


@pytest.mark.req("PA-9")
def test_tracking_shows_open_cases_per_station_and_stage(flow, september) -> None:
    # a second Pan'an station with an answered case: received 10-12, answered 10-14 = 2 working days
    p2 = start(flow, region="pan_an", unit="PA03")
    dispatch(flow, p2, unit="PA-COUNTY")
    flow.clock.set("2026-10-14T16:00:00")
    complete(flow, p2, "answer", reply="已处理")
    with flow.session() as s:
        view = {t.unit: t for t in ledger_report.tracking(flow, s, region="pan_an", now=flow.clock.now())}
    assert list(view) == ["PA01", "PA03"]
    assert (view["PA01"].open, view["PA01"].by_stage, view["PA01"].overdue) == (1, {"分办": 1}, False)
    assert view["PA01"].average_working_days is None
    assert (view["PA03"].answered, view["PA03"].average_working_days) == (1, 2.0)
    assert view["PA03"].by_stage == {"回访": 1}  # complaint: revisited
    with flow.session() as s:
        fh = {t.unit: t for t in ledger_report.tracking(flow, s, region="fenghua", now=flow.clock.now())}
    assert fh["FH-CENTRE"].open == 2 and fh["FH-CENTRE"].overdue == 2
    assert fh["FH-CENTRE"].by_stage == {"办理答复": 2}


@pytest.mark.req("FH-10")
def test_monthly_briefing_per_unit(flow, september) -> None:
    with flow.session() as s:
        sep = ledger_report.briefing(s, "2026-09", "fenghua")
        oct_ = ledger_report.briefing(s, "2026-10", "fenghua")
    rows = {r.unit: r for r in sep.rows}
    assert list(rows) == ["FH-JXJ", "FH-KJJ", "FH-SWJ"]  # in reference order
    jxj, kjj, swj = rows["FH-JXJ"], rows["FH-KJJ"], rows["FH-SWJ"]
    assert (jxj.received, jxj.answered_on_time, jxj.answered_late, jxj.carried, jxj.satisfied) == (2, 1, 0, 0, 1)
    assert jxj.satisfaction_rate == 1.0 and jxj.on_time_rate == 1.0
    assert (kjj.received, kjj.answered_on_time, kjj.carried, kjj.supervised) == (1, 0, 0, 0)  # not late yet
    assert swj.received == 1
    assert (sep.total.received, sep.total.answered_on_time, sep.total.satisfied) == (3, 1, 1)
    o = {r.unit: r for r in oct_.rows}
    assert (o["FH-KJJ"].received, o["FH-KJJ"].answered_late, o["FH-KJJ"].carried) == (0, 1, 1)
    assert (o["FH-KJJ"].supervised, o["FH-KJJ"].dissatisfied, o["FH-KJJ"].satisfaction_rate) == (1, 1, 0.0)
    assert (o["FH-JXJ"].carried, o["FH-SWJ"].carried, o["FH-JXJ"].supervised) == (1, 1, 1)  # C: joint, overdue
    assert oct_.total.carried == 2 and oct_.total.supervised == 2 and oct_.total.received == 0
    with flow.session() as s:
        assert ledger_report.briefing(s, "2026-08").rows == []
        with pytest.raises(QifuError, match="YYYY-MM"):
            ledger_report.briefing(s, "2026-13")


@pytest.mark.req("FH-10")
def test_briefing_cli_writes_an_xlsx(flow, september, tmp_path, monkeypatch) -> None:
    from web.cli import main

    monkeypatch.setenv("QIFU_DATABASE_URL", flow.url)
    out = tmp_path / "brief.xlsx"
    result = CliRunner().invoke(main, ["briefing", "2026-10", "--region", "fenghua", "--xlsx", str(out)])
    assert result.exit_code == 0, result.output
    assert "奉化区服务企业情况简报 2026-10" in result.output and "区科技局" in result.output
    ws = load_workbook(out).active
    assert ws["A1"].value == "奉化区服务企业情况简报（2026-10）"
    header, rows = table(ws)
    assert header[:7] == ["单位编码", "单位", "受理/交办", "按时答复", "超期答复", "挂账", "督办/催办"]
    body = {r[0]: r for r in rows}
    assert body["FH-KJJ"][1] == "区科技局" and body["FH-KJJ"][4] == 1 and body["FH-KJJ"][5] == 1
    assert body["合计"][5] == 2
    as_json = CliRunner().invoke(main, ["--json", "briefing", "2026-09"])
    data = json.loads(as_json.output)
    assert data["total"]["received"] == 4  # both regions: three Fenghua cases and one Pan'an case
    bad = CliRunner().invoke(main, ["briefing", "2026/09"])
    assert bad.exit_code == 2 and "YYYY-MM" in bad.output


# --- the tracking board against a recount (#17 item 5) -----------------------------------------------------
def recount(engine: ProcessEngine, region: str | None, now: Any) -> tuple[dict[str, tuple[int, int, dict[str, int]]],
                                                                           list[str]]:
    """Per unit (open, overdue, cases per open task name) and the open cases in the board's order, counted in
    Python from whole rows."""
    from engine.clock import to_utc

    with engine.session() as s:
        cases = [c for c in s.scalars(select(EnterpriseCase)) if region is None or c.region == region]
        instances = {i.id: (i.status, i.due_at) for i in s.scalars(select(Instance))}
        tasks: dict[int, list[str | None]] = {}
        for t in s.scalars(select(HumanTask)):
            tasks.setdefault(t.instance_id, []).append(t.name)
        per_unit: dict[str, tuple[int, int, dict[str, int]]] = {}
        ordered = []
        for c in cases:
            status, due = instances[c.instance_id]
            if status != "running" or c.ledger_status == "closed":
                continue
            late = bool(c.overdue) or (due is not None and to_utc(due) < now)
            count, overdue, stages = per_unit.get(c.unit, (0, 0, {}))
            for name in set(tasks.get(c.instance_id, [])) or {"（无待办）"}:
                stages[name or "（未命名环节）"] = stages.get(name or "（未命名环节）", 0) + 1
            per_unit[c.unit] = (count + 1, overdue + late, stages)
            ordered.append((not late, due is None, to_utc(due) if due else now, c.business_key))
    return per_unit, [key for *_, key in sorted(ordered)]


def assert_board_equals_recount(engine, region: str | None, now) -> None:
    """tracking() per unit and every page of open_cases_page() (4 a page; with the count passed in and counted
    by the page itself) are what :func:`recount` gives."""
    expected, order = recount(engine, region, now)
    with engine.read() as s:
        units = ledger_report.tracking(engine, s, region=region, now=now)
        assert {u.unit: (u.open, u.overdue, u.by_stage) for u in units} == expected, region
        total = sum(u.open for u in units)
        pages = []
        for number in range(1, max(1, -(-total // 4)) + 1):
            given = ledger_report.open_cases_page(engine, s, region=region, now=now, page=number, page_size=4,
                                                  total=total)
            counted = ledger_report.open_cases_page(engine, s, region=region, now=now, page=number, page_size=4)
            assert (counted.total, counted.pages, [r.business_key for r in counted.rows]) == \
                (given.total, given.pages, [r.business_key for r in given.rows])
            pages += [r.business_key for r in given.rows]
    assert pages == order, region


def test_tracking_equals_a_recount(flow, september) -> None:
    for at in ("2026-10-09T10:00:00", "2026-10-20T10:00:00"):
        flow.clock.set(at)
        flow.management.run_due_timers()
        for region in ("pan_an", "fenghua", None):
            assert_board_equals_recount(flow, region, flow.clock.now())


def test_briefing_equals_a_recount_of_every_case(flow, september, monkeypatch) -> None:
    """The backlog (挂账 cases the month did not touch) is counted in SQL; counted instead case by case, with
    every case of the scope taken as touched, each month's briefing is the same."""
    flow.clock.set("2026-11-20T10:00:00")
    flow.management.run_due_timers()
    months = ("2026-09", "2026-10", "2026-11", "2026-12")
    backlog = []
    carried_only = ledger_report._carried_only
    monkeypatch.setattr(ledger_report, "_carried_only",
                        lambda *a: backlog.append(carried_only(*a)) or backlog[-1])
    with flow.read() as s:
        fast = {(m, r): ledger_report.briefing(s, m, r).to_dict() for m in months for r in ("fenghua", "pan_an", None)}
    monkeypatch.setattr(ledger_report, "_touched_in",
                        lambda start, end, scope: select(EnterpriseCase.id).where(*scope))
    with flow.read() as s:
        slow = {(m, r): ledger_report.briefing(s, m, r).to_dict() for m in months for r in ("fenghua", "pan_an", None)}
    assert fast == slow
    assert any(count and per_unit for count, per_unit in backlog[:len(fast)])  # the backlog path was taken
