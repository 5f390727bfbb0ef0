"""Absolute links for readers outside the app: the enterprise's tracking link, the API's URLs, OpenAPI ``servers``.

They are built from the configured base URL (``QIFU_BASE_URL``, e.g. ``https://qifu.example.gov.cn``), never
from the request: the Host header is whatever the client sent, so ``Host: evil.example`` would otherwise
hand an enterprise a private link to someone else's server. Without the setting the base is
:data:`DEFAULT_BASE_URL`, the address ``qifu serve`` listens on by default. :func:`external_url` is the one
place that builds such a link; views keep ``url_for`` for links inside the app (relative paths).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import current_app

DEFAULT_BASE_URL = "http://127.0.0.1:5000"


def normalize_base_url(value: str | None) -> str:
    """``QIFU_BASE_URL`` checked and without a trailing slash; a bad value is refused at start-up."""
    text = (value or DEFAULT_BASE_URL).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password \
            or parts.query or parts.fragment:
        raise ValueError(f"QIFU_BASE_URL 应为 http(s)://主机[:端口][/路径]，不含用户名、查询串或片段: {text!r}")
    return text.rstrip("/")


def base_url() -> str:
    """The configured base URL of this app (no trailing slash)."""
    return normalize_base_url(current_app.config.get("QIFU_BASE_URL"))


def external_url(endpoint: str, **values: Any) -> str:
    """The absolute URL of ``endpoint`` under the configured base URL (a path in it is kept as a prefix)."""
    parts = urlsplit(base_url())
    adapter = current_app.url_map.bind(parts.netloc, script_name=parts.path or "/", url_scheme=parts.scheme)
    return adapter.build(endpoint, values, force_external=True)
