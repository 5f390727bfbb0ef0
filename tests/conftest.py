"""Test fixtures: every database test runs on SQLite and, when QIFU_TEST_PG_URL is set, on PostgreSQL.

A template database is migrated and seeded with the calendar once per backend; each test gets a fresh copy
(a file copy for SQLite, ``CREATE DATABASE … TEMPLATE`` for PostgreSQL), so tests never see each other.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from engine import calendar, db, migrate
from engine.clock import FixedClock
from engine.process_engine import ProcessEngine
from engine.services import ServiceRegistry

DIAGRAMS = Path(__file__).parent / "diagrams"
PG_URL = os.environ.get("QIFU_TEST_PG_URL")  # e.g. postgresql+psycopg://postgres@127.0.0.1:55432/postgres
BACKENDS = ["sqlite", "postgresql"]
# Every step checks what it takes on trust against the database: a reused live workflow against the stored
# state (engine/workflow_cache.py), and the task and timer rows against the workflow (engine/runtime.py).
os.environ.setdefault("QIFU_VERIFY_STEPS", "1")
# The key file of the keyed history chain (engine/history.py): one per test run, never the repository's var/.
os.environ.setdefault("QIFU_HISTORY_KEY_FILE", str(Path(tempfile.mkdtemp(prefix="qifu-keys-")) / "history_keys"))
# The revisit sampling key (handlers/revisit.py): a fixed test key, so the 20 % draw of a case number is the same
# in every run (a key made per run let a test pass or fail with the draw).
if "QIFU_REVISIT_KEY_FILE" not in os.environ:
    _revisit_key = Path(tempfile.mkdtemp(prefix="qifu-keys-")) / "revisit_key"
    _revisit_key.write_text("ktest0001 " + "5a" * 32 + "\n", encoding="ascii")
    os.environ["QIFU_REVISIT_KEY_FILE"] = str(_revisit_key)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "req(*ids): requirement IDs covered")


def _seed(url: str) -> None:
    migrate.upgrade(url)
    with db.session_scope(url) as session:
        calendar.seed_from_chinesecalendar(session, FixedClock("2026-01-01T00:00:00").now())
    db.get_engine(url).dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    url = f"sqlite:///{path}"
    _seed(url)
    db.get_engine(url).dispose()
    db.dispose(url)
    return path


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    if not PG_URL:
        if os.environ.get("QIFU_REQUIRE_PG"):
            pytest.fail("QIFU_REQUIRE_PG is set but QIFU_TEST_PG_URL is not: PostgreSQL did not start")
        pytest.skip("PostgreSQL not configured (set QIFU_TEST_PG_URL; make test does when postgresql is installed)")
    return PG_URL


@pytest.fixture(scope="session")
def pg_template(pg_admin_url: str) -> str:
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    name = f"qifu_tpl_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    _seed(url)
    db.dispose(url)
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated and calendar-seeded database URL for one test."""
    if request.param == "sqlite":
        if request.node.get_closest_marker("postgres_only"):
            pytest.skip("PostgreSQL-only test")
        template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "qifu.db"
        shutil.copy(template, path)
        url = f"sqlite:///{path}"
        yield url
        db.dispose(url)
        return
    admin_url = request.getfixturevalue("pg_admin_url")
    template = request.getfixturevalue("pg_template")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"qifu_t_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    yield url
    db.dispose(url)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock("2026-09-30T10:00:00")  # a Wednesday, the last working day before National Day


@pytest.fixture
def services() -> ServiceRegistry:
    """A registry of its own per test, with a few test topics."""
    reg = ServiceRegistry()
    reg.register("echo", lambda call: {"echoed": call.params.get("what")}, "returns its input")
    return reg


@pytest.fixture
def engine(db_url: str, clock: FixedClock, services: ServiceRegistry) -> ProcessEngine:
    return ProcessEngine(db_url, clock, services)


def diagram(name: str) -> bytes:
    return (DIAGRAMS / name).read_bytes()


@pytest.fixture
def domain_services() -> ServiceRegistry:
    """A registry of its own with every domain handler registered (as web.engine.build_engine does)."""
    import handlers

    registry = ServiceRegistry()
    handlers.register(registry)
    return registry


@pytest.fixture
def case_engine(db_url: str, clock: FixedClock, domain_services: ServiceRegistry) -> ProcessEngine:
    """An engine over a fresh database holding the reference data; no diagram deployed yet."""
    from handlers import reference

    engine = ProcessEngine(db_url, clock, domain_services)
    with engine.session() as session:
        reference.load_reference(session)
    return engine
