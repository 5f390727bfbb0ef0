"""PostgreSQL stopped under load, then started again, while ``qifu serve`` keeps running (issue #11, faults).

The server runs against a cluster of its own (see ``conftest.Cluster``); ``pg_ctl stop -m immediate`` kills
every backend mid-transaction, as a crash of the database server would. While it is down:

- the intake API answers 503 with ``Retry-After`` and a JSON error (``database_unavailable``), pages answer
  a Chinese 503 page, and ``Accept: application/json`` outside ``/api/`` gets the JSON error too;
- the server never stops answering (no connection refused, no 500, no traceback).

After ``pg_ctl start`` the same server process serves again by itself (the pool drops dead connections),
every acknowledged intake is there once and whole, the ones refused with 503 went through on retry with
their key, and ``qifu audit verify`` passes.
"""

from __future__ import annotations

import threading
import time
import uuid

from tests.conftest import _seed

from .checks import assert_audit_verifies, assert_intake_whole
from .conftest import Cluster, make_site
from .procs import Answer, request

INTAKES = 12


class Load:
    """Intakes one after another (a 503 is retried with the same key), and people opening pages meanwhile."""

    def __init__(self, site, server) -> None:
        self.site, self.server = site, server
        self.acked: dict[str, str] = {}
        self.api: list[Answer] = []
        self.pages: list[Answer] = []
        self.json_pages: list[Answer] = []
        self.stop = threading.Event()
        self.intakes = threading.Thread(target=self._intakes, daemon=True)
        self.visitors = threading.Thread(target=self._visitors, daemon=True)

    def start(self) -> None:
        self.intakes.start()
        self.visitors.start()

    def _intakes(self) -> None:
        for i in range(INTAKES):
            key = f"outage-{i}"
            while not self.stop.is_set():
                answer = self.site.submit(self.server, key)
                self.api.append(answer)
                if answer.status in (200, 201):
                    self.acked[key] = answer.json["business_key"]
                    break
                if answer.status != 503:
                    return  # anything else fails the test (checked by the caller)
                time.sleep(0.2)

    def _visitors(self) -> None:
        while not self.stop.is_set():
            self.pages.append(request("GET", f"{self.server.base}/submit"))
            self.json_pages.append(request("GET", f"{self.server.base}/", headers={"Accept": "application/json"}))
            time.sleep(0.2)

    def count(self, answers: list[Answer], status: int) -> int:
        return sum(1 for a in list(answers) if a.status == status)


def test_postgres_stopped_under_load_gets_503_and_service_resumes_by_itself(own_pg: Cluster, tmp_path) -> None:
    url = own_pg.database(f"qifu_outage_{uuid.uuid4().hex[:8]}")
    _seed(url)
    site = make_site(url, tmp_path)
    web = site.web().start()
    load = Load(site, web)
    try:
        web.wait_ready()
        load.start()
        _until(lambda: len(load.acked) >= 3, "three intakes before the outage")
        own_pg.stop("immediate")
        try:
            _until(lambda: load.count(load.api, 503) >= 2 and load.count(load.pages, 503) >= 1
                   and load.count(load.json_pages, 503) >= 1, "503 answers while the database is down")
        finally:
            own_pg.start()
        load.intakes.join(timeout=60)
        assert not load.intakes.is_alive(), "the server did not resume serving after the database came back"
        served = len(load.pages)
        _until(lambda: len(load.pages) > served + 1, "pages after the outage")
        assert web.running() and web.starts == 1, "the server had to be restarted"
    finally:
        load.stop.set()
        if load.visitors.is_alive():
            load.visitors.join(timeout=60)
        web.kill9()

    others = [(a.status, a.error or a.text[:300]) for a in [*load.api, *load.pages, *load.json_pages]
              if a.status not in (200, 201, 503)]
    assert not others, f"answers other than success or 503 (a 500, a refused connection…): {others}\n{web.log()}"
    for answer in load.api + load.json_pages:
        if answer.status == 503:
            assert answer.json["error"]["code"] == "database_unavailable", answer.text
            assert "本次操作没有保存" in answer.json["error"]["message"]
            assert int(answer.headers["retry-after"]) > 0
    for answer in load.pages:
        if answer.status == 503:
            assert answer.headers["content-type"].startswith("text/html"), answer.headers
            assert "服务暂不可用（503）" in answer.text and "数据库暂时无法访问" in answer.text
            assert "Traceback" not in answer.text and "psycopg" not in answer.text
            assert int(answer.headers["retry-after"]) > 0
    assert load.pages[-1].status == 200 and load.json_pages[-1].status == 200  # serving again, pages too
    assert len(load.acked) == INTAKES
    assert_intake_whole(site.engine, site.sent, load.acked)
    assert_audit_verifies(site.env)


def _until(condition, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
