"""``qifu user add / list / set / passwd / reset / disable / enable``: accounts for clerks. A user belongs to one
unit and holds roles (candidate groups of the diagrams, docs/domain.md). The password is read from stdin so it
never appears in the shell history or the process list. ``passwd``, ``reset`` and ``disable`` end every open
session of the user at once (the sessions live on the server, :mod:`web.sessions`).

The admin pages make the same changes through the same functions (:mod:`web.admin`); each is recorded in the
admin log with the operating-system account that ran the command (``cli:NAME``)."""

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
    from web import admin

    password = _password_from_stdin()
    row, _ = admin.create_user(state.engine, username=name, unit=unit, roles=roles, display_name=display_name,
                               password=password, actor=admin.cli_actor())
    info = {"username": row.username, "unit": row.unit, "roles": row.roles}
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
    from web import admin
    from web.auth import normalize

    password = _password_from_stdin()
    ended = admin.set_password(state.engine, name, password, actor=admin.cli_actor())
    info = {"username": normalize(name), "sessions_ended": ended}
    state.out(f"已修改用户 {info['username']} 的密码，结束其 {ended} 个登录会话", info)


@user.command("disable")
@click.argument("name")
@pass_state
@reports_errors
def disable(state, name: str) -> None:
    """Disable NAME: no more logins, open sessions end at once."""
    from web import admin
    from web.auth import normalize

    ended = admin.set_active(state.engine, name, False, actor=admin.cli_actor()) or 0
    info = {"username": normalize(name), "active": False, "sessions_ended": ended}
    state.out(f"已停用用户 {info['username']}，结束其 {ended} 个登录会话", info)


@user.command("enable")
@click.argument("name")
@pass_state
@reports_errors
def enable(state, name: str) -> None:
    """Enable NAME again (the user logs in anew)."""
    from web import admin
    from web.auth import normalize

    admin.set_active(state.engine, name, True, actor=admin.cli_actor())
    info = {"username": normalize(name), "active": True}
    state.out(f"已启用用户 {info['username']}", info)


@user.command("reset")
@click.argument("name")
@pass_state
@reports_errors
def reset(state, name: str) -> None:
    """Give NAME a temporary password (printed once) to be replaced at the next login; sessions end."""
    from web import admin
    from web.auth import normalize

    temporary, ended = admin.reset_password(state.engine, name, actor=admin.cli_actor())
    info = {"username": normalize(name), "temporary_password": temporary, "sessions_ended": ended}
    state.out(f"已重置用户 {info['username']} 的密码，结束其 {ended} 个登录会话。\n"
              f"临时密码（只显示这一次，用户下次登录时须修改）：\n{temporary}", info)


@user.command("set")
@click.argument("name")
@click.option("--unit", default=None, help="new unit code")
@click.option("--role", "roles", multiple=True, help="the user's roles from now on (repeat; replaces all)")
@click.option("--display-name", default=None, help="name shown in the UI")
@pass_state
@reports_errors
def set_(state, name: str, unit: str | None, roles: tuple[str, ...], display_name: str | None) -> None:
    """Change NAME's unit, roles or display name (effective at the user's next request)."""
    from web import admin
    from web.auth import normalize

    if unit is None and not roles and display_name is None:
        raise QifuError("请至少指定 --unit、--role 或 --display-name 之一")
    changed = admin.update_user(state.engine, name, unit=unit, roles=roles or None, display_name=display_name,
                                actor=admin.cli_actor())
    info = {"username": normalize(name), "changed": changed}
    state.out(f"已修改用户 {info['username']}：{', '.join(changed) or '无变化'}", info)


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
