"""案件查询 (``/cases``) and 我的已办 (``/cases/done``): for every logged-in role, within what it may see.

The cases come from :mod:`web.read.search` only, always limited by :func:`web.scope.visible_cases` — a
station's clerk finds the station's cases, a region's supervisor or auditor the region, nobody another
region. A search whose text is exactly a visible case number goes straight to that case; a number the user
may not see is "not found", like one that does not exist. Bad input (a malformed date, a page that is not a
number) is answered with the form, a Chinese message and status 400, never a 500.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from engine.errors import QifuError

from ..read.inbox import filter_choices
from ..read.search import SearchFilters, completed_tasks, search_cases, visible_key
from ..scope import is_read_only
from .common import engine, now

bp = Blueprint("search", __name__)

_PAGE = re.compile(r"[1-9]\d{0,5}")


def may_work_tasks(user: Any) -> bool:
    """Whether ``user`` completes tasks (and so has a 我的已办): logged in and not read-only (审计)."""
    return bool(getattr(user, "is_authenticated", False)) and not is_read_only(user)


@bp.app_context_processor
def _nav() -> dict[str, Any]:
    """Lets the base template show 我的已办 only to those who work tasks."""
    return {"may_work_tasks": lambda: may_work_tasks(current_user)}


def requested_page() -> int:
    """``?page=N`` (1 when absent); anything but a positive whole number is a :class:`QifuError`."""
    value = request.args.get("page", "").strip()
    if not value:
        return 1
    if not _PAGE.fullmatch(value):
        raise QifuError(f"页码应为 1 到 999999 之间的整数：“{value[:20]}”")
    return int(value)


@bp.get("/cases")
@login_required
def cases() -> Any:
    """Search the cases the user may see; a visible case number alone goes straight to its page."""
    filters = SearchFilters.from_args(request.args)
    qifu = engine()
    with qifu.read() as session:
        choices = filter_choices(qifu, session, current_user)
        context = {"filters": filters, "args": filters.args(), "choices": choices}
        try:
            page_no = requested_page()
            if filters.only_text() and page_no == 1:
                key = visible_key(session, current_user, filters.q)
                if key is not None:
                    return redirect(url_for("cases.show", business_key=key))
            page = search_cases(qifu, session, current_user, filters, now=now(), page=page_no)
        except QifuError as exc:
            return render_template("search/cases.html", page=None, error=exc.message, **context), 400
    return render_template("search/cases.html", page=page, error=None, **context)


@bp.get("/cases/done")
@login_required
def done() -> Any:
    """我的已办: the tasks the user completed, newest first, on cases the user may still see."""
    qifu = engine()
    try:
        page_no = requested_page()
    except QifuError as exc:
        return render_template("search/done.html", page=None, error=exc.message), 400
    with qifu.read() as session:
        page = completed_tasks(qifu, session, current_user, page=page_no)
    return render_template("search/done.html", page=page, error=None)
