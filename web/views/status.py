"""The overview page: what is deployed, how many cases are running, the next timer (health checks: web/views/health.py)."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import login_required

from .common import engine

bp = Blueprint("status", __name__)


@bp.get("/status")
@login_required
def index() -> str:
    qifu = engine()
    deployments = [(p.process_key, p.name, p.version) for p in qifu.repository.processes()]
    return render_template("index.html", deployments=deployments, running=qifu.runtime.count(status="running"),
                           next_due=qifu.management.next_due())

