"""Incidents (#11 item 4): a timer firing or an outbox message that fails its retries becomes an incident row
that administrators see, retry through the normal step, or resolve; ``qifu incident list|retry|resolve``.

Every database test runs on SQLite and, when ``QIFU_TEST_PG_URL`` is set, on PostgreSQL.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from click.testing import CliRunner
from sqlalchemy import select

import handlers
from engine import history, jobs
from engine.errors import ConflictError, NotFoundError, QifuError
from engine.models import Event, HumanTask, Incident, Timer
from engine.process_engine import ProcessEngine
from handlers import intake, notify
from handlers.models import Outbox
from tests.conftest import diagram
from web.cli import main


# --- helpers ---------------------------------------------------------------------------------------------
def start_cycle_case(engine: ProcessEngine, key: str) -> int:
    engine.deploy(diagram("timer_cycle.bpmn"), filename="timer_cycle.bpmn")
    return engine.runtime.start("timer_cycle", key, {}, actor="clerk").instance_id


def actions(engine: ProcessEngine, instance_id: int) -> list[str]:
    with engine.read() as s:
        return [e.action for e in history.event_rows(s, instance_id)]


def fired_events(engine: ProcessEngine, instance_id: int) -> list[dict]:
    with engine.read() as s:
        rows = s.scalars(select(Event).where(Event.instance_id == instance_id, Event.action == "timer_fired"))
        return [{"actor": e.actor, **json.loads(e.payload)["details"]} for e in rows]


def timer_rows(engine: ProcessEngine, instance_id: int) -> list[Timer]:
    with engine.read() as s:
        rows = list(s.scalars(select(Timer).where(Timer.instance_id == instance_id).order_by(Timer.id)))
        s.expunge_all()
        return rows


def open_tasks(engine: ProcessEngine, instance_id: int) -> list[str]:
    with engine.read() as s:
        return sorted(s.scalars(select(HumanTask.spec_id).where(HumanTask.instance_id == instance_id)))


@pytest.fixture
def failing(services):
    """The ``echo`` service task of timer_cycle's reminder fails while ``failing["on"]``."""
    state = {"on": True, "calls": 0}

    def echo(call):
        state["calls"] += 1
        if state["on"]:
            raise RuntimeError("下游服务不可用")
        return {"echoed": call.params.get("what")}

    services.register("echo", echo)
    return state


def give_up(engine: ProcessEngine, clock) -> None:
    """Make the first reminder fall due and let the executor fail it MAX_ATTEMPTS times."""
    clock.advance(days=1, minutes=1)
    for _ in range(jobs.MAX_ATTEMPTS):
        assert engine.management.run_due_timers() == 0


# --- engine ------------------------------------------------------------------------------------------------
@pytest.mark.req("BP-3")
def test_a_timer_that_fails_its_retries_becomes_an_open_incident(engine, clock, failing):
    iid = start_cycle_case(engine, "INC-1")
    clock.advance(days=1, minutes=1)
    assert engine.management.run_due_timers() == 0
    assert engine.management.incident_counts() == {"open": 0, "resolved": 0}  # a retry is still to come
    for _ in range(jobs.MAX_ATTEMPTS - 1):
        assert engine.management.run_due_timers() == 0
    assert failing["calls"] == jobs.MAX_ATTEMPTS
    assert engine.management.run_due_timers() == 0  # given up: not tried again by the executor
    assert failing["calls"] == jobs.MAX_ATTEMPTS

    [timer] = timer_rows(engine, iid)
    assert timer.status == "failed"
    assert engine.management.incident_counts() == {"open": 1, "resolved": 0}
    page = engine.management.incidents()
    assert page.total == 1 and page.counts == {"open": 1, "resolved": 0}
    [incident] = page.rows
    assert (incident.kind, incident.status, incident.instance_id, incident.business_key, incident.timer_id) == (
        "timer", "open", iid, "INC-1", timer.id)
    assert incident.element == "log_reminder"  # the service task that failed, not the timer event
    assert "下游服务不可用" in incident.error and incident.retries == jobs.MAX_ATTEMPTS
    assert incident.created_at == clock.now() and incident.resolved_at is None
    assert actions(engine, iid) == ["started"]  # every failed step rolled back


def test_every_given_up_timer_has_an_incident(engine, clock, failing):
    """No deadline is dropped silently: a ``failed`` timer row never exists without its open incident."""
    for n in range(3):
        start_cycle_case(engine, f"INC-S{n}")
    give_up(engine, clock)
    with engine.read() as s:
        failed = set(s.scalars(select(Timer.id).where(Timer.status == "failed")))
        with_incident = set(s.scalars(select(Incident.timer_id).where(Incident.status == "open")))
    assert len(failed) == 3 and failed == with_incident


