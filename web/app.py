"""The Flask app factory: configuration, security defaults, and one blueprint per area.

Security defaults live here so no view can forget them: CSRF protection on every form of the whole app
(Flask-WTF ``CSRFProtect``), session cookies HttpOnly and SameSite=Lax, a Content-Security-Policy that
allows no inline script (JSON for scripts travels in ``<script type="application/json">`` via ``|tojson``),
and a secret key from ``QIFU_SECRET_KEY`` or a generated ``var/secret_key`` file (never committed).

Blueprints are listed by module name in :data:`BLUEPRINTS`; an area adds its module name there.
"""

from __future__ import annotations

import importlib
import os
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Flask, render_template
from flask_wtf.csrf import CSRFError, CSRFProtect

from engine.clock import SHANGHAI
from engine.process_engine import ProcessEngine

# web/views/<name>.py, each with a Blueprint ``bp``. Order matters only for URL conflicts.
BLUEPRINTS: list[str] = ["auth", "inbox", "tasks", "cases", "status", "intake", "public", "api"]
BLUEPRINTS.append("supervision")  # 督办台账 / 跟踪督办 / 月度简报

MIB = 1024 * 1024
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "font-src 'self' data:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


def secret_key(var_dir: Path) -> str:
    """``QIFU_SECRET_KEY``, else the key in ``var/secret_key`` (created once, readable by the owner only)."""
    env = os.environ.get("QIFU_SECRET_KEY")
    if env:
        return env
    path = var_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def create_app(engine: ProcessEngine | None = None, config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    config = dict(config or {})
    # Resolved once, here: send_file resolves a relative path under the package, not the working directory.
    var_dir = Path(config.get("QIFU_VAR_DIR") or os.environ.get("QIFU_VAR_DIR") or "var").resolve()
    app.config.update(
        QIFU_VAR_DIR=str(var_dir),
        ATTACHMENT_DIR=str(var_dir / "attachments"),
        ATTACHMENT_MAX_BYTES=10 * MIB,
        MAX_CONTENT_LENGTH=12 * MIB,  # the attachment limit plus the form around it; more is refused (413)
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=os.environ.get("QIFU_SECURE_COOKIES", "") == "1",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=8 * 3600,  # a clerk's working day on one form
        INBOX_PAGE_SIZE=20,
    )
    app.config.update(config)
    app.config["ATTACHMENT_DIR"] = str(Path(app.config["ATTACHMENT_DIR"]).resolve())
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = secret_key(var_dir)
    if engine is None:
        import handlers  # noqa: F401 - registers service-task handlers

        engine = ProcessEngine(app.config.get("DATABASE_URL"))
    app.extensions["qifu_engine"] = engine

    CSRFProtect(app)  # app.extensions["csrf"]: an API blueprint may csrf.exempt() itself
    from .auth import init_login

    init_login(app)
    _register_template_helpers(app)
    _register_error_pages(app)

    @app.after_request
    def _security_headers(response):  # noqa: ANN001, ANN202
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


def _register_error_pages(app: Flask) -> None:
    def page(status: int, title: str, message: str):  # noqa: ANN202
        return render_template("error.html", status=status, title=title, message=message), status

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError):  # noqa: ANN202
        return page(400, "请求无效", "表单已过期或缺少安全令牌（CSRF），请返回刷新页面后重新提交。")

    @app.errorhandler(400)
    def _bad(exc):  # noqa: ANN001, ANN202
        return page(400, "请求无效", "提交的数据无效。")

    @app.errorhandler(403)
    def _forbidden(exc):  # noqa: ANN001, ANN202
        return page(403, "无权访问", "您无权查看此任务或案件。")

    @app.errorhandler(404)
    def _missing(exc):  # noqa: ANN001, ANN202
        return page(404, "未找到", "页面、任务或案件不存在（任务可能已办结）。")

    @app.errorhandler(413)
    def _too_large(exc):  # noqa: ANN001, ANN202
        return page(413, "文件过大", f"上传内容超过 {app.config['MAX_CONTENT_LENGTH'] // MIB} MiB 上限。")
