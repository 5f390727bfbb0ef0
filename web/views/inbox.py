"""The inbox: my tasks and my groups' tasks (supervisors: every task they may see), filtered and paged."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request
from flask_login import current_user, login_required

from engine.calendar import load_calendar

from .. import queries
from ..forms import ActionForm
from .common import engine, now

bp = Blueprint("inbox", __name__)


@bp.get("/")
@bp.get("/tasks")
@login_required
def index() -> str:
    filters = queries.InboxFilters.from_args(request.args)
    page_no = request.args.get("page", "1")
    page_no = int(page_no) if page_no.isdigit() else 1
    with engine().session() as session:
        page = queries.inbox(session, current_user, filters, load_calendar(session), now(), page_no,
                             current_app.config["INBOX_PAGE_SIZE"])
        choices = queries.filter_choices(session, current_user)
    args = {k: v for k, v in vars(filters).items() if v and not (k == "scope" and v == "mine")}
    return render_template("inbox.html", page=page, filters=filters, choices=choices, args=args,
                           action_form=ActionForm())
