"""The intake API for the online channels (FH-2): WeChat account, 甬企码, the PC platform, the hotline system.

``POST /api/v1/cases`` starts a case through :func:`handlers.intake.submit_case` (the one way in);
``GET /api/v1/cases/<business_key>`` returns the status of a case to the client that created it;
``GET /api/openapi.json`` describes both (:mod:`web.openapi`).

Design choices, and why:

- ``Authorization: Bearer <token>``; the ``api_client`` row holds only the token's SHA-256 and the channels
  the client may submit on, so the channel recorded on a case is the one that really brought it. The API is
  exempt from CSRF (no cookies are involved; the bearer token is the credential).
- ``Idempotency-Key`` is required. The ``idempotency_record`` row, with the response every retry replays,
  is written in the same transaction that starts the case: both are committed or neither. A concurrent
  retry's insert fails on the unique constraint ``(client, key)`` (on PostgreSQL it waits for the first
  transaction to end), its case goes with it, and it replays the first response (200). A process that dies
  half-way leaves nothing behind, so the retry simply submits again. Same key with a different body is 409.
  A refused submission (422) stores nothing, so the client may fix the body and retry with the same key.
- Errors are JSON ``{"error": {"code", "message" (Chinese), "fields"?}}`` with 400/401/404/409/422/429;
  the app's error handlers answer the same way for everything else under ``/api/`` (404/405 on unknown
  paths, 413 beyond ``QIFU_API_MAX_BYTES``, 500), see :mod:`web.app`.
- The body is parsed here, not by ``request.get_json``: JSON nested too deep for the parser (RecursionError)
  is a 400, not a crash. Text that cannot be stored is refused per field (422): lone surrogates
  (``"\\ud800"``, valid JSON but no valid UTF-8) and NUL characters (PostgreSQL cannot store them in text).
- Absolute URLs in responses (``tracking_url``, ``status_url``) and OpenAPI's ``servers`` come from
  ``QIFU_BASE_URL`` (:func:`web.links.external_url`), never from the Host header.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import Blueprint, Response, current_app, jsonify, request, url_for
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.errors import QifuError
from engine.forms import text_problem
from web.intake_models import ApiClient, IdempotencyRecord
from web.links import base_url, external_url

from .public import case_status, intake_errors, public_status, public_timeline, take_rate_limit

bp = Blueprint("api", __name__)

FIELDS = ("channel", "category", "enterprise_name", "credit_code", "contact_name", "contact_phone",
          "contact_id_number", "title", "description")
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces


# --- tokens ---------------------------------------------------------------------------------------------
def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return "qf_" + secrets.token_urlsafe(32)


def create_client(db: Session, name: str, channels: list[str], now: datetime,
                  process_key: str = "fenghua_one_place") -> tuple[ApiClient, str]:
    """Create an API client; returns the row and the plain token (shown once, never stored)."""
    from handlers.models import Channel

    name = (name or "").strip()
    if not name or len(name) > 200:
        raise QifuError("客户端名称不能为空，最长 200 个字符")
    if db.scalar(select(ApiClient.id).where(ApiClient.name == name)):
        raise QifuError(f"客户端已存在: {name}")
    clean = sorted({c.strip() for c in channels if c and c.strip()})
    if not clean:
        raise QifuError("至少指定一个渠道 (--channel)")
    online = {c.code: c for c in db.scalars(select(Channel).where(Channel.mode == "online"))}
    unknown = [c for c in clean if c not in online]
    if unknown:
        raise QifuError(f"未知渠道编码或不是线上渠道: {', '.join(unknown)}（可选: {', '.join(sorted(online))}）")
    token = new_token()
    client = ApiClient(name=name, token_hash=hash_token(token), channels=",".join(clean), process_key=process_key,
                       active=True, created_at=now)
    db.add(client)
    db.flush()
    return client, token


_SEALED = "v2:"  # AES-GCM; records sealed before (a hand-made XOR keystream) cannot be opened any more


def _sealing_key(bearer: str) -> bytes:
    """A key only the client can bring: derived (HKDF-SHA256) from its bearer token, which the database holds
    only as a hash."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"qifu idempotency record: tracking token").derive(bearer.encode("utf-8"))


