"""The event-log export for process mining: XES (IEEE 1849) and CSV from the audit pages, the case list and
``qifu audit export``; pm4py reads both and discovers a model whose activities are the diagram's task names.
Streamed page by page (keyset), filtered by process, version and received dates, within the user's scope."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pm4py  # test-only dependency (pyproject: the test extra)
import pytest
from click.testing import CliRunner
from lxml import etree

from engine.history import LogFilter
from tests.web.conftest import login, logout, start_case
from tests.web.intake_support import CASE_FIELDS, complete, fenghua_to_rating
from tests.web.test_replay import FH, joint_review_case
from web.cli import main

pytestmark = pytest.mark.filterwarnings("ignore:Install the optional requirement:UserWarning")
FENGHUA = Path(__file__).resolve().parents[2] / "processes" / "fenghua_one_place.bpmn"
XES = "{http://www.xes-standard.org/}"


def diagram_task_names() -> set[str]:
    tree = etree.parse(str(FENGHUA))
    ns = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL"}
    return {e.get("name") for kind in ("userTask", "serviceTask") for e in tree.iterfind(f".//bpmn:{kind}", ns)}


@pytest.fixture
def cases(web_engine: Any, clock: Any) -> dict[str, str]:
    """Three Fenghua cases along different paths (joint review, quick answer, transfer) and a Pan'an case."""
    from handlers.intake import submit_case

    joint = joint_review_case(web_engine, clock)
    quick = submit_case(web_engine, FH, {**CASE_FIELDS, "channel": "hotline"}, actor="fh_staff").business_key
    complete(web_engine, quick, "Task_Contact", {"contact_record": "电话了解情况。", "route": "quick",
                                                 "opinion": "政策咨询，现场答复。"}, "fh_staff")
    transfer = submit_case(web_engine, FH, {**CASE_FIELDS, "channel": "window_8718"}, actor="fh_staff").business_key
    fenghua_to_rating(web_engine, transfer)
    complete(web_engine, transfer, "Task_EnterpriseRating", {"satisfaction": "满意"}, "企业")
    pan_an = start_case(web_engine).business_key
    return {"joint": joint, "quick": quick, "transfer": transfer, "pan_an": pan_an}


def download(client: Any, **args: str) -> Any:
    response = client.get("/audit/export", query_string=args)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.is_streamed and "attachment" in response.headers["Content-Disposition"]
    return response


def model_activities(log: Any) -> set[str]:
    net, _im, _fm = pm4py.discover_petri_net_inductive(log)
    return {t.label for t in net.transitions if t.label}


@pytest.mark.req("AU-1")
def test_pm4py_reads_the_xes_and_the_csv_and_discovers_the_diagrams_tasks(client, cases, tmp_path):
    login(client, "auditor")
    xes = download(client, format="xes", process=FH).data
    path = tmp_path / "log.xes"
    path.write_bytes(xes)
    log = pm4py.read_xes(str(path))
    assert set(log["case:concept:name"]) == {cases["joint"], cases["quick"], cases["transfer"]}  # no Pan'an case
    activities = model_activities(log)
    tasks = diagram_task_names()
    assert activities <= tasks, activities - tasks
    assert {"联系企业、了解诉求", "组织专班商办会", "会商共审", "共同承办单位办理", "快速答复", "流转交办",
            "承办单位办理", "回访", "满意度评价", "登记台账"} <= activities

    csv_bytes = download(client, format="csv", process=FH).data
    import pandas

    frame = pandas.read_csv(io.BytesIO(csv_bytes), dtype=str)
    frame = pm4py.format_dataframe(frame, case_id="case:concept:name", activity_key="concept:name",
                                   timestamp_key="time:timestamp")
    assert model_activities(frame) == activities
    assert len(frame) == len(log)

    # a user task starts when it opens and completes by whoever completed it, in its lane
    contact = log[(log["case:concept:name"] == cases["joint"]) & (log["concept:name"] == "联系企业、了解诉求")]
    assert list(contact["lifecycle:transition"]) == ["start", "complete"]
    done = contact[contact["lifecycle:transition"] == "complete"].iloc[0]
    assert done["org:resource"].startswith("中心工作人员") and done["org:group"] == "中心工作人员"
    assert done["element"] == "Task_Contact"
    register = log[(log["case:concept:name"] == cases["joint"]) & (log["concept:name"] == "登记台账")].iloc[0]
    assert (register["lifecycle:transition"], register["org:resource"]) == ("complete", "系统")
    assert not any("Gateway" in str(e) for e in log["element"])  # gateways are not activities


