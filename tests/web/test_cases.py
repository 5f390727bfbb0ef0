"""The case page: visibility (404 for a case one may not see), masking and the unmask log, deadlines, timeline, diagram, attachments."""

from __future__ import annotations

import io
import json
import re
import zipfile

from sqlalchemy import func, select

from web.models import Attachment, UnmaskLog

from .conftest import CONTACT_ID, CONTACT_PHONE, login, open_task_guid, post_form, start_case

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def test_other_unit_gets_404_on_task_and_case(client, other_client, web_engine):
    case = start_case(web_engine, unit="PA01")
    guid = open_task_guid(web_engine, case.business_key, "accept")
    login(other_client, "pa_accept")
    assert other_client.get(f"/cases/{case.business_key}").status_code == 200
    assert other_client.get(f"/tasks/{guid}").status_code == 200

    login(client, "pa2_accept")  # same role, station PA02
    for url in (f"/cases/{case.business_key}", f"/tasks/{guid}", f"/cases/{case.business_key}/diagram.xml"):
        response = client.get(url)
        assert response.status_code == 404, url  # exactly as if it did not exist
        assert "未找到" in response.get_data(as_text=True) or url.endswith(".xml")
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"|value="([^"]+)"',
                      client.get("/tasks").get_data(as_text=True))
    csrf = token.group(1) or token.group(2)
    assert client.post(f"/tasks/{guid}", data={"csrf_token": csrf, "f_opinion": "越权"}).status_code == 404
    assert client.post(f"/tasks/{guid}/claim", data={"csrf_token": csrf}).status_code == 404
    assert client.post(f"/cases/{case.business_key}/reveal",
                       data={"csrf_token": csrf, "field": "contact_phone"}).status_code == 404
    with web_engine.session() as session:
        assert session.scalar(select(func.count(UnmaskLog.id))) == 0


def test_region_wide_role_sees_cases_of_its_region_only(client, other_client, web_engine):
    case = start_case(web_engine, unit="PA02")
    login(client, "pa_fallback")  # 兜底服务板块, county-wide in Pan'an
    assert client.get(f"/cases/{case.business_key}").status_code == 200
    login(other_client, "fh_staff")  # 中心工作人员 of Fenghua
    assert other_client.get(f"/cases/{case.business_key}").status_code == 404


def test_contact_is_masked_and_unmasking_is_recorded(client, web_engine, clock):
    case = start_case(web_engine)
    login(client, "pa_accept")  # staff of the case's own unit
    page = client.get(f"/cases/{case.business_key}").get_data(as_text=True)
    assert "138****5678" in page and CONTACT_PHONE not in page
    assert "330727********123X" in page and CONTACT_ID not in page
    for reason in ("", " ", "x", "a\x00b", "长" * 201):  # a reason is required, readable and short
        refused = post_form(client, f"/cases/{case.business_key}/reveal", {"field": "contact_phone", "reason": reason},
                            form_url=f"/cases/{case.business_key}")
        assert refused.status_code == 400, repr(reason)
        assert CONTACT_PHONE not in refused.get_data(as_text=True) and "原因" in refused.get_data(as_text=True)
    response = post_form(client, f"/cases/{case.business_key}/reveal",
                         {"field": "contact_phone", "reason": "回访电话核实办理结果"},
                         form_url=f"/cases/{case.business_key}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert CONTACT_PHONE in html and CONTACT_ID not in html  # only the field asked for
    with web_engine.session() as session:
        rows = list(session.scalars(select(UnmaskLog)))
    assert [(r.username, r.business_key, r.field, r.at, r.reason) for r in rows] == [
        ("pa_accept", case.business_key, "contact_phone", clock.now(), "回访电话核实办理结果")]
    # the history timeline never shows the number in full
    assert CONTACT_PHONE not in client.get(f"/cases/{case.business_key}").get_data(as_text=True)


def test_supervisor_sees_masked_contacts_and_reveals_only_with_a_reason(client, other_client, web_engine):
    case = start_case(web_engine)
    login(client, "pa_super")  # 督办 of the region: masked, a reveal needs a reason and is logged (PIPL)
    page = client.get(f"/cases/{case.business_key}").get_data(as_text=True)
    assert "138****5678" in page and CONTACT_PHONE not in page and 'name="reason"' in page
    response = post_form(client, f"/cases/{case.business_key}/reveal", {"field": "contact_phone"},
                         form_url=f"/cases/{case.business_key}")
    assert response.status_code == 400 and CONTACT_PHONE not in response.get_data(as_text=True)
    with web_engine.session() as session:
        assert session.scalar(select(func.count(UnmaskLog.id))) == 0
    response = post_form(client, f"/cases/{case.business_key}/reveal",
                         {"field": "contact_phone", "reason": "督办核实企业反映情况"}, form_url=f"/cases/{case.business_key}")
    assert response.status_code == 200 and CONTACT_PHONE in response.get_data(as_text=True)
    with web_engine.session() as session:
        assert [(r.username, r.reason) for r in session.scalars(select(UnmaskLog))] == [("pa_super", "督办核实企业反映情况")]
    login(other_client, "pa_fallback")  # 兜底服务板块 of the county: sees the case, may not reveal at all
    page = other_client.get(f"/cases/{case.business_key}").get_data(as_text=True)
    assert "138****5678" in page and "/reveal" not in page
    response = post_form(other_client, f"/cases/{case.business_key}/reveal",
                         {"field": "contact_phone", "reason": "想看看"}, form_url=f"/cases/{case.business_key}")
    assert response.status_code == 403 and CONTACT_PHONE not in response.get_data(as_text=True)


def test_case_page_shows_deadlines_timeline_and_diagram_markers(client, web_engine):
    case = start_case(web_engine)
    login(client, "pa_accept")
    html = client.get(f"/cases/{case.business_key}").get_data(as_text=True)
    assert "当前期限" in html and "受理登记" in html and "当日答复" in html and "剩余 2 个工作日" in html
    assert "案件受理" in html and "企业名称" in html and "登记台账" in html  # timeline in Chinese
    assert "磐安某药业有限公司" in html and "来站反映" in html and "电" in html
    markers = json.loads(re.search(r'<script type="application/json" id="case-diagram-markers">(.*?)</script>',
                                   html, re.S).group(1))
    assert "accept" in markers["active"] and "accept_due" in markers["active"]
    assert "register" in markers["completed"] and markers["overdue"] == []
    assert "vendor/bpmn-js/bpmn-navigated-viewer.production.min.js" in html
    xml = client.get(f"/cases/{case.business_key}/diagram.xml")
    assert xml.status_code == 200 and xml.mimetype == "application/xml"
    assert b'<bpmn:process id="web_case"' in xml.data


def test_overdue_elements_are_marked(client, web_engine, clock):
    case = start_case(web_engine)
    clock.set("2026-10-10T09:00:00")
    web_engine.management.run_due_timers()
    login(client, "pa_accept")
    html = client.get(f"/cases/{case.business_key}").get_data(as_text=True)
    markers = json.loads(re.search(r'id="case-diagram-markers">(.*?)</script>', html, re.S).group(1))
    assert "accept" in markers["overdue"] and "accept_due" in markers["overdue"]
    assert "期限到达" in html


def _upload(client, business_key: str, name: str, content: bytes):
    return post_form(client, f"/cases/{business_key}/attachments",
                     {"file": (io.BytesIO(content), name)}, form_url=f"/cases/{business_key}",
                     content_type="multipart/form-data")


def _docx() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", "<w:document/>")
    return buf.getvalue()


def test_attachment_accepted_stored_by_hash_and_listed(client, other_client, web_app, web_engine):
    case = start_case(web_engine)
    login(client, "pa_accept")
    assert _upload(client, case.business_key, "环评批复.pdf", PDF).status_code == 302
    assert _upload(client, case.business_key, "材料.docx", _docx()).status_code == 302
    page = client.get(f"/cases/{case.business_key}").get_data(as_text=True)
    assert "环评批复.pdf" in page and "材料.docx" in page
    with web_engine.session() as session:
        rows = list(session.scalars(select(Attachment).order_by(Attachment.id)))
    assert [r.kind for r in rows] == ["pdf", "docx"]
    from pathlib import Path

    assert (Path(web_app.config["ATTACHMENT_DIR"]) / rows[0].sha256).read_bytes() == PDF
    download = client.get(f"/cases/{case.business_key}/attachments/{rows[0].id}")
    assert download.status_code == 200 and download.data == PDF
    login(other_client, "pa2_accept")
    assert other_client.get(f"/cases/{case.business_key}/attachments/{rows[0].id}").status_code == 404
    # case data stays free of file content
    with web_engine.session() as session:
        from engine.models import Instance

        data = session.scalar(select(Instance.data_json).where(Instance.business_key == case.business_key))
    assert "环评批复" not in data and "sha256" not in data


def test_attachment_type_and_size_refused(client, web_engine):
    case = start_case(web_engine)
    login(client, "pa_accept")
    cases = [
        ("tool.exe", b"MZ\x90\x00" + b"\x00" * 64, "不支持的文件类型"),
        ("page.html", b"<html><script>alert(1)</script>", "不支持的文件类型"),
        ("fake.pdf", PNG, "文件内容与扩展名"),           # extension fine, magic bytes not
        ("fake.docx", b"PK\x03\x04" + b"\x00" * 40, "文件内容与扩展名"),  # a zip that is no Word file
        ("noext", PDF, "缺少扩展名"),
        ("big.pdf", b"%PDF-" + b"0" * (10 * 1024 * 1024), "超过 10 MiB"),
    ]
    for name, content, message in cases:
        response = _upload(client, case.business_key, name, content)
        assert response.status_code == 400, name
        assert message in response.get_data(as_text=True), name
    with web_engine.session() as session:
        assert session.scalar(select(func.count(Attachment.id))) == 0


def test_attachment_with_task_completion(client, web_engine):
    case = start_case(web_engine)
    guid = open_task_guid(web_engine, case.business_key, "accept")
    login(client, "pa_accept")
    refused = post_form(client, f"/tasks/{guid}", {"f_opinion": "附材料", "attachment": (io.BytesIO(PNG), "x.jpg")},
                        content_type="multipart/form-data")
    assert refused.status_code == 400 and "文件内容与扩展名" in refused.get_data(as_text=True)
    assert open_task_guid(web_engine, case.business_key, "accept") == guid  # nothing happened
    ok = post_form(client, f"/tasks/{guid}", {"f_opinion": "附材料", "attachment": (io.BytesIO(PNG), "照片.png")},
                   content_type="multipart/form-data")
    assert ok.status_code == 302
    with web_engine.session() as session:
        row = session.scalar(select(Attachment))
    assert row.filename == "照片.png" and row.task_guid == guid


def test_timeline_names_codes_and_records_a_moved_deadline(client, web_engine):
    from engine.models import Timer

    case = start_case(web_engine)
    with web_engine.session() as session:
        timer_id = session.scalar(select(Timer.id).where(Timer.status == "waiting"))
    web_engine.management.reschedule_timer(timer_id, "2026-10-16T23:59:59", reason="与企业约定办结日期",
                                        actor="pa_accept")
    login(client, "pa_accept")
    html = client.get(f"/cases/{case.business_key}").get_data(as_text=True)
    timeline = html[html.index("办理记录"):]
    assert "来站反映" in timeline and "walk_in" not in timeline
    assert "安文街道企业服务站" in timeline and "磐安" in timeline
    assert "调整期限" in timeline and "与企业约定办结日期" in timeline
    assert "2026-10-09 23:59" in timeline and "2026-10-16 23:59" in timeline
