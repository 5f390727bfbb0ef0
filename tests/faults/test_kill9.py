"""kill -9 of the web server and of the timer executor during a stream of steps (issue #11, faults).

``tests/test_runtime.py`` kills a process half-way through one step (``os._exit`` inside a handler) and
``tests/test_timers.py`` races ``qifu worker`` processes; here the deployment's own processes — ``qifu serve``
(with every gunicorn process under it) and ``qifu worker`` — are killed with SIGKILL again and again while
intakes arrive through the API and short timers fall due, on SQLite and on PostgreSQL. Afterwards:

- every acknowledged intake (the client got 201/200) is there, exactly once per Idempotency-Key, whole;
- every timer that fell due fired exactly once, after however many executor deaths;
- ``qifu audit verify`` passes, and on SQLite ``PRAGMA integrity_check`` says ``ok``.
"""

from __future__ import annotations

import threading
import time

from .checks import assert_audit_verifies, assert_intake_whole, assert_timers_fired_once, sqlite_integrity
from .conftest import Site
from .procs import Service, worker

INTAKES = 10
TIMER_CASES = 10
TIMER_EVERY = 0.8  # seconds between timer cases, so that timers fall due all through the executor kills
WEB_KILLS_AT = (3, 7)  # acknowledged intakes after which the web server is killed
WORKER_KILLS = 3  # executor kills while timers fall due, each once the executor is up and has had a moment
EXECUTOR_UP = "定时器执行器已启动"


class Intakes(threading.Thread):
    """A channel sending intakes one after another; a request nobody answered is retried with its key.

    The web server is killed from this thread right after the WEB_KILLS_AT-th acknowledgement, so the next request
    always meets a dead or restarting server (killed from the main loop, a fast server had answered every intake
    before the first kill).
    """

    def __init__(self, site: Site, server) -> None:
        super().__init__(daemon=True)
        self.site, self.server = site, server
        self.acked: dict[str, str] = {}
        self.unanswered = 0
        self.unexpected: list[str] = []

    def run(self) -> None:
        for i in range(INTAKES):
            key = f"kill9-{i}"
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                answer = self.site.submit(self.server, key)
                if answer.status in (200, 201):
                    self.acked[key] = answer.json["business_key"]
                    if len(self.acked) in WEB_KILLS_AT:
                        self.server.kill9()  # SIGKILL to the whole gunicorn tree; the next request finds it down
                        self.server.start()
                    break
                if answer.status == 0:
                    self.unanswered += 1  # killed mid-request or not listening yet: try again, same key
                    time.sleep(0.1)
                    continue
                self.unexpected.append(f"{key}: {answer.status} {answer.text[:300]}")
                return
            else:
                self.unexpected.append(f"{key}: no answer within 90 s")
                return


def test_kill_9_web_and_executor_during_a_stream_of_steps(site: Site) -> None:
    web = site.web().start()
    executor = worker(site.env, site.log_dir).start()
    timer_keys: list[str] = []
    try:
        web.wait_ready()
        intakes = Intakes(site, web)
        intakes.start()
        started, next_start = 0, time.monotonic()
        up_since: float | None = None
        while intakes.is_alive() or started < TIMER_CASES or executor.kills < WORKER_KILLS:
            if started < TIMER_CASES and time.monotonic() >= next_start:  # its timer falls due 1-3 s later
                key = f"TIMER-{started}"
                site.engine.runtime.start("fault_timer", key, {"delay": 1 + started % 3}, actor="test")
                timer_keys.append(key)  # acknowledged: start() returned
                started, next_start = started + 1, time.monotonic() + TIMER_EVERY
            if up_since is None and executor.log(100_000).count(EXECUTOR_UP) >= executor.starts:
                up_since = time.monotonic()
            if up_since is not None and executor.kills < WORKER_KILLS and time.monotonic() - up_since > 0.7:
                executor.kill9()  # up and working through due timers: killed wherever it is
                executor.start()
                up_since = None
            time.sleep(0.25)
        intakes.join()
        _wait_until_fired(site, timer_keys, executor)
    finally:
        executor.stop()
        web.kill9()

    assert not intakes.unexpected, intakes.unexpected
    assert len(intakes.acked) == INTAKES
    assert web.starts == len(WEB_KILLS_AT) + 1 and executor.starts == WORKER_KILLS + 1
    assert intakes.unanswered >= 1  # the stream really was cut
    assert_intake_whole(site.engine, site.sent, intakes.acked)
    assert_timers_fired_once(site.engine, timer_keys)
    assert_audit_verifies(site.env)
    if site.url.startswith("sqlite"):
        assert sqlite_integrity(site.url.split("///", 1)[1]) == "ok"


def _wait_until_fired(site: Site, keys: list[str], executor: Service, timeout: float = 60) -> None:
    """Until no acknowledged timer case still waits (a killed executor's claims free up when their lease ends)."""
    from sqlalchemy import func, select

    from engine.models import Instance, Timer

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert executor.running(), executor.log()
        with site.engine.read() as s:
            waiting = s.scalar(select(func.count()).select_from(Timer).join(Instance, Instance.id == Timer.instance_id)
                               .where(Instance.business_key.in_(keys), Timer.status == "waiting"))
        if waiting == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"{waiting} due timers still waiting after {timeout} s:\n{executor.log()}")
