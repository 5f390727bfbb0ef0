"""Browser tests: a real Qifu server on a free port, driven by Debian's chromium through Playwright.

The server is the real app (``create_app``) in werkzeug's threaded server, over a fresh SQLite database
with the working-day calendar, the reference data, both seed diagrams and the demo users — what
``qifu init --demo`` sets up — and the test clock (2026-09-30 10:00 Asia/Shanghai). One server and one
browser serve the whole module; every user gets a browser context of their own (own cookies), like
separate people at separate computers.

Playwright never downloads a browser here: it drives ``/usr/bin/chromium`` (``apt-get install chromium``;
``.ci/run`` installs it). Without it the tests are skipped, unless ``QIFU_REQUIRE_BROWSER=1`` (CI), where a
missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import db
from engine.clock import FixedClock
from engine.process_engine import ProcessEngine
from engine.services import ServiceRegistry

CHROMIUM = os.environ.get("QIFU_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
PROCESS_KEYS = ("fenghua_one_place", "pan_an_station")


def _require_browser() -> None:
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("QIFU_REQUIRE_BROWSER") == "1":
        pytest.fail(f"QIFU_REQUIRE_BROWSER=1 but {CHROMIUM} is missing (apt-get install chromium)")
    pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium); browser tests skipped")


class LiveServer:
    """The app served over HTTP in a background thread; ``engine`` is the same engine the server uses."""

    def __init__(self, engine: ProcessEngine, app: Any) -> None:
        from werkzeug.serving import make_server

        self.engine = engine
        self.app = app
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="qifu-live-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(10)


@pytest.fixture(scope="module")
def live_server(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    _require_browser()
    missing = [k for k in PROCESS_KEYS if not (ROOT / "processes" / f"{k}.bpmn").exists()]
    if missing:
        pytest.skip(f"seed diagrams not drawn yet: {', '.join(missing)}")
    import handlers
    from handlers import reference
    from web.app import create_app
    from web.demo.users import create_demo_users

    work = tmp_path_factory.mktemp("browser")
    path = work / "qifu.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    registry = ServiceRegistry()
    handlers.register(registry)
    clock = FixedClock("2026-09-30T10:00:00")
    engine = ProcessEngine(url, clock, registry)
    with engine.session() as session:
        reference.load_reference(session)
        create_demo_users(session, now=clock.now())
    for key in PROCESS_KEYS:
        diagram = ROOT / "processes" / f"{key}.bpmn"
        engine.deploy(diagram.read_bytes(), filename=diagram.name, actor="test")
    app = create_app(engine=engine, config={"SECRET_KEY": "browser-test-secret", "QIFU_VAR_DIR": str(work / "var"),
                                            "QIFU_PUBLIC_RATE_LIMIT": 50})
    server = LiveServer(engine, app)
    app.config["QIFU_BASE_URL"] = server.url  # links shown to the enterprise point at this server
    yield server
    server.stop()
    db.dispose(url)


@pytest.fixture(scope="module")
def browser(live_server: LiveServer) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser: Any, live_server: LiveServer) -> Iterator[Callable[[], Any]]:
    """Open a page in a fresh browser context (a person of their own, with their own cookies)."""
    contexts: list[Any] = []

    def make() -> Any:
        context = browser.new_context(base_url=live_server.url, locale="zh-CN")
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.js_errors = errors  # type: ignore[attr-defined]
        return page

    yield make
    for context in contexts:
        context.close()


def login(page: Any, username: str) -> None:
    """Log in through the login form, as the person would."""
    from web.demo.users import DEMO_PASSWORD

    page.goto("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert "/login" not in page.url, page.inner_text("body")
