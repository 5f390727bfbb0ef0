"""``qifu user add / list / passwd / disable / enable``: accounts for clerks. A user belongs to one unit and
holds roles (candidate groups of the diagrams, docs/domain.md). The password is read from stdin so it never
appears in the shell history or the process list. ``passwd`` and ``disable`` end every open session of the
user at once (the sessions live on the server, :mod:`web.sessions`)."""

from __future__ import annotations

import sys

import click

from engine.errors import QifuError

from . import main, pass_state, reports_errors


@main.group()
def user() -> None:
    """用户管理：新建、列出、改密码、停用、启用."""


@user.command("add")
@click.argument("name")
@click.option("--unit", required=True, help="unit code (org_unit.code), e.g. PA01, FH-CENTRE")
@click.option("--role", "roles", required=True, multiple=True, help="a role (candidate group); repeat for more")
@click.option("--display-name", default=None, help="name shown in the UI")
@click.option("--password-stdin", is_flag=True, required=True, help="read the password from standard input")
@pass_state
@reports_errors
def add(state, name: str, unit: str, roles: tuple[str, ...], display_name: str | None,
        password_stdin: bool) -> None:
    """Create user NAME in --unit with --role… (password from stdin)."""
    from web.auth import add_user

    password = _password_from_stdin()
    with state.engine.session() as session:
        row = add_user(session, name, password, unit=unit, roles=list(roles), display_name=display_name,
                       now=state.engine.clock.now())
        info = {"username": row.username, "unit": row.unit_code, "roles": row.role_names}
    state.out(f"已创建用户 {info['username']}（单位 {info['unit']}，角色 {'、'.join(info['roles'])}）", info)


def _password_from_stdin() -> str:
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise QifuError("标准输入中没有密码")
    return password


@user.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, required=True, help="read the new password from standard input")
@pass_state
@reports_errors
def passwd(state, name: str, password_stdin: bool) -> None:
    """Set a new password for NAME (from stdin); the user's open sessions end."""
    from web.auth import normalize, set_password

    password = _password_from_stdin()
    with state.engine.session() as session:
        ended = set_password(session, name, password)
    info = {"username": normalize(name), "sessions_ended": ended}
    state.out(f"已修改用户 {info['username']} 的密码，结束其 {ended} 个登录会话", info)


@user.command("disable")
@click.argument("name")
@pass_state
@reports_errors
def disable(state, name: str) -> None:
    """Disable NAME: no more logins, open sessions end at once."""
    from web.auth import normalize, set_active

    with state.engine.session() as session:
        ended = set_active(session, name, False)
    info = {"username": normalize(name), "active": False, "sessions_ended": ended}
    state.out(f"已停用用户 {info['username']}，结束其 {ended} 个登录会话", info)


@user.command("enable")
@click.argument("name")
@pass_state
@reports_errors
def enable(state, name: str) -> None:
    """Enable NAME again (the user logs in anew)."""
    from web.auth import normalize, set_active

    with state.engine.session() as session:
        set_active(session, name, True)
    info = {"username": normalize(name), "active": True}
    state.out(f"已启用用户 {info['username']}", info)


@user.command("list")
@pass_state
@reports_errors
def list_users(state) -> None:
    """List users with their unit and roles."""
    from sqlalchemy import select

    from web.models import User

    with state.engine.session() as session:
        rows = [{"username": u.username, "display_name": u.display_name, "unit": u.unit_code,
                 "roles": u.role_names, "active": u.active}
                for u in session.scalars(select(User).order_by(User.unit_code, User.username))]
    if state.json:
        state.out("", rows)
        return
    for r in rows:
        click.echo(f"{r['username']:<16} {r['unit']:<12} {'、'.join(r['roles'])}{'' if r['active'] else '（停用）'}")
