"""The intake API for online channels (FH-2): bearer tokens, idempotent retries, structured Chinese errors,
per-client status, the OpenAPI description and the ``qifu api-client`` command."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from tests.web.intake_support import CASE_FIELDS, case_count, ensure_deployed, enterprise_case, new_api_client


@pytest.fixture
def api(web_app, web_engine):
    ensure_deployed(web_engine, "fenghua_one_place")
    return web_app


def post_case(client: Any, token: str, body: dict[str, Any], key: str | None = "key-1") -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post("/api/v1/cases", json=body, headers=headers)


@pytest.mark.req("FH-2")
def test_online_channel_submits_and_a_retry_replays_the_first_response(api, client, web_engine) -> None:
    token = new_api_client(web_engine, "wechat", ("wechat_account",))
    first = post_case(client, token, CASE_FIELDS)
    assert first.status_code == 201, first.get_json()
    body = first.get_json()
    assert body["business_key"].startswith("FH-")
    assert first.headers["Location"].endswith(f"/api/v1/cases/{body['business_key']}")
    assert body["tracking_url"].endswith(f"/track/{body['tracking_token']}")

    retry = post_case(client, token, dict(reversed(list(CASE_FIELDS.items()))))  # same content, other order
    assert retry.status_code == 200
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert retry.get_json() == body
    assert case_count(web_engine) == 1

    case = enterprise_case(web_engine, body["business_key"])
    assert case.channel == "wechat_account"  # FH-2: the channel is recorded on the case
    assert case.enterprise_name == CASE_FIELDS["enterprise_name"]
    # the tracking link of the replay is the real one: it opens the case
    page = client.get(f"/track/{retry.get_json()['tracking_token']}")
    assert page.status_code == 200 and body["business_key"] in page.get_data(as_text=True)


def test_the_tracking_token_is_not_stored_in_plain(api, client, web_engine) -> None:
    from web.intake_models import ApiClient, IdempotencyRecord

    token = new_api_client(web_engine)
    body = post_case(client, token, CASE_FIELDS).get_json()
    with web_engine.session() as session:
        record = session.scalar(select(IdempotencyRecord))
        stored = json.dumps([record.response_json, record.sealed_token, record.request_hash])
        api_client = session.scalar(select(ApiClient))
        assert api_client.token_hash != token and token not in api_client.token_hash
    assert body["tracking_token"] not in stored
    assert body["tracking_token"].encode().hex() not in stored


def test_same_key_with_a_different_body_is_a_conflict(api, client, web_engine) -> None:
    token = new_api_client(web_engine)
    assert post_case(client, token, CASE_FIELDS).status_code == 201
    other = post_case(client, token, {**CASE_FIELDS, "title": "另一个问题"})
    assert other.status_code == 409
    assert other.get_json()["error"]["code"] == "idempotency_key_reused"
    assert "幂等键" in other.get_json()["error"]["message"]
    assert case_count(web_engine) == 1


def test_keys_are_per_client(api, client, web_engine) -> None:
    one = new_api_client(web_engine, "wechat", ("wechat_account",))
    two = new_api_client(web_engine, "yongqima", ("yongqima",))
    a = post_case(client, one, CASE_FIELDS, key="same")
    b = post_case(client, two, CASE_FIELDS, key="same")
    assert a.status_code == b.status_code == 201
    assert a.get_json()["business_key"] != b.get_json()["business_key"]
    assert enterprise_case(web_engine, b.get_json()["business_key"]).channel == "yongqima"
    assert case_count(web_engine) == 2


def test_concurrent_retries_create_exactly_one_case(api, web_engine) -> None:
    token = new_api_client(web_engine)
    results: list[tuple[int, dict]] = []
    barrier = threading.Barrier(6)

    def send() -> None:
        client = api.test_client()
        barrier.wait()
        response = post_case(client, token, CASE_FIELDS, key="retry-storm")
        results.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 6
    assert sorted(code for code, _ in results).count(201) == 1, results
    assert {code for code, _ in results} <= {200, 201}
    assert len({body["business_key"] for _, body in results}) == 1
    assert case_count(web_engine) == 1


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer wrong-token", "Basic dXNlcjpwdw=="])
def test_a_bad_token_is_401_and_creates_nothing(api, client, web_engine, header) -> None:
    new_api_client(web_engine)
    headers = {"Idempotency-Key": "k"} | ({"Authorization": header} if header else {})
    response = client.post("/api/v1/cases", json=CASE_FIELDS, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert case_count(web_engine) == 0


def test_a_revoked_client_is_refused(api, client, web_engine) -> None:
    from web.intake_models import ApiClient

    token = new_api_client(web_engine)
    with web_engine.session() as session:
        session.scalar(select(ApiClient)).active = False
    assert post_case(client, token, CASE_FIELDS).status_code == 401


def test_invalid_fields_are_422_nothing_saved_and_the_key_can_be_reused(api, client, web_engine) -> None:
    from web.intake_models import IdempotencyRecord

    token = new_api_client(web_engine)
    bad = post_case(client, token, {**CASE_FIELDS, "contact_phone": "12", "enterprise_name": "", "x": "1"},
                    key="fix-me")
    assert bad.status_code == 422
    error = bad.get_json()["error"]
    assert error["code"] == "invalid_fields"
    assert set(error["fields"]) == {"contact_phone", "enterprise_name", "x"}  # all problems at once
    assert "联系电话" in error["fields"]["contact_phone"] and "企业名称" in error["fields"]["enterprise_name"]
    assert case_count(web_engine) == 0
    with web_engine.session() as session:
        assert session.scalar(select(func.count(IdempotencyRecord.id))) == 0
    fixed = post_case(client, token, CASE_FIELDS, key="fix-me")
    assert fixed.status_code == 201
    assert case_count(web_engine) == 1


def test_a_submission_that_dies_half_way_leaves_nothing_and_the_retry_submits(api, client, web_engine,
                                                                               monkeypatch) -> None:
    """The case step has run, the process dies before the commit: no case, no record, no stuck key."""
    from web.intake_models import IdempotencyRecord
    from web.views import api as api_view

    token = new_api_client(web_engine)
    real = api_view._stored_response

    def dies(db, business_key):
        raise SystemExit("进程在提交前终止")  # not an Exception: nothing may catch it and go on

    monkeypatch.setattr(api_view, "_stored_response", dies)
    with pytest.raises(SystemExit):
        post_case(client, token, CASE_FIELDS, key="crash-key")
    assert case_count(web_engine) == 0
    with web_engine.session() as session:
        assert session.scalar(select(func.count(IdempotencyRecord.id))) == 0

    monkeypatch.setattr(api_view, "_stored_response", real)
    retry = post_case(client, token, CASE_FIELDS, key="crash-key")
    assert retry.status_code == 201, retry.get_json()
    again = post_case(client, token, CASE_FIELDS, key="crash-key")
    assert again.status_code == 200 and again.get_json()["business_key"] == retry.get_json()["business_key"]
    assert case_count(web_engine) == 1


@pytest.mark.parametrize(("change", "field"), [
    ({"channel": "yongqima"}, "channel"),          # a channel this client may not use
    ({"channel": "window_8718"}, "channel"),       # an offline channel (even if the row allowed it)
    ({"unit": "FH-JXJ"}, "unit"),                  # a field the API does not take
    ({"title": 42}, "title"),                      # not text
    ({"category": "no_such_category"}, "category"),
])
def test_field_level_refusals(api, client, web_engine, change, field) -> None:
    from web.intake_models import ApiClient

    token = new_api_client(web_engine, "wechat", ("wechat_account",))
    with web_engine.session() as session:  # as if an administrator had edited the row by hand
        session.scalar(select(ApiClient)).channels = "wechat_account,window_8718"
    response = post_case(client, token, {**CASE_FIELDS, "channel": "wechat_account", **change})
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["error"]["fields"]
    assert case_count(web_engine) == 0


def test_request_shape_errors_are_400(api, client, web_engine) -> None:
    token = new_api_client(web_engine)
    missing_key = post_case(client, token, CASE_FIELDS, key=None)
    assert missing_key.status_code == 400
    assert missing_key.get_json()["error"]["code"] == "missing_idempotency_key"
    not_json = client.post("/api/v1/cases", data="enterprise_name=x",
                           headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "k",
                                    "Content-Type": "application/x-www-form-urlencoded"})
    assert not_json.status_code == 400
    assert not_json.get_json()["error"]["code"] == "invalid_json"
    assert post_case(client, token, [CASE_FIELDS]).status_code == 400  # type: ignore[arg-type]
    assert post_case(client, token, CASE_FIELDS, key="has space").status_code == 400
    assert case_count(web_engine) == 0


def test_api_needs_no_csrf_token_but_forms_do(api, client, web_engine) -> None:
    token = new_api_client(web_engine)
    assert post_case(client, token, CASE_FIELDS).status_code == 201  # no csrf_token anywhere
    assert client.post("/submit", data=CASE_FIELDS).status_code == 400  # the public form still needs one


def test_rate_limit_per_client_is_429(api, client, web_engine) -> None:
    api.config["QIFU_API_RATE_LIMIT"] = 2
    token = new_api_client(web_engine)
    assert post_case(client, token, CASE_FIELDS, key="a").status_code == 201
    assert post_case(client, token, CASE_FIELDS, key="b").status_code == 201
    third = post_case(client, token, CASE_FIELDS, key="c")
    assert third.status_code == 429
    assert third.get_json()["error"]["code"] == "rate_limited"
    assert "频繁" in third.get_json()["error"]["message"]
    assert "Retry-After" in third.headers
    assert case_count(web_engine) == 2


def test_status_is_visible_only_to_the_client_that_submitted(api, client, web_engine) -> None:
    mine = new_api_client(web_engine, "wechat", ("wechat_account",))
    theirs = new_api_client(web_engine, "yongqima", ("yongqima",))
    key = post_case(client, mine, CASE_FIELDS).get_json()["business_key"]
    status = client.get(f"/api/v1/cases/{key}", headers={"Authorization": f"Bearer {mine}"})
    assert status.status_code == 200
    data = status.get_json()
    assert data["business_key"] == key and data["status"] == "handling" and data["finished"] is False
    assert data["timeline"][0]["text"] == "诉求已受理"
    assert CASE_FIELDS["contact_phone"] not in json.dumps(data, ensure_ascii=False)
    other = client.get(f"/api/v1/cases/{key}", headers={"Authorization": f"Bearer {theirs}"})
    assert other.status_code == 404 and other.get_json()["error"]["code"] == "not_found"
    assert client.get(f"/api/v1/cases/{key}").status_code == 401
    assert client.get("/api/v1/cases/FH-20260101-9999", headers={"Authorization": f"Bearer {mine}"}).status_code == 404


# --- the OpenAPI document -------------------------------------------------------------------------------
def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return ([node["$ref"]] if "$ref" in node else []) + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _resolve(doc: dict, ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def test_openapi_document_is_well_formed_and_matches_the_routes(api, client) -> None:
    from web.views.api import FIELDS

    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    doc = response.get_json()
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] and doc["info"]["version"]
    for ref in _refs(doc):
        assert isinstance(_resolve(doc, ref), dict), ref
    rules = {(r.rule.replace("<", "{").replace(">", "}"), m) for r in api.url_map.iter_rules() for m in r.methods}
    operation_ids = []
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            assert (path, method.upper()) in rules, f"{method.upper()} {path} is described but not served"
            operation_ids.append(operation["operationId"])
            assert operation["responses"], path
            for code, resp in operation["responses"].items():
                assert code.isdigit() and resp["description"]
            for param in operation.get("parameters", []):
                assert param["in"] in ("header", "path", "query") and "schema" in param
                if param["in"] == "path":
                    assert param["required"] is True and "{" + param["name"] + "}" in path
    assert len(operation_ids) == len(set(operation_ids))
    create = doc["paths"]["/api/v1/cases"]["post"]
    assert {"201", "200", "400", "401", "409", "422", "429"} <= set(create["responses"])
    schema = _resolve(doc, create["requestBody"]["content"]["application/json"]["schema"]["$ref"])
    assert set(schema["properties"]) == set(FIELDS)
    assert set(schema["required"]) <= set(schema["properties"])
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {**doc["components"]["securitySchemes"]["bearerAuth"],
                                                                  "type": "http", "scheme": "bearer"}


# --- qifu api-client ------------------------------------------------------------------------------------
def test_cli_adds_a_client_and_prints_its_token_once(api, client, web_engine, web_db_url) -> None:
    from web.cli import main
    from web.intake_models import ApiClient

    runner = CliRunner()
    env = {"QIFU_DATABASE_URL": web_db_url}
    result = runner.invoke(main, ["--json", "api-client", "add", "甬企码", "--channel", "yongqima"], env=env)
    assert result.exit_code == 0, result.output
    token = json.loads(result.output)["token"]
    with web_engine.session() as session:
        row = session.scalar(select(ApiClient).where(ApiClient.name == "甬企码"))
        assert row.channel_list == ["yongqima"] and token not in (row.token_hash, row.channels)
    response = post_case(client, token, {**CASE_FIELDS, "channel": "yongqima"})
    assert response.status_code == 201
    listed = runner.invoke(main, ["api-client", "list"], env=env)
    assert "甬企码" in listed.output and token not in listed.output
    for channel in ("nope", "window_8718"):  # unknown, offline
        refused = runner.invoke(main, ["api-client", "add", "x", "--channel", channel], env=env)
        assert refused.exit_code == 2 and "未知渠道编码或不是线上渠道" in refused.output
    assert runner.invoke(main, ["api-client", "revoke", "甬企码"], env=env).exit_code == 0
    assert post_case(client, token, CASE_FIELDS, key="after-revoke").status_code == 401


# --- on every backend (SQLite and, when configured, PostgreSQL) -----------------------------------------
@pytest.fixture
def any_backend_app(db_url, clock, tmp_path):
    """The app over the root fixtures' database (parametrised over SQLite and PostgreSQL)."""
    import handlers
    from engine.process_engine import ProcessEngine
    from engine.services import ServiceRegistry
    from handlers import reference
    from web.app import create_app

    registry = ServiceRegistry()
    handlers.register(registry)
    engine = ProcessEngine(db_url, clock, registry)
    with engine.session() as session:
        reference.load_reference(session)
    ensure_deployed(engine, "fenghua_one_place")
    return create_app(engine=engine, config={"TESTING": True, "SECRET_KEY": "k", "QIFU_VAR_DIR": str(tmp_path)})


def test_concurrent_retries_create_one_case_on_every_backend(any_backend_app) -> None:
    engine = any_backend_app.extensions["qifu_engine"]
    token = new_api_client(engine)
    codes: list[int] = []
    keys: set[str] = set()
    barrier = threading.Barrier(4)

    def send() -> None:
        client = any_backend_app.test_client()
        barrier.wait()
        response = post_case(client, token, CASE_FIELDS, key="pg-retry")
        codes.append(response.status_code)
        keys.add(response.get_json().get("business_key", "?"))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(codes) == [200, 200, 200, 201] and len(keys) == 1
    assert case_count(engine) == 1


def test_the_rate_limit_holds_under_concurrency_on_every_backend(engine) -> None:
    from datetime import timedelta

    from web.intake_models import RateLimitHit
    from web.views.public import take_rate_limit

    results: list[bool] = []
    barrier = threading.Barrier(8)

    def hit() -> None:
        barrier.wait()
        with engine.session() as session:
            results.append(take_rate_limit(session, "public_submit:test", 3, timedelta(hours=1), engine.clock.now()))

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == [False] * 5 + [True] * 3
    with engine.session() as session:
        assert session.scalar(select(func.count(RateLimitHit.id))) == 3
