"""``qifu api-client …``: the systems of the online channels that may call the intake API (FH-2).

``add NAME --channel C [--channel C2]`` prints the bearer token once; only its SHA-256 is stored, so a lost
token is replaced (``revoke`` then ``add``), never recovered. The admin pages create and revoke clients through
the same functions (:mod:`web.admin`); both are recorded in the admin log.
"""

from __future__ import annotations

import click
from sqlalchemy import select

from . import main, pass_state, reports_errors


@main.group("api-client")
def api_client() -> None:
    """Clients of the intake API (online channels)."""


@api_client.command("add")
@click.argument("name")
@click.option("--channel", "channels", multiple=True, required=True, help="channel code it may submit on")
@click.option("--process", "process_key", default="fenghua_one_place", show_default=True,
              help="process its cases start")
@pass_state
@reports_errors
def add(state, name: str, channels: tuple[str, ...], process_key: str) -> None:
    """Create a client and print its token (shown only this once)."""
    from web import admin

    client, token = admin.create_api_client(state.engine, name, channels, process_key=process_key,
                                            actor=admin.cli_actor())
    data = {"name": client.name, "channels": client.channels, "process": client.process, "token": token}
    state.out(f"已创建接口客户端 {data['name']}（渠道 {', '.join(data['channels'])}）\n"
              f"访问令牌（只显示这一次，请妥善保存）：\n{token}", data)


@api_client.command("list")
@pass_state
@reports_errors
def list_(state) -> None:
    """List clients (never their tokens)."""
    from web.intake_models import ApiClient

    with state.engine.session() as session:
        rows = [{"name": c.name, "channels": c.channel_list, "process": c.process_key, "active": c.active,
                 "created_at": c.created_at} for c in session.scalars(select(ApiClient).order_by(ApiClient.name))]
    if state.json:
        state.out("", rows)
        return
    for r in rows:
        click.echo(f"{r['name']}  [{', '.join(r['channels'])}]  {r['process']}  {'启用' if r['active'] else '已停用'}")


@api_client.command("revoke")
@click.argument("name")
@pass_state
@reports_errors
def revoke(state, name: str) -> None:
    """Disable a client: its token stops working at once."""
    from web import admin

    admin.revoke_api_client(state.engine, name=name, actor=admin.cli_actor())
    state.out(f"已停用接口客户端 {name}")
