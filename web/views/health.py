"""``/healthz``, ``/readyz`` and ``/metrics``: for load balancers, orchestrators and Prometheus.

- ``/healthz``: the process answers (no database, so a database outage does not get workers restarted).
- ``/readyz``: the database answers and its schema is at Alembic's head; 503 JSON naming what is wrong
  otherwise, so a load balancer sends no traffic to a server over an un-migrated or unreachable database.
- ``/metrics``: Prometheus text (:mod:`web.observability`); from this machine without a proxy in between, or
  with ``Authorization: Bearer`` and the ``QIFU_METRICS_TOKEN`` setting.

None of them needs a login or touches the session.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from flask import Blueprint, current_app, jsonify

from web.observability import metrics_allowed, render_metrics

bp = Blueprint("health", __name__)


def _engine() -> Any:
    return current_app.extensions["qifu_engine"]


@lru_cache(maxsize=1)
def migration_heads() -> frozenset[str]:
    """The revisions a current database is at (read once per process from ``migrations/``)."""
    from alembic.script import ScriptDirectory

    from engine.migrate import alembic_config

    return frozenset(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def database_revisions(engine: Any) -> frozenset[str]:
    """The revisions recorded in the database (empty: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with engine.read() as session:
        return frozenset(MigrationContext.configure(session.connection()).get_current_heads())


@bp.get("/healthz")
def healthz() -> Any:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Any:
    try:
        current = database_revisions(_engine())
    except Exception as exc:  # unreachable, locked, wrong credentials…: not ready, say why
        current_app.logger.warning("readyz: database unreachable: %s", exc)
        return jsonify({"status": "unavailable", "database": "unreachable",
                        "message": f"数据库无法访问：{type(exc).__name__}"}), 503
    heads = migration_heads()
    if current != heads:
        return jsonify({"status": "unavailable", "database": "reachable", "migrations": "behind",
                        "current": sorted(current), "head": sorted(heads),
                        "message": "数据库结构不是最新版本，请运行 qifu init"}), 503
    return jsonify({"status": "ready", "database": "reachable", "migrations": "head", "head": sorted(heads)})


@bp.get("/metrics")
def metrics() -> Any:
    token = current_app.config.get("QIFU_METRICS_TOKEN")
    allowed, status = metrics_allowed(token)
    if not allowed:
        from .api import error

        if status == 401:
            return error(401, "unauthorized", "需要有效的监控令牌（Authorization: Bearer …）",
                         headers={"WWW-Authenticate": 'Bearer realm="qifu-metrics"'})
        return error(403, "forbidden", "监控指标只对本机开放；远程抓取请配置 QIFU_METRICS_TOKEN 并携带该令牌")
    return render_metrics(_engine())
