"""修改密码 for every logged-in user, and the rule that a temporary password is replaced before anything else.

An administrator's password reset (:func:`web.admin.reset_password`) gives the user a temporary password and
sets ``must_change_password``; until the user has chosen a new one, every page except this one and logout
redirects here. Changing the password ends every session of the user, this one included: they log in again
with the new password (the administrator who saw the temporary one holds nothing that still works).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField
from wtforms.validators import InputRequired, Length

from engine.errors import QifuError

from .. import admin
from ..sessions import rotate
from .common import engine

bp = Blueprint("account", __name__, url_prefix="/account")

# what a user who must change a temporary password may still open (besides this blueprint)
_ALWAYS_OPEN = frozenset({"auth.logout", "auth.login", "static"})
_OPEN_PREFIXES = ("account.", "health.", "public.", "api.")


class PasswordForm(FlaskForm):
    current = PasswordField("当前密码（或管理员给的临时密码）", validators=[InputRequired("请输入当前密码"),
                                                                 Length(max=200, message="密码最长 200 个字符")])
    new = PasswordField("新密码（至少 8 个字符）", validators=[InputRequired("请输入新密码"),
                                                     Length(max=200, message="密码最长 200 个字符")])
    confirm = PasswordField("再次输入新密码", validators=[InputRequired("请再次输入新密码"),
                                                   Length(max=200, message="密码最长 200 个字符")])


@bp.before_app_request
def _temporary_password_first() -> Any:
    """A user with a temporary password sees only the page that replaces it."""
    endpoint = request.endpoint or ""
    if endpoint in _ALWAYS_OPEN or endpoint.startswith(_OPEN_PREFIXES):
        return None
    if current_user.is_authenticated and getattr(current_user, "must_change_password", False):
        return redirect(url_for("account.password"))
    return None


@bp.route("/password", methods=["GET", "POST"])
@login_required
def password() -> Any:
    form = PasswordForm()
    error, status = None, 200
    if form.validate_on_submit():
        try:
            admin.change_own_password(engine(), current_user.user_id, form.current.data or "", form.new.data or "",
                                      form.confirm.data or "")
        except QifuError as exc:
            error, status = exc.message, 400
        else:
            session.clear()
            logout_user()
            rotate()
            flash("密码已修改，请用新密码登录")
            return redirect(url_for("auth.login"))
    elif form.is_submitted():
        status = 400
    return render_template("account/password.html", form=form, error=error,
                           forced=bool(getattr(current_user, "must_change_password", False))), status
