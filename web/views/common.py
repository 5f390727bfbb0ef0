"""Small helpers every view uses: the engine, the clock, the caller's address, safe redirects, access."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from flask import abort, current_app, request
from flask_login import current_user

from engine.process_engine import ProcessEngine

from ..auth import may_see_case
from ..queries import CaseSummary


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
    """404 for an unknown case, 403 for a case the user may not see (docs/domain.md "Case visibility")."""
    if case is None:
        abort(404)
    if not may_see_case(current_user, case.scope):
        abort(403)
    return case
