"""The overview page (what is deployed, how many cases are running, the next timer) and a health check."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import login_required
from sqlalchemy import func, select

from engine import jobs
from engine.models import Deployment, Instance

from .common import engine

bp = Blueprint("status", __name__)


@bp.get("/status")
@login_required
def index() -> str:
    with engine().session() as session:
        deployments = session.execute(
            select(Deployment.process_key, Deployment.name, func.max(Deployment.version))
            .group_by(Deployment.process_key, Deployment.name).order_by(Deployment.process_key)).all()
        running = session.scalar(select(func.count(Instance.id)).where(Instance.status == "running"))
        next_due = jobs.next_due(session)
    return render_template("index.html", deployments=deployments, running=running, next_due=next_due)


@bp.get("/healthz")
def healthz() -> dict:
    with engine().session() as session:
        session.execute(select(1))
    return {"status": "ok"}
