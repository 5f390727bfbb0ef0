"""The start page: what is deployed, how many cases and tasks are open, the next deadline."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template
from sqlalchemy import func, select

from engine import jobs
from engine.models import Deployment, HumanTask, Instance

bp = Blueprint("status", __name__)


@bp.get("/")
def index() -> str:
    engine = current_app.extensions["qifu_engine"]
    with engine.session() as session:
        deployments = session.execute(
            select(Deployment.process_key, Deployment.name, func.max(Deployment.version))
            .group_by(Deployment.process_key, Deployment.name).order_by(Deployment.process_key)).all()
        running = session.scalar(select(func.count(Instance.id)).where(Instance.status == "running"))
        open_tasks = list(session.scalars(select(HumanTask).order_by(HumanTask.due_at).limit(50)))
        next_due = jobs.next_due(session)
    return render_template("index.html", deployments=deployments, running=running, tasks=open_tasks,
                           next_due=next_due)


@bp.get("/healthz")
def healthz() -> dict:
    engine = current_app.extensions["qifu_engine"]
    with engine.session() as session:
        session.execute(select(1))
    return {"status": "ok"}
