"""Absolute links come from QIFU_BASE_URL, never from the Host header (web/links.py); proxy headers are
trusted only for the configured number of hops (QIFU_TRUSTED_PROXIES)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from tests.web.conftest import csrf_token
from tests.web.intake_support import CASE_FIELDS, ensure_deployed, new_api_client

BASE = "https://qifu.example.gov.cn"
EVIL = {"Host": "evil.example", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http"}
LINK = re.compile(r'id="tracking-link" href="([^"]+)"')
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


@pytest.fixture
def site(web_engine, tmp_path):
    """The app with a configured base URL and a proxy in front of it."""
    from web.app import create_app

    ensure_deployed(web_engine, "fenghua_one_place")
    return create_app(engine=web_engine, config={
        "TESTING": True, "SECRET_KEY": "test-secret-key", "QIFU_VAR_DIR": str(tmp_path / "var"),
        "QIFU_BASE_URL": BASE + "/", "QIFU_TRUSTED_PROXIES": 1,
    })


def form_token(client: Any, url: str, headers: dict[str, str]) -> str:
    """The CSRF token of ``url``'s form, fetched the way the attacker's browser does (same Host)."""
    match = CSRF.search(client.get(url, headers=headers).get_data(as_text=True))
    assert match, f"no csrf_token on {url}"
    return match.group(1)


def receipt_link(client: Any, headers: dict[str, str]) -> str:
    token = form_token(client, "/submit", headers)
    response = client.post("/submit", data={"csrf_token": token, **CASE_FIELDS}, headers=headers)
    assert response.status_code == 303, response.get_data(as_text=True)
    page = client.get("/submit/done", headers=headers).get_data(as_text=True)
    match = LINK.search(page)
    assert match, page
    return match.group(1)


def post_case(client: Any, token: str, key: str = "k-1") -> Any:
    return client.post("/api/v1/cases", json=CASE_FIELDS,
                       headers={**EVIL, "Authorization": f"Bearer {token}", "Idempotency-Key": key})


def test_the_receipt_link_is_on_the_base_url_whatever_the_host(site) -> None:
    link = receipt_link(site.test_client(), EVIL)
    assert link.startswith(f"{BASE}/track/"), link
    assert "evil.example" not in link


def test_without_a_setting_the_default_base_url_is_used_never_the_host(web_app, web_engine, client) -> None:
    from web.links import DEFAULT_BASE_URL

    ensure_deployed(web_engine, "fenghua_one_place")
    link = receipt_link(client, {"Host": "evil.example"})
    assert link.startswith(f"{DEFAULT_BASE_URL}/track/"), link


def test_the_api_answers_with_links_on_the_base_url(site, web_engine) -> None:
    client = site.test_client()
    token = new_api_client(web_engine)
    created = post_case(client, token)
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["tracking_url"] == f"{BASE}/track/{body['tracking_token']}"
    assert body["status_url"] == f"{BASE}/api/v1/cases/{body['business_key']}"
    replayed = post_case(client, token)  # the retry rebuilds the tracking link
    assert replayed.status_code == 200
    assert replayed.get_json()["tracking_url"] == body["tracking_url"]
    assert "evil.example" not in created.headers.get("Location", "")


def test_openapi_servers_is_the_base_url(site) -> None:
    document = site.test_client().get("/api/openapi.json", headers=EVIL).get_json()
    assert document["servers"] == [{"url": BASE}]


def test_the_clerks_intake_link_is_on_the_base_url(site, web_engine) -> None:
    client = site.test_client()
    from web.demo.users import DEMO_PASSWORD

    client.post("/login", data={"csrf_token": form_token(client, "/login", EVIL), "username": "fh_staff",
                                "password": DEMO_PASSWORD}, headers=EVIL)
    response = client.post("/intake", data={"csrf_token": form_token(client, "/intake", EVIL), **CASE_FIELDS,
                                            "unit": "FH-CENTRE", "channel": "hotline"}, headers=EVIL)
    assert response.status_code == 303, response.get_data(as_text=True)
    page = client.get(response.headers["Location"], headers=EVIL).get_data(as_text=True)
    links = re.findall(r"https?://[^\s<\"']+/track/[A-Za-z0-9_-]+", page)
    assert links and all(link.startswith(f"{BASE}/track/") for link in links), links


def test_a_path_in_the_base_url_is_kept(web_app) -> None:
    from web.links import external_url

    web_app.config["QIFU_BASE_URL"] = "https://gov.example.cn/qifu"
    with web_app.test_request_context("/", headers=EVIL):
        assert external_url("public.track", token="abc") == "https://gov.example.cn/qifu/track/abc"


def test_base_url_from_the_environment_and_a_bad_one_refused(web_engine, tmp_path, monkeypatch) -> None:
    from web.app import create_app

    config = {"SECRET_KEY": "k", "QIFU_VAR_DIR": str(tmp_path)}
    monkeypatch.setenv("QIFU_BASE_URL", "https://env.example.gov.cn/")
    assert create_app(engine=web_engine, config=config).config["QIFU_BASE_URL"] == "https://env.example.gov.cn"
    for bad in ("evil.example", "ftp://x.example", "https://user:pw@x.example", "https://x.example/?a=1"):
        monkeypatch.setenv("QIFU_BASE_URL", bad)
        with pytest.raises(ValueError, match="QIFU_BASE_URL"):
            create_app(engine=web_engine, config=config)


# --- the client address behind a proxy -----------------------------------------------------------------
def recorded_ip(app: Any, engine: Any, headers: dict[str, str]) -> str:
    """The address a failed login is recorded (and throttled) under."""
    from web.models import LoginAttempt

    client = app.test_client()
    token = csrf_token(client, "/login")
    client.post("/login", data={"csrf_token": token, "username": "pa_accept", "password": "wrong-password"},
                headers=headers)
    with engine.session() as session:
        return session.scalars(select(LoginAttempt.ip).order_by(LoginAttempt.id.desc())).first()


def test_no_proxy_header_is_trusted_by_default(web_app, web_engine) -> None:
    assert recorded_ip(web_app, web_engine, {"X-Forwarded-For": "203.0.113.9"}) == "127.0.0.1"


def test_trusted_proxies_give_the_client_address(site, web_engine) -> None:
    # one hop trusted: the address the (one) proxy appended, not what the client put in front of it
    assert recorded_ip(site, web_engine, {"X-Forwarded-For": "198.51.100.1, 203.0.113.9"}) == "203.0.113.9"


def test_bad_proxy_setting_is_refused(web_engine, tmp_path) -> None:
    from web.app import create_app

    with pytest.raises(ValueError, match="QIFU_TRUSTED_PROXIES"):
        create_app(engine=web_engine, config={"SECRET_KEY": "k", "QIFU_VAR_DIR": str(tmp_path),
                                              "QIFU_TRUSTED_PROXIES": "two"})