def _seal(token: str, bearer: str, key: str) -> str:
    """Encrypt the tracking token for the idempotency record (AES-256-GCM from ``cryptography``, the
    idempotency key as associated data): only a genuine retry, presenting the same bearer token and key,
    recovers it."""
    nonce = os.urandom(12)
    sealed = AESGCM(_sealing_key(bearer)).encrypt(nonce, token.encode("utf-8"), key.encode("utf-8"))
    return _SEALED + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def _unseal(sealed: str, bearer: str, key: str) -> str | None:
    """The tracking token of a record, or None when it cannot be opened (an older record's format)."""
    if not sealed.startswith(_SEALED):
        return None
    raw = base64.urlsafe_b64decode(sealed[len(_SEALED):])
    try:
        return AESGCM(_sealing_key(bearer)).decrypt(raw[:12], raw[12:], key.encode("utf-8")).decode("utf-8")
    except InvalidTag:
        return None


# --- responses ------------------------------------------------------------------------------------------
def error(status: int, code: str, message: str, fields: dict[str, str] | None = None,
          headers: dict[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    response = jsonify({"error": body})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _engine() -> Any:
    return current_app.extensions["qifu_engine"]


def _authenticate(db: Session | None = None) -> tuple[ApiClient | None, str]:
    """The active client of the request's bearer token (read in ``db`` when given, else in a session of its own)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 200:
        return None, ""
    if db is None:
        with _engine().session() as own:
            return _authenticate(own)
    client = db.scalar(select(ApiClient).where(ApiClient.token_hash == hash_token(token), ApiClient.active.is_(True)))
    if client is not None:
        db.expunge(client)
    return client, token


def _unauthorized() -> Response:
    return error(401, "unauthorized", "缺少或无效的访问令牌（Authorization: Bearer …）",
                 headers={"WWW-Authenticate": 'Bearer realm="qifu"'})


def _request_hash(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _validate_body(body: dict[str, Any], client: ApiClient) -> tuple[dict[str, Any], dict[str, str]]:
    """Shape checks the API owns (types, unknown fields, the client's channels); content checks are intake's."""
    errors: dict[str, str] = {}
    for name in body:
        if name not in FIELDS:
            errors[_printable(name)] = "不支持的字段"
    fields: dict[str, Any] = {}
    for name in FIELDS:
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            errors[name] = "应为文本"
            continue
        problem = text_problem(value)
        if problem:
            errors[name] = problem
            continue
        if value.strip():
            fields[name] = value.strip()
    allowed = client.channel_list
    if "channel" not in fields and len(allowed) == 1:
        fields["channel"] = allowed[0]
    if "channel" not in fields:
        errors.setdefault("channel", f"请填写渠道，可选：{', '.join(allowed)}")
    elif fields["channel"] not in allowed:
        errors.setdefault("channel", f"该客户端无权使用渠道“{fields['channel']}”，可选：{', '.join(allowed)}")
    return fields, errors


def _printable(name: str) -> str:
    """A field name fit to echo back in an error (escapes what cannot be encoded)."""
    return name if text_problem(name) is None else name.encode("unicode_escape").decode("ascii")


def parse_json_object() -> tuple[dict[str, Any] | None, Response | None]:
    """The request body as a JSON object, or the 400 to answer (a body over the limit raises 413)."""
    if not request.is_json:
        return None, error(400, "invalid_json", "请求体必须是 JSON 对象（Content-Type: application/json）")
    raw = request.get_data(cache=True)
    try:
        body = json.loads(raw)
    except RecursionError:
        return None, error(400, "json_too_deep", "请求体 JSON 嵌套层数过多，无法解析")
    except ValueError:  # also UnicodeDecodeError: not UTF-8
        return None, error(400, "invalid_json", "请求体不是有效的 JSON（应为 UTF-8 编码的 JSON 对象）")
    if not isinstance(body, dict):
        return None, error(400, "invalid_json", "请求体必须是 JSON 对象（Content-Type: application/json）")
    return body, None


def _content_errors(client: ApiClient, fields: dict[str, Any]) -> dict[str, str]:
    """Intake's own checks, run without starting anything, so one 422 lists every problem at once."""
    from handlers.intake import PROCESSES, validate

    region = PROCESSES.get(client.process_key)
    if region is None:
        return {}
    try:
        with _engine().session() as db:
            validate(db, region, fields, "online")
    except QifuError as exc:
        return intake_errors(exc)
    return {}


def _replay(record: IdempotencyRecord, bearer: str) -> Response:
    body = json.loads(record.response_json or "{}")
    token = _unseal(record.sealed_token, bearer, record.key) if record.sealed_token else None
    if token is not None:
        body["tracking_token"] = token
        body["tracking_url"] = external_url("public.track", token=token)
    response = jsonify(body)
    response.status_code = 200
    response.headers["Idempotent-Replayed"] = "true"
    if body.get("business_key"):
        response.headers["Location"] = url_for("api.get_case", business_key=body["business_key"])
    return response


def _find_record(client: ApiClient, key: str, db: Session | None = None) -> IdempotencyRecord | None:
    if db is None:
        with _engine().session() as own:
            return _find_record(client, key, own)
    record = db.scalar(select(IdempotencyRecord).where(IdempotencyRecord.client_id == client.id,
                                                       IdempotencyRecord.key == key))
    if record is not None:
        db.expunge(record)
    return record


def _existing(record: IdempotencyRecord | None, request_hash: str, bearer: str) -> Response:
    """A record with this key exists: replay its response, or refuse a different body."""
    if record is None:  # pragma: no cover - records are never deleted while the client exists
        return error(409, "idempotency_retry", "同一幂等键的前一次请求未成功，请重新提交")
    if record.request_hash != request_hash:
        return error(409, "idempotency_key_reused", "该幂等键已用于内容不同的请求（Idempotency-Key 不可复用）")
    return _replay(record, bearer)


# --- endpoints ------------------------------------------------------------------------------------------
@bp.post("/api/v1/cases")
def create_case() -> Response:
    """Submit an enterprise's problem from an online channel."""
    engine = _engine()
    limit = int(current_app.config.get("QIFU_API_RATE_LIMIT", 600))
    window = timedelta(seconds=int(current_app.config.get("QIFU_API_RATE_WINDOW", 3600)))
    key = request.headers.get("Idempotency-Key", "").strip()
    known: IdempotencyRecord | None = None
    with engine.session() as db:  # one short transaction: who it is, the rate limit, an earlier record of the key
        client, bearer = _authenticate(db)
        if client is None:
            return _unauthorized()
        allowed = take_rate_limit(db, f"api:{client.id}", limit, window, engine.clock.now())
        if allowed and KEY_PATTERN.match(key):
            known = _find_record(client, key, db)
    if not allowed:
        return error(429, "rate_limited", f"请求过于频繁：每个客户端每{int(window.total_seconds() // 60)}分钟最多"
                                          f"提交{limit}次", headers={"Retry-After": str(int(window.total_seconds()))})
    if not key:
        return error(400, "missing_idempotency_key", "缺少请求头 Idempotency-Key（重试时请使用同一个值）")
    if not KEY_PATTERN.match(key):
        return error(400, "invalid_idempotency_key", "Idempotency-Key 应为1至200个可打印ASCII字符")
    body, refused = parse_json_object()
    if refused is not None:
        return refused
    fields, errors = _validate_body(body, client)
    if errors:
        return error(422, "invalid_fields", "提交的数据有误，未予受理", {**_content_errors(client, fields), **errors})
    digest = _request_hash(body)
    if known is not None:
        return _existing(known, digest, bearer)

    from handlers.intake import submit_case

    answer: dict[str, Any] = {}

    def record(db: Session, case: Any) -> None:
        """In the case's own transaction: store the response that every retry with this key replays."""
        answer.update(_stored_response(db, case))
        db.add(IdempotencyRecord(client_id=client.id, key=key, request_hash=digest, status="done", status_code=201,
                                 response_json=json.dumps(answer, ensure_ascii=False),
                                 sealed_token=_seal(case.tracking_token, bearer, key),
                                 business_key=case.business_key, created_at=engine.clock.now()))
        db.flush()  # a concurrent retry that committed first makes this fail, and the case with it

    try:
        result = submit_case(engine, client.process_key, fields, actor=f"接口:{client.name}", channel_mode="online",
                             also=record)
    except QifuError as exc:
        field_errors = intake_errors(exc)
        if field_errors:
            return error(422, "invalid_fields", "提交的数据有误，未予受理", field_errors)
        return error(422, exc.code or "refused", exc.message)
    except IntegrityError as exc:
        if "idempotency" not in str(exc.orig):
            raise
        return _existing(_find_record(client, key), digest, bearer)  # the other request's case is the one
    token = _value(result, "tracking_token")
    body_out = {**answer, "tracking_token": token,
                "tracking_url": external_url("public.track", token=token)}
    response = jsonify(body_out)
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_case", business_key=answer["business_key"])
    return response


def _stored_response(db: Session, case: Any) -> dict[str, Any]:
    """The response every retry replays, built from what the start step left in its own transaction (the
    ledger row it registered, the instance's status), not by reading the case and its tasks again."""
    from handlers.intake import ledger_row

    row = ledger_row(db, case.instance_id)
    status = case_status(row, finished=case.status != "running")
    return {"business_key": case.business_key, "status": status["status"], "status_text": status["status_text"],
            "received_at": status["received_at"].isoformat(),
            "status_url": external_url("api.get_case", business_key=case.business_key)}


def _value(result: Any, name: str) -> Any:
    return result[name] if isinstance(result, dict) else getattr(result, name)


@bp.get("/api/v1/cases/<business_key>")
def get_case(business_key: str) -> Response:
    """Status of a case, for the client that submitted it (any other case is 404, existing or not)."""
    client, _ = _authenticate()
    if client is None:
        return _unauthorized()
    if len(business_key) > 200 or text_problem(business_key):  # %00 in the path: not a key, and not for SQL
        return error(404, "not_found", "未找到该诉求（仅可查询本客户端提交的诉求）")
    from handlers.models import EnterpriseCase

    with _engine().session() as db:
        owned = db.scalar(select(IdempotencyRecord.id).where(IdempotencyRecord.client_id == client.id,
                                                             IdempotencyRecord.business_key == business_key))
        case = db.scalar(select(EnterpriseCase).where(EnterpriseCase.business_key == business_key)) if owned else None
        if case is None:
            return error(404, "not_found", "未找到该诉求（仅可查询本客户端提交的诉求）")
        status = public_status(_engine(), case)
        timeline = public_timeline(_engine(), case.instance_id)
    return jsonify({
        "business_key": status["business_key"], "status": status["status"], "status_text": status["status_text"],
        "finished": status["finished"], "received_at": status["received_at"].isoformat(),
        "current_steps": status["current_steps"], "satisfaction": status["satisfaction"],
        "timeline": [{"at": s["at"].isoformat(), "text": s["text"]} for s in timeline],
    })


@bp.get("/api/openapi.json")
def openapi() -> Response:
    from web.openapi import document

    return jsonify(document(base_url()))


@bp.before_request
def _body_limit() -> None:
    """A JSON intake is a few KiB: the API's bodies get a limit of their own, well below the upload limit."""
    request.max_content_length = int(current_app.config.get("QIFU_API_MAX_BYTES") or 1024 * 1024)


@bp.record_once
def _exempt_from_csrf(state: Any) -> None:
    """The API authenticates with bearer tokens, not cookies: CSRF protection does not apply to it."""
    csrf = state.app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(bp)