@pytest.mark.req("BP-3")
def test_retrying_a_timer_incident_fires_it_through_the_normal_step(engine, clock, failing):
    iid = start_cycle_case(engine, "INC-2")
    give_up(engine, clock)
    [incident] = engine.management.incidents().rows

    with pytest.raises(QifuError, match="重试失败.*下游服务不可用") as refused:  # still failing: stays open
        engine.management.retry_incident(incident.id, actor="admin")
    assert refused.value.element == "log_reminder"
    again = engine.management.incident(incident.id)
    assert (again.status, again.retries) == ("open", jobs.MAX_ATTEMPTS + 1)
    assert [t.status for t in timer_rows(engine, iid)] == ["failed"]
    assert actions(engine, iid) == ["started"]

    failing["on"] = False
    result = engine.management.retry_incident(incident.id, actor="admin")
    assert (result.fired, result.resolution) == (True, "retried")
    done = engine.management.incident(incident.id)
    assert (done.status, done.resolution, done.resolved_by, done.resolved_at) == (
        "resolved", "retried", "admin", clock.now())
    assert engine.management.incident_counts() == {"open": 0, "resolved": 1}
    timers = timer_rows(engine, iid)
    assert timers[0].status == "fired"
    [fired] = fired_events(engine, iid)
    assert (fired["timer"], fired["retry_of_incident"], fired["actor"]) == (timers[0].id, incident.id, "admin")
    assert open_tasks(engine, iid) == ["handle", "reminder"]
    assert [t.status for t in timers[1:]] == ["waiting"]  # the cycle's next occurrence, on its rhythm
    with engine.read() as s:
        assert history.verify(s) == []
    with pytest.raises(ConflictError, match="已处理"):  # once only
        engine.management.retry_incident(incident.id, actor="admin")
    assert len(fired_events(engine, iid)) == 1


def test_resolving_needs_a_note_and_leaves_the_timer_unfired(engine, clock, failing):
    iid = start_cycle_case(engine, "INC-3")
    give_up(engine, clock)
    [incident] = engine.management.incidents().rows
    with pytest.raises(QifuError, match="处理说明"):
        engine.management.resolve_incident(incident.id, actor="admin", note="  ")
    assert engine.management.incident(incident.id).status == "open"
    row = engine.management.resolve_incident(incident.id, actor="admin", note="已电话提醒承办单位")
    assert (row.status, row.resolution, row.resolved_by, row.note) == (
        "resolved", "resolved", "admin", "已电话提醒承办单位")
    assert [t.status for t in timer_rows(engine, iid)] == ["failed"]
    assert engine.management.incidents().total == 0
    assert engine.management.incidents(status=None).total == 1
    with pytest.raises(ConflictError):
        engine.management.resolve_incident(incident.id, actor="admin", note="again")
    with pytest.raises(NotFoundError):
        engine.management.retry_incident(incident.id + 1000, actor="admin")
    with pytest.raises(QifuError, match="未知的异常事件状态"):
        engine.management.incidents(status="closed")


def test_retrying_after_the_case_moved_on_closes_the_incident_without_firing(engine, clock, failing):
    iid = start_cycle_case(engine, "INC-4")
    give_up(engine, clock)
    [incident] = engine.management.incidents().rows
    with engine.read() as s:
        handle = s.scalar(select(HumanTask.task_guid).where(HumanTask.instance_id == iid))
    engine.runtime.complete_task(handle, {}, actor="clerk")  # the case ends; the reminder no longer waits
    result = engine.management.retry_incident(incident.id, actor="admin")
    assert (result.fired, result.resolution) == (False, "cancelled")
    assert engine.management.incident(incident.id).status == "resolved"
    assert fired_events(engine, iid) == []


def test_incidents_are_paged_newest_first_with_counts(engine, clock, failing):
    for n in range(5):
        start_cycle_case(engine, f"INC-P{n}")
    give_up(engine, clock)
    first = engine.management.incidents(per_page=2)
    assert (first.total, first.pages, len(first.rows)) == (5, 3, 2)
    ids = [r.id for p in (1, 2, 3) for r in engine.management.incidents(per_page=2, page=p).rows]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 5
    assert [r.business_key for r in engine.management.incidents(business_key="INC-P3").rows] == ["INC-P3"]
    assert engine.management.incidents(kind="job").total == 0


# --- outbox: a queued job -------------------------------------------------------------------------------------
FIELDS = {"unit": "FH-CENTRE", "channel": "hotline", "category": "factor_power",
          "enterprise_name": "宁波某机械有限公司", "contact_name": "王经理", "contact_phone": "13800138000",
          "title": "厂房用电增容", "description": "新厂房需要增容到 2000 千伏安，供电所答复需排队。"}


