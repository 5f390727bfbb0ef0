"""Observability: request ids and the JSON request log, ``/healthz`` / ``/readyz``, ``/metrics`` and who may read it.

In-process tests use the app over a test database (both backends); the last ones run the real ``qifu serve``
with two workers and its executor, where ``/metrics`` must add up what every process observed.
"""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from engine.process_engine import ProcessEngine
from web.app import create_app

from .conftest import DIAGRAMS, due_soon_engine, in_seconds, start_due, wait_until


class Lines(logging.Handler):
    """The JSON fields of every ``qifu.request`` record."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(dict(getattr(record, "json", {})))


@pytest.fixture
def request_log():
    handler = Lines()
    logger = logging.getLogger("qifu.request")
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


@pytest.fixture
def app_engine(case_engine: ProcessEngine) -> ProcessEngine:
    case_engine.deploy((DIAGRAMS / "due_soon.bpmn").read_bytes(), filename="due_soon.bpmn")
    return case_engine


def _app(engine: ProcessEngine, tmp_path: Path, **config):
    return create_app(engine=engine, config={"TESTING": True, "SECRET_KEY": "t", "QIFU_VAR_DIR": str(tmp_path),
                                             **config})


def _metric(body: str, name: str, **labels: str) -> float | None:
    """One sample's value from Prometheus text (None: not there)."""
    for line in body.splitlines():
        if line.startswith("#"):
            continue
        found = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)$", line)
        if not found or found.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', found.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            return float(found.group(3))
    return None


# --- request ids and the log ---------------------------------------------------------------------------
def test_a_sane_request_id_is_kept_and_echoed_anything_else_is_replaced(app_engine, tmp_path, request_log):
    client = _app(app_engine, tmp_path).test_client()
    assert client.get("/healthz", headers={"X-Request-Id": "lb-7f3a:42"}).headers["X-Request-Id"] == "lb-7f3a:42"
    for bad in ("a b", "x" * 129, "id\u00e9", "<script>"):
        rid = client.get("/healthz", headers={"X-Request-Id": bad}).headers["X-Request-Id"]
        assert rid != bad and re.fullmatch(r"[0-9a-f]{32}", rid)
    assert [line["request_id"] for line in request_log][0] == "lb-7f3a:42"
    line = request_log[-1]
    assert set(line) >= {"request_id", "method", "path", "status", "duration_ms", "user", "case", "endpoint"}
    assert (line["method"], line["path"], line["status"], line["endpoint"]) == ("GET", "/healthz", 200,
                                                                                 "health.healthz")


def test_the_log_names_the_case_and_the_user_but_never_a_tracking_token(app_engine, tmp_path, request_log):
    from web.demo.users import DEMO_PASSWORD, create_demo_users

    with app_engine.session() as session:
        create_demo_users(session, now=app_engine.clock.now())
    client = _app(app_engine, tmp_path, WTF_CSRF_ENABLED=False).test_client()
    client.get("/api/v1/cases/FH-20260930-0007")
    assert request_log[-1]["case"] == "FH-20260930-0007" and request_log[-1]["status"] == 401
    client.get("/track/secret-token-value-123")
    assert "secret-token-value-123" not in json.dumps(request_log[-1]) and request_log[-1]["path"] == "/track/…"
    client.post("/login", data={"username": "fh_staff", "password": DEMO_PASSWORD})
    client.get("/cases/FH-20260930-0001?q=x")
    line = request_log[-1]
    assert (line["user"], line["case"], line["path"]) == ("fh_staff", "FH-20260930-0001", "/cases/FH-20260930-0001")


# --- health ----------------------------------------------------------------------------------------------
def test_healthz_needs_no_database_readyz_says_what_is_wrong(tmp_path):
    engine = ProcessEngine("postgresql+psycopg://qifu@127.0.0.1:1/qifu")  # nothing listens on port 1
    client = _app(engine, tmp_path).test_client()
    assert client.get("/healthz").status_code == 200
    answer = client.get("/readyz")
    assert answer.status_code == 503 and answer.json["database"] == "unreachable" and answer.json["message"]

    empty = ProcessEngine(f"sqlite:///{tmp_path / 'empty.db'}")  # reachable, never migrated
    answer = _app(empty, tmp_path).test_client().get("/readyz")
    assert answer.status_code == 503
    assert answer.json["migrations"] == "behind" and answer.json["current"] == [] and answer.json["head"]


def test_readyz_is_ready_at_the_head_revision(app_engine, tmp_path):
    answer = _app(app_engine, tmp_path).test_client().get("/readyz")
    assert answer.status_code == 200 and answer.json["status"] == "ready"
    with app_engine.read() as session:
        assert [session.scalar(text("SELECT version_num FROM alembic_version"))] == answer.json["head"]


