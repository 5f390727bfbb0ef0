"""Small helpers every view uses: the engine, the clock, the caller's address, safe redirects, access."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from flask import abort, current_app, request
from flask_login import current_user

from engine.process_engine import ProcessEngine

from ..read.cases import CaseSummary
from ..scope import may_see_case


def engine() -> ProcessEngine:
    return current_app.extensions["qifu_engine"]


def now() -> datetime:
    return engine().clock.now()


def client_ip() -> str:
    return (request.remote_addr or "unknown")[:64]


def safe_next(target: str | None, default: str = "/") -> str:
    """Only a local path (no scheme, no host, no ``//``): a login link cannot send the user elsewhere."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def require_case(case: CaseSummary | None) -> CaseSummary:
    """The case, or 404 — for an unknown case and for one the user may not see alike (docs/domain.md "Case
    visibility"): the answer must not tell a probe whether something it may not see exists."""
    if case is None or not may_see_case(current_user, case.scope):
        abort(404)
    return case


def page_number(name: str = "page") -> int:
    """The page a list is asked for (``?page=N``), 1 for anything that is not a positive number."""
    value = request.args.get(name, "1")
    return int(value) if value.isdigit() and 0 < int(value) < 1_000_000 else 1