class Down:
    def send(self, message: notify.Message) -> None:
        raise RuntimeError("短信网关超时")


def test_an_outbox_message_that_fails_its_attempts_is_an_incident_and_a_retry_queues_it_again(case_engine):
    case_engine.deploy(diagram("domain_handlers.bpmn"), filename="domain_handlers.bpmn")
    sub = intake.submit_case(case_engine, "domain_handlers", FIELDS, actor="clerk", region="fenghua")
    now = case_engine.clock.now()
    for _ in range(2):
        with case_engine.session() as s:
            notify.deliver_pending(s, Down(), now, max_attempts=2)
    with case_engine.session() as s:
        assert notify.deliver_pending(s, Down(), now, max_attempts=2).failed == 0  # nothing pending any more
        [message] = s.scalars(select(Outbox))
        message_id = message.id
    [incident] = case_engine.management.incidents().rows
    assert (incident.kind, incident.job_type, incident.job_id, incident.business_key, incident.retries) == (
        "job", "outbox", message_id, sub.business_key, 2)
    assert "短信网关超时" in incident.error and incident.timer_id is None

    result = case_engine.management.retry_incident(incident.id, actor="admin")
    assert result.resolution == "requeued"
    assert case_engine.management.incident_counts() == {"open": 0, "resolved": 1}
    sender = notify.LoggingSender()
    with case_engine.session() as s:
        assert notify.deliver_pending(s, sender, now, max_attempts=2).sent == 1
    assert [m.id for m in sender.sent] == [message_id]
    with pytest.raises(ConflictError):
        case_engine.management.retry_incident(incident.id, actor="admin")


# --- qifu incident --------------------------------------------------------------------------------------------
def cli(url: str, *args: str) -> tuple[int, object]:
    result = CliRunner().invoke(main, ["--json", "incident", *args], env={"QIFU_DATABASE_URL": url})
    return result.exit_code, json.loads(result.stdout)


def test_cli_lists_retries_and_resolves_incidents(engine, clock, failing, monkeypatch):
    iid = start_cycle_case(engine, "INC-C1")
    start_cycle_case(engine, "INC-C2")
    give_up(engine, clock)

    code, listed = cli(engine.url, "list")
    assert code == 0 and listed["counts"] == {"open": 2, "resolved": 0} and listed["total"] == 2
    assert [r["business_key"] for r in listed["incidents"]] == ["INC-C2", "INC-C1"]
    assert listed["incidents"][1]["element"] == "log_reminder" and listed["incidents"][1]["kind"] == "timer"
    second, first = (r["id"] for r in listed["incidents"])

    # the command's own engine has only the domain handlers: the diagram's "echo" topic is unknown there
    code, refused = cli(engine.url, "retry", str(first))
    assert code == 2 and refused["error"] == "error" and "未注册的服务任务主题" in refused["message"]
    assert engine.management.incident(first).retries == jobs.MAX_ATTEMPTS + 1

    monkeypatch.setitem(handlers.TOPICS, "echo", (lambda call: {}, "test echo"))
    code, retried = cli(engine.url, "retry", str(first), "--actor", "ops")
    assert code == 0 and retried == {"incident": first, "fired": True, "resolution": "retried"}
    assert [e["actor"] for e in fired_events(engine, iid)] == ["ops"]

    code, resolved = cli(engine.url, "resolve", str(second), "--note", "已人工督办")
    assert code == 0 and resolved["status"] == "resolved" and resolved["note"] == "已人工督办"
    code, listed = cli(engine.url, "list", "--status", "all")
    assert listed["counts"] == {"open": 0, "resolved": 2}
    assert Counter(r["resolution"] for r in listed["incidents"]) == {"retried": 1, "resolved": 1}


@pytest.mark.parametrize("args, error", [
    (["retry", "999"], "not_found"),
    (["resolve", "999", "--note", "x"], "not_found"),
    (["resolve", "1"], "usage"),
    (["list", "--status", "closed"], "usage"),
    (["list", "--page", "0"], "usage"),
])
def test_cli_refusals_are_one_json_error_with_exit_2(db_url, args, error):
    code, doc = cli(db_url, *args)
    assert code == 2 and doc["error"] == error and doc["message"]


def test_cli_list_for_people_shows_the_counts(engine, clock, failing):
    start_cycle_case(engine, "INC-H1")
    give_up(engine, clock)
    result = CliRunner().invoke(main, ["incident", "list"], env={"QIFU_DATABASE_URL": engine.url})
    assert result.exit_code == 0
    assert "未解决 1 个" in result.output and "INC-H1" in result.output and "log_reminder" in result.output