@pytest.mark.req("AU-1")
def test_the_xes_is_well_formed_ieee_1849(client, cases):
    login(client, "auditor")
    root = etree.fromstring(download(client, format="xes").data)
    assert root.tag == f"{XES}log" and root.get("xes.version") == "1849-2016"
    assert {e.get("prefix") for e in root.iterfind(f"{XES}extension")} == {"concept", "time", "org", "lifecycle"}
    traces = root.findall(f"{XES}trace")
    assert len(traces) == 3
    for trace in traces:
        assert trace.find(f"{XES}string[@key='concept:name']") is not None
        events = trace.findall(f"{XES}event")
        assert events
        stamps = []
        for event in events:
            keys = {a.get("key"): a for a in event}
            assert {"concept:name", "time:timestamp", "lifecycle:transition", "element"} <= set(keys)
            assert keys["time:timestamp"].tag == f"{XES}date" and keys["time:timestamp"].get("value").endswith("+08:00")
            assert keys["lifecycle:transition"].get("value") in ("start", "complete")
            stamps.append(keys["time:timestamp"].get("value"))
        assert stamps == sorted(stamps)


@pytest.mark.req("AU-1")
def test_filters_scope_cli_and_the_case_list_give_the_same_log(client, cases, web_engine, web_db_url, tmp_path):
    login(client, "auditor")
    page = client.get("/cases").get_data(as_text=True)
    assert 'id="export-events"' in page and "/audit/export" in page  # from the case list
    replay = client.get(f"/audit/cases/{cases['joint']}/replay").get_data(as_text=True)
    assert f"/audit/export?case={cases['joint']}&amp;format=xes" in replay  # from the replay page
    one = download(client, format="csv", case=cases["joint"]).data.decode()
    assert {line.split(",")[0] for line in one.splitlines()[1:]} == {cases["joint"]}

    web_csv = download(client, format="csv", process=FH, **{"from": "2026-09-30", "to": "2026-09-30"}).data
    out = tmp_path / "cli.csv"
    result = CliRunner().invoke(main, ["--json", "audit", "export", "--format", "csv", "--process", FH,
                                       "--from", "2026-09-30", "--to", "2026-09-30", "--output", str(out)],
                                env={"QIFU_DATABASE_URL": web_db_url}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["bytes"] == len(web_csv)
    assert out.read_bytes() == web_csv  # the same log, row for row
    assert {line.split(",")[0] for line in web_csv.decode().splitlines()[1:]} == {cases["joint"]}  # received 09-30

    # nothing received after the last case, nothing in a version that does not exist
    later = download(client, format="csv", **{"from": "2026-10-16"}).data.decode()
    assert {line.split(",")[0] for line in later.splitlines()[1:]} == {cases["quick"], cases["transfer"]}
    assert download(client, format="csv", **{"from": "2026-10-17"}).data.decode().count("\n") == 1
    assert download(client, format="csv", process=FH, version="2").data.decode().count("\n") == 1
    assert download(client, format="csv", process=FH, version="1").data == download(client, format="csv",
                                                                                   process=FH).data
    for args, message in (({"format": "pdf"}, "xes 或 csv"), ({"format": "xes", "version": "x"}, "版本"),
                          ({"format": "xes", "version": "1"}, "须同时选择流程"),
                          ({"format": "csv", "from": "2026-13-01"}, "受理日期"),
                          ({"format": "csv", "from": "2026-10-02", "to": "2026-10-01"}, "不能晚于")):
        response = client.get("/audit/export", query_string=args)
        assert response.status_code == 400 and message in response.get_data(as_text=True), args
    result = CliRunner().invoke(main, ["--json", "audit", "export", "--format", "xes", "--from", "昨天",
                                       "--output", str(out)], env={"QIFU_DATABASE_URL": web_db_url})
    assert result.exit_code == 2 and "受理日期" in json.loads(result.output)["message"]

    logout(client)
    login(client, "fh_staff")  # no auditor: no export
    assert client.get("/audit/export", query_string={"format": "xes"}).status_code in (302, 403)


def test_the_log_is_read_in_keyset_pages(web_engine, cases):
    everything = [(r.instance_id, r.event.seq) for r in web_engine.history.event_log(LogFilter())]
    paged = [(r.instance_id, r.event.seq) for r in web_engine.history.event_log(LogFilter(), page_size=3)]
    assert paged == everything and len(everything) > 9 and everything == sorted(everything)
    only = [r.business_key for r in web_engine.history.event_log(LogFilter(process_key="web_case"), page_size=2)]
    assert set(only) == {cases["pan_an"]}
