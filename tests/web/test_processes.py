"""流程设计 pages (#12): versions with their cases, upload with a summary of changes and a confirm step (nothing
stored before it; the hostile files ``qifu deploy`` refuses are refused here the same way), XML download, the
modeler's JSON endpoints, and migration of running cases from the page."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from engine.models import Deployment, Event, Instance
from web.cli import main as cli

from .conftest import WEB_DIAGRAM, csrf_token, login, post_form, start_case

WEB_XML = WEB_DIAGRAM.read_text(encoding="utf-8")
TWO_DAYS = "${working_days_after(received_at, 2)}"
THREE_DAYS = "${working_days_after(received_at, 3)}"


def edited(old: str, new: str, xml: str = WEB_XML) -> str:
    assert old in xml, old
    return xml.replace(old, new, 1)


def deployments(engine, key: str = "web_case") -> list[tuple[int, str | None, str]]:
    with engine.session() as s:
        return [tuple(r) for r in s.execute(select(Deployment.version, Deployment.deployed_by, Deployment.content_hash)
                                            .where(Deployment.process_key == key).order_by(Deployment.version))]


def count_deployments(engine) -> int:
    with engine.session() as s:
        return s.scalar(select(func.count(Deployment.id)))


def upload(client, *files: tuple[str, str | bytes]):
    token = csrf_token(client, "/processes/upload")
    data = {"csrf_token": token, "files": [(io.BytesIO(c.encode() if isinstance(c, str) else c), name)
                                           for name, c in files]}
    return client.post("/processes/upload", data=data, content_type="multipart/form-data")


def held(web_app) -> int:
    root = Path(web_app.config["QIFU_VAR_DIR"]) / "pending-deploys"
    return sum(1 for _ in root.iterdir()) if root.is_dir() else 0


def confirm_url(html: str) -> str:
    match = re.search(r'action="(/processes/upload/[A-Za-z0-9_-]+/confirm)"', html)
    assert match, html
    return match.group(1)


# --- who may look ---------------------------------------------------------------------------------------
def test_designers_and_administrators_only(client, other_client) -> None:
    assert client.get("/processes/").status_code == 302  # to the login page
    assert client.get("/processes/api/lint-data").get_json()["error"]["code"] == "unauthorized"
    login(client, "fh_staff")
    assert client.get("/processes/").status_code == 403
    api = client.get("/processes/api/lint-data")
    assert api.status_code == 403 and api.get_json()["error"]["code"] == "forbidden"
    assert "流程设计" not in client.get("/").get_data(as_text=True)
    login(other_client, "designer")
    page = other_client.get("/processes/")
    assert page.status_code == 200 and "web_case" in page.get_data(as_text=True)
    assert 'id="nav-processes"' in other_client.get("/").get_data(as_text=True)
    admin = other_client.application.test_client()
    login(admin, "admin")
    assert admin.get("/processes/web_case/").status_code == 200


def test_versions_list_who_when_hash_and_cases_per_version(client, web_engine) -> None:
    first = start_case(web_engine)
    start_case(web_engine)
    web_engine.deploy(edited("受理登记", "受理登记（新）").encode(), filename="web_case.bpmn", actor="someone")
    start_case(web_engine)
    with web_engine.session() as s:  # one case of version 1 finishes
        s.get(Instance, first.instance_id).status = "completed"
    login(client, "designer")
    html = client.get("/processes/web_case/").get_data(as_text=True)
    rows = dict(re.findall(r'<tr data-version="(\d+)">(.*?)</tr>', html, re.S))
    assert set(rows) == {"1", "2"}
    counts = {v: (re.search(r'class="running">(\d+)<', r).group(1), re.search(r'class="finished">(\d+)<', r).group(1))
              for v, r in rows.items()}
    assert counts == {"1": ("1", "1"), "2": ("1", "0")}
    hashes = {v: h for v, _, h in deployments(web_engine)}
    assert hashes[2][:16] in rows["2"] and "someone" in rows["2"] and "test" in rows["1"]
    overview = client.get("/processes/").get_data(as_text=True)
    row = re.search(r'<tr data-process="web_case">(.*?)</tr>', overview, re.S).group(1)
    assert "版本 2" in row and 'class="running">2<' in row and 'class="finished">1<' in row


def test_version_page_shows_the_diagram_and_downloads_the_xml(client, web_engine) -> None:
    login(client, "designer")
    page = client.get("/processes/web_case/1").get_data(as_text=True)
    assert 'id="version-diagram"' in page and "modeler/viewer.js" in page
    download = client.get("/processes/web_case/1/xml?download=1")
    assert download.status_code == 200 and download.get_data(as_text=True) == WEB_XML
    assert 'filename="web_case-v1.bpmn"' in download.headers["Content-Disposition"]
    assert client.get("/processes/web_case/9").status_code == 404
    assert client.get("/processes/no_such/").status_code == 404


# --- upload, changes, confirmation ----------------------------------------------------------------------
@pytest.mark.req("BP-4")
def test_upload_lists_the_changes_and_stores_nothing_before_confirmation(client, web_engine, web_app) -> None:
    login(client, "designer")
    new = edited(TWO_DAYS, THREE_DAYS)
    new = edited('<camunda:formField id="visit_date" label="走访日期" type="date" />',
                 '<camunda:formField id="visit_date" label="走访日期" type="date" />'
                 '<camunda:formField id="note" label="备注" type="string" />', new)
    new = edited('name="代办办理"', 'name="代办办理（限时）"', new)
    page = upload(client, ("web_case.bpmn", new))
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "尚未保存" in html and "确认后部署为版本 2" in html
    assert re.search(r'data-element="accept_due".*?定时器：日期 \$\{working_days_after\(received_at, 2\)\} → 日期 '
                     r'\$\{working_days_after\(received_at, 3\)\}', html, re.S)
    assert re.search(r'data-element="accept".*?表单字段新增 note', html, re.S)
    assert re.search(r'data-element="handle".*?名称：代办办理 → 代办办理（限时）', html, re.S)
    assert len(deployments(web_engine)) == 1 and held(web_app) == 1  # held on the server, not deployed
    done = post_form(client, confirm_url(html), {}, form_url="/processes/upload")
    assert done.status_code == 302 and done.headers["Location"].endswith("/processes/web_case/")
    rows = deployments(web_engine)
    assert [(v, by) for v, by, _ in rows] == [(1, "test"), (2, "designer")]
    import hashlib
    assert rows[1][2] == hashlib.sha256(new.encode()).hexdigest()
    assert held(web_app) == 0
    assert "已部署为版本 2" in client.get("/processes/web_case/").get_data(as_text=True)
    again = post_form(client, confirm_url(html), {}, form_url="/processes/upload", follow_redirects=True)
    assert "已失效" in again.get_data(as_text=True) and len(deployments(web_engine)) == 2


def test_an_invalid_upload_shows_the_error_with_the_element_and_deploys_nothing(client, web_engine, web_app) -> None:
    login(client, "designer")
    before = count_deployments(web_engine)
    bad = edited('camunda:topic="ledger"', 'camunda:topic="no_such_topic"')
    page = upload(client, ("web_case.bpmn", bad))
    html = page.get_data(as_text=True)
    assert page.status_code == 422 and "校验未通过，未部署任何文件" in html
    assert re.search(r'<td class="element">register \(登记台账\)</td><td class="message">[^<]*未知的服务任务主题', html)
    assert count_deployments(web_engine) == before and held(web_app) == 0


def _cli_refusal(url: str, path: Path) -> str:
    result = CliRunner().invoke(cli, ["--json", "deploy", str(path)], env={"QIFU_DATABASE_URL": url})
    assert result.exit_code == 2, result.output
    return json.loads(result.output)["message"]


HOSTILE = {
    "xxe": edited("<bpmn:definitions", '<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n<bpmn:definitions')
    .replace('name="受理登记"', 'name="&xxe;"', 1),
    "billion laughs": '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
    + ']>\n<lolz>&lol9;</lolz>',
    "hostile timer": edited(TWO_DAYS, "${__import__('os').system('id')}"),
    "hostile parameter": edited("<camunda:inputParameter name=\"action\">register",
                                "<camunda:inputParameter name=\"action\">${().__class__.__subclasses__()}"),
    "exploding literal": edited(TWO_DAYS, "${'a' * 10**10}"),
    "not utf-8": WEB_XML.replace("受理登记", "x").encode("utf-16"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_files_are_refused_through_the_page_as_qifu_deploy_refuses_them(
        name: str, client, web_engine, web_app, web_db_url, tmp_path) -> None:
    content = HOSTILE[name]
    path = tmp_path / "hostile.bpmn"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    expected = _cli_refusal(web_db_url, path).removeprefix("hostile.bpmn: ")
    login(client, "designer")
    before = count_deployments(web_engine)
    page = upload(client, ("hostile.bpmn", content))
    html = page.get_data(as_text=True)
    assert page.status_code == 422 and "未部署任何文件" in html
    from markupsafe import escape
    assert str(escape(expected)) in html, (expected, html)
    assert count_deployments(web_engine) == before and held(web_app) == 0
    assert "/etc/passwd" not in html.replace('file:///etc/passwd', '') or name != "xxe"


def test_an_oversized_file_is_refused_before_it_is_parsed(client, web_engine, web_app, monkeypatch) -> None:
    monkeypatch.setattr(web_engine.repository, "max_bytes", 1000)  # QIFU_MAX_DIAGRAM_BYTES
    login(client, "designer")
    before = count_deployments(web_engine)
    page = upload(client, ("big.bpmn", WEB_XML))
    html = page.get_data(as_text=True)
    assert page.status_code == 422 and "文件过大" in html and "上限 1000 字节" in html
    assert count_deployments(web_engine) == before and held(web_app) == 0


def test_several_files_deploy_together_or_not_at_all(client, web_engine) -> None:
    login(client, "designer")
    other = (WEB_XML.replace('id="web_case"', 'id="web_case_b"').replace("Defs_web_case", "Defs_b")
             .replace('bpmnElement="web_case"', 'bpmnElement="web_case_b"'))
    bad = edited(TWO_DAYS, "${a &&& b}")
    page = upload(client, ("b.bpmn", other), ("web_case.bpmn", bad))
    assert page.status_code == 422 and "web_case.bpmn" in page.get_data(as_text=True)
    assert deployments(web_engine, "web_case_b") == []
    page = upload(client, ("b.bpmn", other), ("web_case.bpmn", edited(TWO_DAYS, THREE_DAYS)))
    html = page.get_data(as_text=True)
    assert "新的流程键：确认后部署为版本 1" in html and "确认后部署为版本 2" in html
    post_form(client, confirm_url(html), {}, form_url="/processes/upload")
    assert [v for v, _, _ in deployments(web_engine, "web_case_b")] == [1]
    assert [v for v, _, _ in deployments(web_engine)] == [1, 2]
    same = upload(client, ("web_case.bpmn", WEB_XML)).get_data(as_text=True)
    assert "完全相同，不会产生新版本" in same and "confirm-deploy" not in same


def test_confirmation_is_refused_when_another_version_came_in_meanwhile(client, web_engine, web_app) -> None:
    login(client, "designer")
    html = upload(client, ("web_case.bpmn", edited(TWO_DAYS, THREE_DAYS))).get_data(as_text=True)
    web_engine.deploy(edited("受理登记", "受理（他人）").encode(), actor="colleague")
    page = post_form(client, confirm_url(html), {}, form_url="/processes/upload")
    assert page.status_code == 409 and "最新版本已变为 2（预览时为 1）" in page.get_data(as_text=True)
    assert [by for _, by, _ in deployments(web_engine)] == ["test", "colleague"] and held(web_app) == 0


def test_a_held_upload_belongs_to_its_designer_expires_and_must_keep_its_hash(
        client, other_client, web_engine, web_app, clock) -> None:
    login(client, "designer")
    html = upload(client, ("web_case.bpmn", edited(TWO_DAYS, THREE_DAYS))).get_data(as_text=True)
    url = confirm_url(html)
    login(other_client, "admin")  # a different user cannot confirm it
    page = post_form(other_client, url, {}, form_url="/processes/upload", follow_redirects=True)
    assert "已失效" in page.get_data(as_text=True) and len(deployments(web_engine)) == 1
    folder = Path(web_app.config["QIFU_VAR_DIR"]) / "pending-deploys" / url.split("/")[3]
    (folder / "0.bpmn").write_text(edited(TWO_DAYS, "${__import__('os')}"), encoding="utf-8")
    page = post_form(client, url, {}, form_url="/processes/upload", follow_redirects=True)
    assert "内容与核对时不一致" in page.get_data(as_text=True) and len(deployments(web_engine)) == 1
    html = upload(client, ("web_case.bpmn", edited(TWO_DAYS, THREE_DAYS))).get_data(as_text=True)
    clock.advance(minutes=31)
    page = post_form(client, confirm_url(html), {}, form_url="/processes/upload", follow_redirects=True)
    assert "已失效" in page.get_data(as_text=True) and len(deployments(web_engine)) == 1
    for bogus in ("../../etc", "x" * 32):
        assert post_form(client, f"/processes/upload/{bogus}/confirm", {}, form_url="/processes/upload",
                         follow_redirects=True).status_code in (200, 404)
    assert len(deployments(web_engine)) == 1


def test_an_upload_without_files_or_csrf_is_refused(client, web_engine) -> None:
    login(client, "designer")
    before = count_deployments(web_engine)
    token = csrf_token(client, "/processes/upload")
    page = client.post("/processes/upload", data={"csrf_token": token}, content_type="multipart/form-data")
    assert page.status_code == 400 and "请选择至少一个" in page.get_data(as_text=True)
    no_token = client.post("/processes/upload", data={"files": (io.BytesIO(WEB_XML.encode()), "a.bpmn")},
                           content_type="multipart/form-data")
    assert no_token.status_code == 400 and "CSRF" in no_token.get_data(as_text=True)
    assert count_deployments(web_engine) == before


# --- the modeler's JSON ---------------------------------------------------------------------------------
def api(client, url: str, body: object, token: str | None = None):
    headers = {"X-CSRFToken": token} if token else {}
    return client.post(url, data=json.dumps(body), content_type="application/json", headers=headers)


def test_modeler_endpoints(client, web_engine, web_app) -> None:
    import handlers

    login(client, "designer")
    page = client.get("/processes/web_case/1/edit").get_data(as_text=True)
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    data = client.get("/processes/api/lint-data").get_json()
    assert set(data["topics"]) == set(handlers.TOPICS) and "enum" in data["formTypes"]
    templates = client.get("/processes/api/element-templates").get_json()
    assert {t["id"] for t in templates} >= {"qifu.ledger", "qifu.supervise", "qifu.notify"}
    verdicts = api(client, "/processes/api/expressions", {"expressions": [
        {"kind": "condition", "text": "${a && b}"}, {"kind": "condition", "text": "${approved}"},
        {"kind": "timer:date", "text": "${__import__('os')}"}, {"kind": "timer:duration", "text": "P3X"}]},
        token).get_json()["verdicts"]
    assert "语法错误" in verdicts["condition\u0000${a && b}"] and verdicts["condition\u0000${approved}"] is None
    assert "import" in verdicts["timer:date\u0000${__import__('os')}"] and "P3X" in verdicts["timer:duration\u0000P3X"]
    for body in ([], {"expressions": "x"}, {"expressions": [{"kind": "nope", "text": "1"}]}):
        bad = api(client, "/processes/api/expressions", body, token)
        assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "bad_request"
    no_csrf = api(client, "/processes/api/expressions", {"expressions": []})
    assert no_csrf.status_code == 400 and no_csrf.get_json()["error"]["code"] == "csrf"
    # preview, then deploy: the same two steps as the upload page
    refused = api(client, "/processes/api/preview", {"xml": edited(TWO_DAYS, "${x.__class__}"),
                                                     "filename": "web_case.bpmn"}, token)
    body = refused.get_json()["error"]
    assert refused.status_code == 422 and body["code"] == "invalid_diagram" and "accept_due" in body["element"]
    assert held(web_app) == 0
    preview = api(client, "/processes/api/preview", {"xml": edited(TWO_DAYS, THREE_DAYS),
                                                     "filename": "web_case.bpmn"}, token).get_json()
    assert preview["ok"] and preview["base_version"] == 1 and preview["summary"]["changed"][0]["element"] == "accept_due"
    assert len(deployments(web_engine)) == 1
    deployed = api(client, "/processes/api/deploy", {"upload_id": preview["upload_id"]}, token).get_json()
    assert deployed["deployments"][0]["version"] == 2 and deployed["deployments"][0]["url"] == "/processes/web_case/2"
    gone = api(client, "/processes/api/deploy", {"upload_id": preview["upload_id"]}, token)
    assert gone.status_code == 410 and gone.get_json()["error"]["code"] == "upload_expired"
    assert [by for _, by, _ in deployments(web_engine)] == ["test", "designer"]


# --- migration from the page ----------------------------------------------------------------------------
def test_migration_page_dry_run_then_moves_the_chosen_cases(client, web_engine) -> None:
    from tests.web.conftest import open_task_guid

    waiting = start_case(web_engine)
    moved_on = start_case(web_engine)
    web_engine.runtime.complete_task(open_task_guid(web_engine, moved_on.business_key, "accept"),
                                     {"opinion": "受理"}, actor="clerk")
    # version 2 changes the accept deadline (safe while waiting at accept) and the handle task's name
    # (the second case is already there, with an open task under the old name: it cannot move)
    web_engine.deploy(edited('name="代办办理"', 'name="代办办理（限时）"', edited(TWO_DAYS, THREE_DAYS)).encode(),
                      actor="designer")
    login(client, "designer")
    versions = client.get("/processes/web_case/").get_data(as_text=True)
    assert "/processes/web_case/migrate?from=1&amp;to=2" in versions
    page = client.get("/processes/web_case/migrate?from=1&to=2").get_data(as_text=True)
    rows = dict(re.findall(r'<tr data-case="([^"]+)" class="(can|cannot)">', page))
    assert rows == {waiting.business_key: "can", moved_on.business_key: "cannot"}
    assert "名称有改动，已开出的待办无法随之更新" in page and "按新版本重新计算到期时间" in page
    with web_engine.session() as s:  # the dry run changed nothing
        assert {s.get(Deployment, i.deployment_id).version for i in s.scalars(select(Instance))} == {1}
        ids = {i.business_key: i.id for i in s.scalars(select(Instance))}
    token = csrf_token(client, "/processes/web_case/migrate?from=1&to=2")
    done = client.post("/processes/web_case/migrate", data={"csrf_token": token, "from": "1", "to": "2",
                                                            "case": [str(ids[waiting.business_key]),
                                                                     str(ids[moved_on.business_key])]})
    html = done.get_data(as_text=True)
    assert 'id="moved-count">1<' in html and "不能迁移" in html
    with web_engine.session() as s:
        versions_now = {i.business_key: s.get(Deployment, i.deployment_id).version for i in s.scalars(select(Instance))}
        event = s.scalars(select(Event).where(Event.instance_id == ids[waiting.business_key])
                          .order_by(Event.seq.desc())).first()
    assert versions_now == {waiting.business_key: 2, moved_on.business_key: 1}
    assert event.action == "migrated" and event.actor == "designer"
    clerk = client.application.test_client()  # the case history says so, to whoever sees the case
    login(clerk, "pa_accept")
    assert "流程迁移：版本 1 → 版本 2" in clerk.get(f"/cases/{waiting.business_key}").get_data(as_text=True)
    bad = client.get("/processes/web_case/migrate?from=x&to=2")
    assert bad.status_code == 400 and "正整数" in bad.get_data(as_text=True)
    assert client.get("/processes/web_case/migrate?from=1&to=7").status_code == 400
