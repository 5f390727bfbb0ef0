"""The application's settings: the engine's section plus the web's, read once from the environment.

One object (:class:`Settings`), one table in README (``qifu settings`` prints it, a test holds README to it),
and one way to build the engine from it (:func:`web.engine.build_engine`, used by ``create_app`` and the CLI).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.settings import EngineSettings, flag, positive_int, read, section, setting

from .links import DEFAULT_BASE_URL, normalize_base_url


def _sender(text: str) -> str:
    if ":" not in text:
        raise ValueError("应为 模块:类名，例如 mypkg.sms:Sender")
    return text.strip()


@dataclass(frozen=True)
class Settings:
    engine: EngineSettings = section(EngineSettings)
    var_dir: str = setting("QIFU_VAR_DIR", "var", "where the app keeps its files (attachments, the generated key)")
    secret_key: str | None = setting("QIFU_SECRET_KEY", "",
                                     "the key for sessions and CSRF tokens; unset: generated once into "
                                     "`var/secret_key`")
    revisit_key_file: str | None = setting(
        "QIFU_REVISIT_KEY_FILE", "",
        "the secret key of the revisit sampling draw (PA-8; kept outside the database, created with one key if "
        "missing); unset: `revisit_key` in `QIFU_VAR_DIR`")
    base_url: str = setting("QIFU_BASE_URL", DEFAULT_BASE_URL,
                            "the address people reach the app at; every absolute link (tracking link, the "
                            "intake API's links, OpenAPI `servers`) is built on it, never on the `Host` header",
                            normalize_base_url)
    trusted_proxies: int = setting("QIFU_TRUSTED_PROXIES", "0",
                                   "reverse proxies in front of the app; N applies werkzeug's `ProxyFix` with N "
                                   "hops for `X-Forwarded-For`/`-Proto`", positive_int)
    secure_cookies: bool = setting("QIFU_SECURE_COOKIES", "0", "`1`: cookies over HTTPS only", flag)
    session_max_age: int = setting("QIFU_SESSION_MAX_AGE", "86400",
                                   "seconds a login lasts however busy (idle sessions end after 8 hours)",
                                   positive_int)
    api_max_bytes: int = setting("QIFU_API_MAX_BYTES", str(1024 * 1024), "the largest JSON body under `/api/`",
                                 positive_int)
    api_rate_limit: int = setting("QIFU_API_RATE_LIMIT", "600", "intake API submissions per client per window",
                                  positive_int)
    api_rate_window: int = setting("QIFU_API_RATE_WINDOW", "3600", "the intake API's window, seconds",
                                   positive_int)
    public_rate_limit: int = setting("QIFU_PUBLIC_RATE_LIMIT", "5",
                                     "public form submissions per client address per window", positive_int)
    public_rate_window: int = setting("QIFU_PUBLIC_RATE_WINDOW", "3600", "the public form's window, seconds",
                                      positive_int)
    public_process: str = setting("QIFU_PUBLIC_PROCESS", "fenghua_one_place",
                                  "the process the public form starts")
    public_channel: str = setting("QIFU_PUBLIC_CHANNEL", "web_form", "the channel recorded for the public form")
    metrics_token: str | None = setting("QIFU_METRICS_TOKEN", "",
                                        "bearer token that lets Prometheus scrape `/metrics` from another machine "
                                        "or through the proxy; unset: only from this machine, not proxied")
    sender: str | None = setting("QIFU_SENDER", "",
                                 "`module:Class` that delivers the outbox (SMS, e-mail); unset: a logging sender",
                                 _sender)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Every setting from the environment; a wrong value is refused naming it (the app does not start)."""
        return read(cls, environ, **overrides)

    def flask_config(self) -> dict[str, Any]:
        """What the views read from ``app.config``."""
        return {
            "QIFU_BASE_URL": self.base_url, "QIFU_TRUSTED_PROXIES": self.trusted_proxies,
            "SESSION_COOKIE_SECURE": self.secure_cookies, "QIFU_SESSION_MAX_AGE": self.session_max_age,
            "QIFU_API_MAX_BYTES": self.api_max_bytes, "QIFU_API_RATE_LIMIT": self.api_rate_limit,
            "QIFU_API_RATE_WINDOW": self.api_rate_window, "QIFU_PUBLIC_RATE_LIMIT": self.public_rate_limit,
            "QIFU_PUBLIC_RATE_WINDOW": self.public_rate_window, "QIFU_PUBLIC_PROCESS": self.public_process,
            "QIFU_PUBLIC_CHANNEL": self.public_channel, "QIFU_VAR_DIR": self.var_dir,
            "QIFU_SENDER": self.sender, "QIFU_METRICS_TOKEN": self.metrics_token,
        }
