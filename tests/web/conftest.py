"""Fixtures for web tests (SQLite only): a Flask app over a fresh database holding the reference data, the
seed diagrams (or the demo diagram while they are missing) and the demo users of ``web/demo/users.py``.

CSRF protection stays ON: tests post forms the way a browser does, with the token from the page
(:func:`csrf_token`, :func:`login`, :func:`post_form`).

Building the users is slow on purpose (scrypt), so a template database with everything loaded is built once
per test session and copied for each test, like ``tests/conftest.py`` does for the calendar.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from engine import db
from engine.clock import FixedClock
from engine.process_engine import ProcessEngine
from engine.services import ServiceRegistry

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = ROOT / "processes"
DEMO_DIAGRAM = ROOT / "web" / "demo" / "general_request.bpmn"
WEB_DIAGRAM = Path(__file__).parent / "diagrams" / "web_case.bpmn"  # every form field type, a deadline timer
SEED_KEYS = ("pan_an_station", "fenghua_one_place")


def _registry() -> ServiceRegistry:
    import handlers

    registry = ServiceRegistry()
    handlers.register(registry)
    return registry


def seed_diagrams() -> list[Path]:
    """The seed diagrams that exist now (they are drawn in parallel), else nothing."""
    return [PROCESSES / f"{key}.bpmn" for key in SEED_KEYS if (PROCESSES / f"{key}.bpmn").exists()]


@pytest.fixture(scope="session")
def web_template(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Calendar + reference data + demo users + deployed diagrams, built once."""
    from handlers import reference
    from web.demo.users import create_demo_users

    path = tmp_path_factory.mktemp("web_template") / "web.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    clock = FixedClock("2026-09-01T09:00:00")
    engine = ProcessEngine(url, clock, _registry())
    with engine.session() as session:
        reference.load_reference(session)
        create_demo_users(session, now=clock.now())
    for diagram in [*seed_diagrams(), DEMO_DIAGRAM, WEB_DIAGRAM]:
        engine.deploy(diagram.read_bytes(), filename=diagram.name, actor="test")
    db.dispose(url)
    return path


@pytest.fixture
def web_db_url(web_template: Path, tmp_path: Path) -> Iterator[str]:
    path = tmp_path / "web.db"
    shutil.copy(web_template, path)
    url = f"sqlite:///{path}"
    yield url
    db.dispose(url)


@pytest.fixture
def web_engine(web_db_url: str, clock: FixedClock) -> ProcessEngine:
    """The engine behind the app: domain handlers registered, the test clock (2026-09-30 10:00 Shanghai)."""
    return ProcessEngine(web_db_url, clock, _registry())


@pytest.fixture
def web_app(web_engine: ProcessEngine, tmp_path: Path) -> Flask:
    from web.app import create_app

    return create_app(engine=web_engine, config={
        "TESTING": True, "SECRET_KEY": "test-secret-key", "QIFU_VAR_DIR": str(tmp_path / "var"),
    })


@pytest.fixture
def client(web_app: Flask) -> FlaskClient:
    return web_app.test_client()


@pytest.fixture
def other_client(web_app: Flask) -> FlaskClient:
    """A second browser (another user's session)."""
    return web_app.test_client()


_TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


def csrf_token(client: FlaskClient, url: str) -> str:
    """The CSRF token of the first form on ``url`` (as a browser would have it)."""
    html = client.get(url).get_data(as_text=True)
    match = _TOKEN.search(html)
    assert match, f"no csrf_token on {url}"
    return match.group(1) or match.group(2)


def login(client: FlaskClient, username: str, password: str | None = None, *, follow: bool = False):
    """Log in through the login form (CSRF token included). Password defaults to the demo password."""
    from web.demo.users import DEMO_PASSWORD

    token = csrf_token(client, "/login")
    return client.post("/login", data={"csrf_token": token, "username": username,
                                       "password": DEMO_PASSWORD if password is None else password},
                       follow_redirects=follow)


def logout(client: FlaskClient) -> None:
    token = csrf_token(client, "/")
    client.post("/logout", data={"csrf_token": token})


def post_form(client: FlaskClient, url: str, data: dict, *, form_url: str | None = None, **kwargs):
    """POST ``data`` to ``url`` with the CSRF token taken from ``form_url`` (default: ``url``)."""
    token = csrf_token(client, form_url or url)
    return client.post(url, data={"csrf_token": token, **data}, **kwargs)


CONTACT_PHONE = "13812345678"
CONTACT_ID = "33072719800101123X"


def start_case(engine: ProcessEngine, unit: str = "PA01", **fields: str):  # SubmittedCase
    """Start a case of the test diagram ``web_case`` (Pan'an region) through intake, as a clerk would."""
    from handlers.intake import submit_case

    data = {"unit": unit, "channel": "walk_in", "category": "factor_power",
            "enterprise_name": "磐安某药业有限公司", "contact_name": "李经理", "contact_phone": CONTACT_PHONE,
            "contact_id_number": CONTACT_ID, "title": "排污许可办理进度", "description": "排污许可证办理进度咨询",
            **fields}
    return submit_case(engine, "web_case", data, actor="test", region="pan_an")


def open_task_guid(engine: ProcessEngine, business_key: str, spec_id: str) -> str:
    from sqlalchemy import select

    from engine.models import HumanTask, Instance

    with engine.session() as session:
        guid = session.scalar(select(HumanTask.task_guid).join(Instance, Instance.id == HumanTask.instance_id)
                              .where(Instance.business_key == business_key, HumanTask.spec_id == spec_id))
    assert guid, f"no open task {spec_id} in {business_key}"
    return guid
