"""The Flask app factory: configuration, security defaults, and one blueprint per area.

Security defaults live here so no view can forget them: CSRF protection on every form of the whole app
(Flask-WTF ``CSRFProtect``), session cookies HttpOnly and SameSite=Lax, a Content-Security-Policy that
allows no inline script (JSON for scripts travels in ``<script type="application/json">`` via ``|tojson``),
and a secret key from ``QIFU_SECRET_KEY`` or a generated ``var/secret_key`` file (never committed).

Sessions are server-side (:mod:`web.sessions`, installed by :func:`web.auth.init_login`): the cookie holds a
random id only, logout and password changes end sessions on the server. Idle timeout
``PERMANENT_SESSION_LIFETIME`` (8 hours), absolute ``QIFU_SESSION_MAX_AGE`` (24 hours, in seconds).

Absolute links come from ``QIFU_BASE_URL`` (:mod:`web.links`), never from the Host header. Behind a
reverse proxy, ``QIFU_TRUSTED_PROXIES=N`` applies werkzeug's ``ProxyFix`` for N hops (``X-Forwarded-For``,
``X-Forwarded-Proto``); the default 0 trusts no proxy header, so a client cannot pick its own address for
the rate limits and the login throttle.

Errors: HTML pages get a Chinese error page; everything under ``/api/`` gets JSON
``{"error": {"code", "message"}}`` — also 404/405 on unknown paths, 413 and 500 (never a traceback).

Blueprints are listed by module name in :data:`BLUEPRINTS`; an area adds its module name there.
"""

from __future__ import annotations

import importlib
import os
import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask, Response, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from engine.clock import SHANGHAI
from engine.process_engine import ProcessEngine
from engine.settings import SettingsError, positive_int

from .engine import build_engine
from .links import normalize_base_url
from .observability import init_app as init_observability
from .outage import Outage, outage_of, wants_json
from .settings import Settings

# web/views/<name>.py, each with a Blueprint ``bp``. Order matters only for URL conflicts.
BLUEPRINTS: list[str] = ["auth", "inbox", "tasks", "cases", "status", "intake", "public", "api"]
BLUEPRINTS.append("supervision")  # 督办台账 / 跟踪督办 / 月度简报
BLUEPRINTS.append("search")  # 案件查询 / 我的已办
BLUEPRINTS.append("health")  # /healthz, /readyz, /metrics
BLUEPRINTS.append("incidents")  # 异常事件: timers and jobs that failed their retries (administrators)
BLUEPRINTS.append("processes")  # 流程设计: versions, upload with changes and confirmation, modeler, migration
BLUEPRINTS.append("audit")  # 审计: replay, chain verification, event-log export, the unmask log
BLUEPRINTS.append("admin")  # 系统管理: users, units and liaisons, API clients, calendar, admin log
BLUEPRINTS.append("account")  # 修改密码; a temporary password from a reset is replaced first

MIB = 1024 * 1024
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "font-src 'self' data:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


def secret_key(configured: str | None, var_dir: Path) -> str:
    """``QIFU_SECRET_KEY``, else the key in ``var/secret_key`` (created once, readable by the owner only)."""
    if configured:
        return configured
    path = var_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def create_app(engine: ProcessEngine | None = None, config: dict[str, Any] | None = None, *,
               settings: Settings | None = None) -> Flask:
    """The app over ``engine`` (default: built from ``settings`` by :func:`web.engine.build_engine`).

    ``settings`` defaults to the environment (:meth:`Settings.from_env`); ``config`` overrides single Flask
    config keys afterwards (tests).
    """
    app = Flask(__name__)
    settings = settings or Settings.from_env()
    config = dict(config or {})
    app.config.update(
        ATTACHMENT_MAX_BYTES=10 * MIB,
        MAX_CONTENT_LENGTH=12 * MIB,  # the attachment limit plus the form around it; more is refused (413)
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=8 * 3600,  # a clerk's working day on one form
        PERMANENT_SESSION_LIFETIME=timedelta(hours=8),  # idle timeout of a server-side session
        INBOX_PAGE_SIZE=50,
        QIFU_SETTINGS=settings,
        **settings.flask_config(),
    )
    app.config.update(config)
    app.config["QIFU_BASE_URL"] = normalize_base_url(app.config["QIFU_BASE_URL"])
    # Resolved once, here: send_file resolves a relative path under the package, not the working directory.
    var_dir = Path(app.config["QIFU_VAR_DIR"]).resolve()
    app.config["QIFU_VAR_DIR"] = str(var_dir)
    app.config["ATTACHMENT_DIR"] = str(Path(app.config.get("ATTACHMENT_DIR") or var_dir / "attachments").resolve())
    try:
        hops = app.config["QIFU_TRUSTED_PROXIES"] = positive_int(str(app.config["QIFU_TRUSTED_PROXIES"]))
    except ValueError:
        raise SettingsError(f"QIFU_TRUSTED_PROXIES 应为 0 或正整数（反向代理的层数）: "
                            f"{app.config['QIFU_TRUSTED_PROXIES']!r}") from None
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=0, x_port=0, x_prefix=0)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = secret_key(settings.secret_key, var_dir)
    app.extensions["qifu_engine"] = engine or build_engine(settings)
    init_observability(app, app.extensions["qifu_engine"])  # request ids, JSON request log, metrics

    CSRFProtect(app)  # app.extensions["csrf"]: an API blueprint may csrf.exempt() itself
    from .auth import init_login

    init_login(app)
    _register_template_helpers(app)
    _register_error_pages(app)

    @app.after_request
    def _security_headers(response):
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    for name in BLUEPRINTS:
        module = importlib.import_module(f"web.views.{name}")
        app.register_blueprint(module.bp)
    return app