# --- /metrics --------------------------------------------------------------------------------------------
def test_metrics_from_this_machine_or_with_the_token_only(app_engine, tmp_path):
    client = _app(app_engine, tmp_path).test_client()
    assert client.get("/metrics").status_code == 200
    proxied = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert proxied.status_code == 403 and proxied.json["error"]["code"] == "forbidden"
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 403

    guarded = _app(app_engine, tmp_path, QIFU_METRICS_TOKEN="s3cret-token").test_client()
    remote = {"REMOTE_ADDR": "10.1.2.3"}
    assert guarded.get("/metrics", environ_base=remote).status_code == 401
    assert guarded.get("/metrics", environ_base=remote,
                       headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = guarded.get("/metrics", environ_base=remote, headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200 and ok.mimetype == "text/plain"


def test_metrics_count_cases_tasks_timers_steps_and_lateness(app_engine, clock, tmp_path):
    client = _app(app_engine, tmp_path).test_client()
    before = client.get("/metrics").get_data(as_text=True)
    started = _metric(before, "qifu_step_duration_seconds_count", process="due_soon", action="started") or 0
    due = clock.now() + timedelta(hours=2)
    for i in range(3):
        app_engine.runtime.start("due_soon", f"M-{i}", {"due": due.isoformat()})
    body = client.get("/metrics").get_data(as_text=True)
    assert _metric(body, "qifu_open_cases", process="due_soon") == 3
    assert _metric(body, "qifu_open_tasks", process="due_soon") == 0
    assert _metric(body, "qifu_timers_waiting") == 3 and _metric(body, "qifu_timers_overdue") == 0
    assert _metric(body, "qifu_incidents_open") == 0
    assert _metric(body, "qifu_step_duration_seconds_count", process="due_soon", action="started") == started + 3

    clock.advance(hours=2, minutes=1, seconds=30)  # overdue by 90 s: fired now, each is 90 s late
    assert _metric(client.get("/metrics").get_data(as_text=True), "qifu_timers_overdue") == 3
    assert app_engine.management.run_due_timers() == 3
    body = client.get("/metrics").get_data(as_text=True)
    assert _metric(body, "qifu_open_cases", process="due_soon") == 0
    assert _metric(body, "qifu_timers_waiting") == 0
    assert _metric(body, "qifu_timer_lateness_seconds_bucket", le="60.0") == 0
    assert _metric(body, "qifu_timer_lateness_seconds_bucket", le="300.0") == 3
    assert _metric(body, "qifu_timer_lateness_seconds_gsum") == pytest.approx(270)
    assert _metric(body, "qifu_step_duration_seconds_count", process="due_soon", action="timer_fired") >= 3
    assert _metric(body, "qifu_http_request_duration_seconds_count", endpoint="health.metrics", method="GET",
                   status="200") >= 3


def test_open_incidents_are_counted(app_engine, tmp_path):
    from engine import incidents

    client = _app(app_engine, tmp_path).test_client()
    with app_engine.session() as session:  # what a timer that failed its retries leaves (engine/incidents.py)
        incidents.open_incident(session, kind="timer", error="ValueError: boom", now=app_engine.clock.now(),
                                retries=3)
    assert _metric(client.get("/metrics").get_data(as_text=True), "qifu_incidents_open") == 1


def test_a_path_no_route_knows_is_one_label_not_one_per_path(app_engine, tmp_path):
    client = _app(app_engine, tmp_path).test_client()
    for i in range(5):
        client.get(f"/no-such-page-{i}")
    body = client.get("/metrics").get_data(as_text=True)
    assert "no-such-page" not in body
    assert _metric(body, "qifu_http_request_duration_seconds_count", endpoint="unmatched", status="404") >= 5


def _fill(engine: ProcessEngine, cases: int) -> None:
    """``cases`` instances (half running), 0.8 open tasks per case, 3 timers per case, by INSERT … SELECT."""
    pg = engine.url.startswith("postgresql")

    def rows(n: int) -> str:
        if pg:
            return f"generate_series(1, {n}) AS g(x)"
        return f"(WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < {n}) SELECT x FROM s) AS g"

    def ts(value: str) -> str:
        return f"CAST('{value}+00' AS TIMESTAMP WITH TIME ZONE)" if pg else f"'{value}'"

    base, later = ts("2026-01-01 00:00:00"), ts("2027-01-01 00:00:00")
    with engine.session() as s:
        dep = s.scalar(text("SELECT max(id) FROM deployment"))
        s.execute(text(
            f"INSERT INTO instance (id, deployment_id, business_key, status, state_json, data_json, version, "
            f"started_at, updated_at, history_seq, history_hash) SELECT 1000000 + x, {dep}, 'BIG-' || x, "
            f"CASE WHEN x % 2 = 0 THEN 'running' ELSE 'completed' END, '{{}}', '{{}}', 1, {base}, {base}, 0, '' "
            f"FROM {rows(cases)}"))
        s.execute(text(
            f"INSERT INTO human_task (id, instance_id, task_guid, spec_id, candidate_groups, due_at, due_provisional,"
            f" created_at) SELECT 1000000 + x, 1000000 + 2 * (1 + (x % {cases // 2 - 1})), 'big-' || x, 's', '', "
            f"CASE WHEN x % 3 = 0 THEN {base} ELSE {later} END, false, {base} FROM {rows(cases * 8 // 10)}"))
        s.execute(text(
            f"INSERT INTO timer (id, instance_id, task_guid, spec_id, kind, occurrence, due_at, provisional, status,"
            f" created_at, fired_at, attempts) SELECT 1000000 + x, 1000000 + 1 + (x % {cases}), 'big-' || x, 's', "
            f"'date', 1, CASE WHEN x % 5 = 0 THEN {later} ELSE {base} END, false, "
            f"CASE WHEN x % 5 = 0 THEN 'waiting' ELSE 'fired' END, {base}, "
            f"CASE WHEN x % 5 = 0 THEN NULL ELSE {base} END, 0 FROM {rows(cases * 3)}"))
    with engine.session() as s:
        s.execute(text("ANALYZE"))


def test_scrape_queries_at_100000_cases_use_indexes(app_engine, tmp_path):
    """The figures read at scrape time at 100,000 cases: plans printed (SQLite: each must use an index) and the
    time printed beside the ~50 ms aim; no timing is asserted."""
    from web.read.metrics import snapshot

    _fill(app_engine, 100_000)
    now = app_engine.clock.now()
    times = []
    for _ in range(3):
        started = time.perf_counter()
        snap = snapshot(app_engine, now)
        times.append(time.perf_counter() - started)
    assert snap.by_process["due_soon"].open_cases == 50_000 and snap.by_process["due_soon"].open_tasks == 80_000
    assert snap.waiting_timers == 60_000
    backend = "postgresql" if app_engine.url.startswith("postgresql") else "sqlite"
    print(f"\n/metrics database figures at 100,000 cases on {backend}: best {min(times) * 1000:.0f} ms "
          f"(aim ~50 ms)")
    statements = {
        "open cases": "SELECT deployment_id, count(*) FROM instance WHERE status = 'running' GROUP BY deployment_id",
        "open tasks": "SELECT i.deployment_id, count(*) FROM human_task h JOIN instance i ON i.id = h.instance_id "
                      "GROUP BY i.deployment_id",
        "waiting timers": "SELECT count(*) FROM timer WHERE status = 'waiting'",
        "lateness": "SELECT due_at, fired_at FROM timer WHERE status = 'fired' AND due_at >= '2026-09-30'",
    }
    with app_engine.read() as session:
        for name, sql in statements.items():
            if backend == "sqlite":
                plan = " / ".join(r[-1] for r in session.execute(text("EXPLAIN QUERY PLAN " + sql)))
                assert "INDEX" in plan, (name, plan)
            else:
                plan = " / ".join(r[0].strip() for r in session.execute(text("EXPLAIN " + sql)))
            print(f"  {name}: {plan}")


# --- the real server: several processes, one /metrics -------------------------------------------------
def test_metrics_add_up_every_worker_and_the_executor(sqlite_prepared, start_server):
    server = start_server(sqlite_prepared, "--workers", "2", "--threads", "2")
    for i in range(30):
        status, headers, _ = server.get("/healthz", headers={"X-Request-Id": f"probe-{i}"})
        assert status == 200 and headers["x-request-id"] == f"probe-{i}"
    engine = due_soon_engine(sqlite_prepared)
    ids = start_due(engine, 2, in_seconds(1))
    wait_until(lambda: all(t.status == "fired" for i in ids for t in engine.management.timers(i)), 40, "firing")

    def scraped():
        status, _, body = server.get("/metrics")
        assert status == 200
        text_ = body.decode()
        fired = _metric(text_, "qifu_step_duration_seconds_count", process="due_soon", action="timer_fired")
        return text_ if fired == 2 else None

    body = wait_until(scraped, 10, "the executor's steps in /metrics")
    assert _metric(body, "qifu_http_request_duration_seconds_count", endpoint="health.healthz", method="GET",
                   status="200") == 30
    assert _metric(body, "qifu_timer_lateness_seconds_bucket", le="+Inf") == 2
    assert server.get("/metrics", headers={"X-Forwarded-For": "198.51.100.4"})[0] == 403
    logged = {line["request_id"]: line for line in server.json_lines() if "request_id" in line}
    assert {f"probe-{i}" for i in range(30)} <= set(logged)
    assert logged["probe-3"]["path"] == "/healthz" and logged["probe-3"]["status"] == 200
