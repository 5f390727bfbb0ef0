"""The deployment README documents, started as documented: ``qifu serve --workers 2 --no-timers`` and two
``qifu worker`` executors on one PostgreSQL database (the reverse proxy left out: it only forwards).

1,000 cases are started through the real engine, each waiting on one timer that falls due at the same
instant a few seconds ahead (real time: the processes run on the system clock). The test waits until every
timer has fired, then checks from the database that none fired twice and none was lost (one ``timer_fired``
history event per case, every case finished, every timer row fired by one of the two executors), that the
hash chains verify, that ``/healthz`` and ``/readyz`` answer and that ``/metrics`` shows the figures. It prints
how long the burst took, the lateness and how the executors split the work. PostgreSQL only: skipped without
``QIFU_TEST_PG_URL``, a failure with ``QIFU_REQUIRE_PG=1``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from bench.intake_load import Process, QifuServer, prepare_database, qifu, server_env

from .conftest import due_soon_engine, wait_until
from .test_observability import _metric

TIMERS = 1000


@pytest.mark.req("BP-3")
def test_two_web_workers_and_two_executors_on_postgresql_fire_1000_due_timers_once(pg_url, tmp_path):
    began = time.monotonic()
    env = server_env(pg_url, tmp_path / "var")
    prepare_database(env)
    web = QifuServer(env, "--workers", "2", "--no-timers")
    executors = [Process(env, "worker"), Process(env, "worker")]
    try:
        for executor in executors:
            executor.wait_for("定时器执行器已启动")
        engine = due_soon_engine(env)
        due = (datetime.now(UTC) + timedelta(seconds=30)).replace(microsecond=0)
        created = time.monotonic()
        ids = [engine.runtime.start("due_soon", f"DEP-{i:04d}", {"due": due.isoformat()}).instance_id
               for i in range(TIMERS)]
        made_in = time.monotonic() - created
        late_start = datetime.now(UTC) >= due  # a slow machine: the first timers fired while others were made
        wait_until(lambda: engine.management.count_waiting() == 0, 300, "every timer to fire", every=0.5)
        done = datetime.now(UTC)

        with engine.read() as session:
            fired = session.execute(text(
                "SELECT instance_id, count(*) FROM event WHERE action = 'timer_fired' GROUP BY instance_id")).all()
            timers = session.execute(text(
                "SELECT instance_id, status, due_at, fired_at, claimed_by FROM timer")).all()
            finished = session.scalar(text("SELECT count(*) FROM instance i JOIN deployment d ON d.id = "
                                           "i.deployment_id WHERE d.process_key = 'due_soon' AND i.status = "
                                           "'completed'"))
        assert {iid for iid, _ in fired} == set(ids), "a timer was lost (or fired for a case not started here)"
        assert [n for _, n in fired if n != 1] == [], "a timer fired twice"
        assert len(timers) == TIMERS and {t.status for t in timers} == {"fired"} and finished == TIMERS
        pids = {str(e.proc.pid) for e in executors}
        by_pid: dict[str, int] = {}
        for t in timers:
            pid = t.claimed_by.split(":")[1]
            by_pid[pid] = by_pid.get(pid, 0) + 1
        assert set(by_pid) <= pids, (by_pid, pids)
        lateness = sorted((t.fired_at - t.due_at).total_seconds() for t in timers)
        assert qifu(env, "audit", "verify")["ok"] is True

        assert web.get("/healthz")[0] == 200
        status, _, body = web.get("/readyz")
        assert status == 200, body
        status, _, raw = web.get("/metrics")
        assert status == 200
        metrics = raw.decode()
        assert _metric(metrics, "qifu_timers_waiting") == 0 and _metric(metrics, "qifu_timers_overdue") == 0
        assert _metric(metrics, "qifu_open_cases", process="due_soon") == 0
        assert _metric(metrics, "qifu_timer_lateness_seconds_gcount") == TIMERS
        assert _metric(metrics, "qifu_http_request_duration_seconds_count", endpoint="health.readyz",
                       method="GET", status="200") == 1
    finally:
        codes = [p.stop() for p in (web, *executors)]
    assert codes == [0, 0, 0], [p.err[-20:] for p in (web, *executors)]
    split = " / ".join(str(n) for n in sorted(by_pid.values(), reverse=True))
    print(f"\ndeployment: 2 web workers + 2 executors on PostgreSQL; {TIMERS} cases made in {made_in:.1f} s; all "
          f"{TIMERS} timers fired {(done - due).total_seconds():.1f} s after the due instant (polled every 0.5 s); "
          f"lateness p50 {lateness[len(lateness) // 2]:.2f} s, p95 {lateness[int(len(lateness) * 0.95) - 1]:.2f} s, "
          f"max {lateness[-1]:.2f} s; executors fired {split}; whole test {time.monotonic() - began:.0f} s"
          + (" (the cases took longer to make than the 30 s ahead: lateness includes that)" if late_start else ""))