def _register_template_helpers(app: Flask) -> None:
    from . import labels

    @app.template_filter("local")
    def local_time(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        """An instant in Asia/Shanghai wall time, the way clerks read deadlines."""
        if value is None:
            return ""
        return value.astimezone(SHANGHAI).strftime(fmt)

    app.jinja_env.globals.update(labels=labels)


# Chinese error pages for people; JSON codes and messages for API clients (everything under /api/).
HTML_ERRORS: dict[int, tuple[str, str]] = {
    400: ("请求无效", "提交的数据无效。"),
    403: ("无权访问", "您无权查看此任务或案件。"),
    404: ("未找到", "页面、任务或案件不存在（任务可能已办结）。"),
    405: ("请求方式不支持", "该页面不支持这种请求方式，请从页面上的链接或按钮进入。"),
    500: ("系统错误", "服务器内部错误，请稍后再试；问题持续时请联系管理员。"),
}
API_ERRORS: dict[int, tuple[str, str]] = {
    400: ("bad_request", "请求无效"),
    401: ("unauthorized", "缺少或无效的访问令牌"),
    403: ("forbidden", "无权访问"),
    404: ("not_found", "接口不存在（接口说明见 /api/openapi.json）"),
    405: ("method_not_allowed", "该接口不支持此请求方法"),
    415: ("unsupported_media_type", "不支持的请求体类型，请使用 application/json"),
    429: ("rate_limited", "请求过于频繁，请稍后再试"),
    500: ("internal_error", "服务器内部错误，请稍后重试；问题持续时请联系管理员"),
}


def is_api_request() -> bool:
    """Whether the current request is for the JSON API (its errors are JSON, not pages)."""
    return request.path == "/api" or request.path.startswith("/api/")


def _size(limit: int | None) -> str:
    if not limit:
        return "上限"
    return f"{limit // MIB} MiB 上限" if limit % MIB == 0 else f"{limit // 1024} KiB 上限"


def _register_error_pages(app: Flask) -> None:
    def page(status: int, title: str, message: str) -> tuple[Any, int]:
        try:
            return render_template("error.html", status=status, title=title, message=message), status
        except Exception:  # the page itself failed (e.g. the database is down): plain text
            app.logger.exception("error page %s could not be rendered", status)
            return f"{title}（{status}）：{message}", status

    def api_error(exc: HTTPException) -> Response:
        from .views.api import error

        status = exc.code or 500
        code, message = API_ERRORS.get(status, ("http_" + str(status), f"请求无法处理（HTTP {status}）"))
        if status == 413:
            code, message = "payload_too_large", f"请求体超过 {_size(request.max_content_length)}"
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}  # Allow, Retry-After…
        return error(status, code, message, headers=headers)

    def unavailable(outage: Outage) -> Any:
        """503 with Retry-After: JSON for the API and for clients asking for JSON, else a page that needs no
        database (web/templates/errors/503.html)."""
        app.logger.warning("database %s on %s %s: %s", outage.reason, request.method, request.path, outage.detail)
        headers = {"Retry-After": str(outage.retry_after)}
        if is_api_request() or wants_json():
            from .views.api import error

            return error(503, outage.code, outage.message, headers=headers)
        try:
            html = render_template("errors/503.html", title=outage.title, message=outage.message,
                                   retry_after=outage.retry_after)
        except Exception:  # never let the error page fail on top of the outage
            app.logger.exception("the 503 page could not be rendered")
            html = f"{outage.title}（503）：{outage.message}"
        return html, 503, headers

    @app.errorhandler(DBAPIError)
    @app.errorhandler(SQLAlchemyTimeoutError)
    def _database(exc: Exception):
        """A view met the database down, full, read-only or busy; other database errors stay 500s."""
        outage = outage_of(exc)
        if outage is None:
            raise exc
        return unavailable(outage)

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError):
        if is_api_request():
            return api_error(exc)
        return page(400, "请求无效", "表单已过期或缺少安全令牌（CSRF），请返回刷新页面后重新提交。")

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        """Every HTTP error, and (as 500) every unhandled exception once Flask has logged it."""
        outage = outage_of(getattr(exc, "original_exception", None)) if exc.code == 500 else None
        if outage is not None:  # raised outside a view: opening or saving the session, before_request
            return unavailable(outage)
        if is_api_request():
            return api_error(exc)
        if exc.code == 413:
            return page(413, "文件过大", f"上传内容超过 {_size(request.max_content_length)}。")
        if exc.code in HTML_ERRORS:
            return page(exc.code, *HTML_ERRORS[exc.code])
        return exc
