"""The inbox: my tasks and my groups' tasks (supervisors: every task they may see), filtered and paged."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request
from flask_login import current_user, login_required

from ..forms import ActionForm
from ..read.inbox import InboxFilters, filter_choices, inbox
from .common import engine, now, page_number

bp = Blueprint("inbox", __name__)


@bp.get("/")
@bp.get("/tasks")
@login_required
def index() -> str:
    filters = InboxFilters.from_args(request.args)
    qifu = engine()
    calendar = qifu.calendar.snapshot()
    with qifu.read() as session:
        page = inbox(qifu, session, current_user, filters, calendar, now(), page_number(),
                     current_app.config["INBOX_PAGE_SIZE"])
        choices = filter_choices(qifu, session, current_user)
    args = {k: v for k, v in vars(filters).items() if v and not (k == "scope" and v == "mine")}
    return render_template("inbox.html", page=page, filters=filters, choices=choices, args=args,
                           action_form=ActionForm())
