"""Production tests: the real ``qifu serve`` (gunicorn), real ``qifu worker`` processes, real databases.

Each test gets a fresh database of its own — an empty SQLite file, or a new PostgreSQL database on
``QIFU_TEST_PG_URL`` (skipped without it, failed with ``QIFU_REQUIRE_PG=1``: see ``tests/conftest.py``) — set
up with ``qifu init`` and ``qifu deploy``, exactly as README tells an administrator; the processes are
started and stopped the way an init system does (SIGTERM).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.intake_load import QifuServer, prepare_database, server_env
from engine import db
from engine.process_engine import ProcessEngine

DIAGRAMS = Path(__file__).parent / "diagrams"


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (Linux /proc)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


def wait_until(predicate, timeout: float, what: str, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (nothing migrated) on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'qifu.db'}"
        return
    admin_url = request.getfixturevalue("pg_admin_url")
    yield from _pg_database(admin_url)


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """An empty PostgreSQL database of its own."""
    yield from _pg_database(pg_admin_url)


def _pg_database(admin_url: str) -> Iterator[str]:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"qifu_p_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        db.dispose(url)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def prepared(fresh_url: str, tmp_path: Path) -> dict[str, str]:
    """The environment of a deployment over ``fresh_url`` after ``qifu init`` and ``qifu deploy``."""
    env = server_env(fresh_url, tmp_path / "var")
    prepare_database(env)
    return env


@pytest.fixture
def sqlite_prepared(tmp_path: Path) -> dict[str, str]:
    env = server_env(f"sqlite:///{tmp_path / 'qifu.db'}", tmp_path / "var")
    prepare_database(env)
    return env


@pytest.fixture
def start_server() -> Iterator:
    """Start ``qifu serve`` processes; every one still running is stopped (SIGTERM) after the test."""
    started: list[QifuServer] = []

    def start(env: dict[str, str], *args: str) -> QifuServer:
        server = QifuServer(env, *args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def due_soon_engine(env: dict[str, str]) -> ProcessEngine:
    """An engine of this test process built as the deployment's are (same settings: database, var dir and
    its history keys), with ``due_soon.bpmn`` deployed."""
    from web.engine import build_engine
    from web.settings import Settings

    engine = build_engine(Settings.from_env(env))
    engine.deploy((DIAGRAMS / "due_soon.bpmn").read_bytes(), filename="due_soon.bpmn")
    return engine


def start_due(engine: ProcessEngine, n: int, due: datetime, prefix: str = "DUE") -> list[int]:
    """``n`` cases whose one timer falls due at ``due`` (real time: the servers run on the system clock)."""
    return [engine.runtime.start("due_soon", f"{prefix}-{i}", {"due": due.isoformat()}).instance_id
            for i in range(n)]


def in_seconds(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)
