"""Login and logout. Throttled per user name and address in the database (web.auth.locked_until).

Both give the session a new id (:func:`web.sessions.rotate`): at login, so an id planted before the login
(session fixation) never becomes a logged-in one; at logout, so the old cookie names nothing any more — the
row is deleted on the server, a copy of the cookie replayed later gets the login page.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from ..auth import LoginRefused, check_login
from ..forms import ActionForm, LoginForm
from ..sessions import rotate
from .common import client_ip, engine, safe_next

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(safe_next(request.args.get("next"), url_for("inbox.index")))
    form = LoginForm()
    error = None
    status = 200
    if form.validate_on_submit():
        try:
            user = check_login(engine(), form.username.data, form.password.data, client_ip())
        except LoginRefused as exc:
            error, status = exc.message, 401
        else:
            rotate()
            login_user(user)
            return redirect(safe_next(request.args.get("next"), url_for("inbox.index")))
    elif form.errors:
        status = 400
    return render_template("login.html", form=form, error=error), status


@bp.post("/logout")
@login_required
def logout():
    if ActionForm().validate_on_submit():
        session.clear()  # the CSRF token and anything else of the logged-in session go with it
        logout_user()
        rotate()
        flash("已退出登录")
    return redirect(url_for("auth.login"))
