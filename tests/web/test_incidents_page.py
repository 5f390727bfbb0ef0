"""异常事件 page (#11 item 4): administrators see the timers and jobs that failed their retries, retry them
through the normal step or resolve them; everybody else gets 403, anonymous visitors the login page; every
action needs the CSRF token."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from engine import incidents, jobs
from engine.models import Event, Timer
from tests.conftest import diagram
from tests.web.conftest import csrf_token, login

URL = "/admin/incidents/"


@pytest.fixture
def failing(web_engine):
    """timer_cycle's reminder runs an ``echo`` service task that fails while ``failing["on"]``."""
    state = {"on": True}

    def echo(call):
        if state["on"]:
            raise RuntimeError("下游服务不可用")
        return {}

    web_engine.services.register("echo", echo)
    web_engine.deploy(diagram("timer_cycle.bpmn"), filename="timer_cycle.bpmn")
    return state


def give_up(web_engine, clock, *keys: str) -> list[int]:
    ids = [web_engine.runtime.start("timer_cycle", key, {}, actor="clerk").instance_id for key in keys]
    clock.advance(days=1, minutes=1)
    for _ in range(jobs.MAX_ATTEMPTS):
        assert web_engine.management.run_due_timers() == 0
    return ids


def html(response) -> str:
    return response.get_data(as_text=True)


def rows(page: str) -> dict[int, str]:
    return {int(m.group(1)): m.group(2) for m in re.finditer(r'data-incident="(\d+)" data-status="(\w+)"', page)}


def post(client, url: str, data: dict | None = None):
    return client.post(url, data={"csrf_token": csrf_token(client, URL), **(data or {})}, follow_redirects=True)


@pytest.mark.req("BP-3")
def test_an_administrator_sees_open_incidents_with_counts_and_the_nav_badge(client, web_engine, clock, failing):
    give_up(web_engine, clock, "INC-W1", "INC-W2")
    login(client, "admin")
    page = html(client.get(URL))
    assert '未解决 <span id="open-count">2</span> 个' in page
    assert '已解决 <span id="resolved-count">0</span> 个' in page
    assert sorted(rows(page).values()) == ["open", "open"]
    assert "INC-W1" in page and "INC-W2" in page and "log_reminder" in page and "下游服务不可用" in page
    inbox = html(client.get("/"))
    assert re.search(r'id="nav-incidents">异常事件<span class="light light-red">2</span>', inbox)


@pytest.mark.parametrize("user", ["fh_super", "fh_staff", "auditor"])
def test_everyone_but_administrators_gets_403(client, web_engine, clock, failing, user):
    give_up(web_engine, clock, "INC-R1")
    [incident] = web_engine.management.incidents().rows
    login(client, user)
    assert client.get(URL).status_code == 403
    token = csrf_token(client, "/")
    for action in ("retry", "resolve"):
        assert client.post(f"{URL}{incident.id}/{action}", data={"csrf_token": token, "note": "x"}).status_code == 403
    assert web_engine.management.incident(incident.id).status == "open"
    assert 'id="nav-incidents"' not in html(client.get("/"))


def test_anonymous_visitors_are_sent_to_the_login_page(client):
    response = client.get(URL)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.req("BP-3")
def test_retry_fires_the_timer_through_the_normal_step(client, web_engine, clock, failing):
    [iid] = give_up(web_engine, clock, "INC-T1")
    [incident] = web_engine.management.incidents().rows
    login(client, "admin")

    page = html(post(client, f"{URL}{incident.id}/retry"))
    assert "重试失败" in page and "下游服务不可用" in page
    assert web_engine.management.incident(incident.id).status == "open"

    failing["on"] = False
    page = html(post(client, f"{URL}{incident.id}/retry"))
    assert "定时器已重新触发，异常事件已解决" in page
    done = web_engine.management.incident(incident.id)
    assert (done.status, done.resolution, done.resolved_by) == ("resolved", "retried", "admin")
    with web_engine.read() as s:
        fired = [json.loads(p) for p in s.scalars(select(Event.payload).where(
            Event.instance_id == iid, Event.action == "timer_fired"))]
        assert s.scalar(select(Timer.status).where(Timer.id == incident.timer_id)) == "fired"
    assert [f["details"]["retry_of_incident"] for f in fired] == [incident.id]
    assert "无法重试" in html(post(client, f"{URL}{incident.id}/retry"))  # already resolved


def test_resolve_needs_a_note(client, web_engine, clock, failing):
    give_up(web_engine, clock, "INC-N1")
    [incident] = web_engine.management.incidents().rows
    login(client, "admin")
    assert "请填写处理说明" in html(post(client, f"{URL}{incident.id}/resolve", {"note": "  "}))
    assert web_engine.management.incident(incident.id).status == "open"
    page = html(post(client, f"{URL}{incident.id}/resolve", {"note": "已电话督办承办单位"}))
    assert f"异常事件 #{incident.id} 已标记为已解决" in page
    row = web_engine.management.incident(incident.id)
    assert (row.status, row.resolution, row.note, row.resolved_by) == ("resolved", "resolved", "已电话督办承办单位", "admin")
    resolved = html(client.get(URL, query_string={"status": "resolved"}))
    assert rows(resolved) == {incident.id: "resolved"} and "已电话督办承办单位" in resolved


def test_actions_without_the_csrf_token_are_refused(client, web_engine, clock, failing):
    give_up(web_engine, clock, "INC-C1")
    [incident] = web_engine.management.incidents().rows
    failing["on"] = False
    login(client, "admin")
    for action in ("retry", "resolve"):
        response = client.post(f"{URL}{incident.id}/{action}", data={"note": "x"})
        assert response.status_code == 400 and "CSRF" in html(response)
    assert web_engine.management.incident(incident.id).status == "open"


def test_the_list_is_paged_50_at_a_time_and_bad_filters_get_a_chinese_400(client, web_engine):
    with web_engine.session() as s:
        for n in range(53):
            incidents.open_incident(s, kind="job", job_type="outbox", job_id=n + 1, error=f"网关超时 {n}",
                                    now=web_engine.clock.now(), retries=5, business_key=f"MSG-{n:02d}")
    login(client, "admin")
    first = html(client.get(URL))
    assert len(rows(first)) == 50 and "第 1 / 2 页" in first and "未解决 <span id=\"open-count\">53</span>" in first
    second = html(client.get(URL, query_string={"page": 2}))
    assert len(rows(second)) == 3 and set(rows(first)).isdisjoint(rows(second))
    assert "MSG-00" in second  # newest first: the first one written is on the last page
    only = html(client.get(URL, query_string={"case": "MSG-07"}))
    assert list(rows(only)) and "MSG-07" in only and "MSG-08" not in only
    bad = client.get(URL, query_string={"status": "closed"})
    assert bad.status_code == 400 and "未知的状态" in html(bad)
    assert client.get(URL, query_string={"kind": "robot"}).status_code == 400
