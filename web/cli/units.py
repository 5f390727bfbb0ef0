"""``qifu unit …``: list the units of the reference data and edit a unit's liaison (联络员, FH-9) or kind.

Liaisons are administrative data that the seed documents leave open; an administrator types them in here
(or on the admin pages, through the same :func:`web.admin.edit_unit`, recorded in the admin log), and
``qifu init`` reloading the reference data keeps them.
"""

from __future__ import annotations

import click

from . import main, pass_state, reports_errors


@main.group()
def unit() -> None:
    """Units: stations, windows, centre, 1+X member units, leading group."""


@unit.command("list")
@click.option("--region", type=click.Choice(["pan_an", "fenghua"]))
@click.option("--kind", "kinds", multiple=True, help="station, window, county_window, centre, special_team, …")
@pass_state
@reports_errors
def unit_list(state, region: str | None, kinds: tuple[str, ...]) -> None:
    from handlers import reference

    with state.engine.session() as session:
        rows = [{"code": u.code, "name": u.name, "kind": u.kind, "region": u.region, "resident": u.resident,
                 "address": u.address, "phone": u.phone, "liaison_name": u.liaison_name,
                 "liaison_phone": u.liaison_phone}
                for u in reference.units(session, region, tuple(kinds) or None)]
    if state.json:
        state.out("", rows)
        return
    for r in rows:
        liaison = f"  联络员 {r['liaison_name'] or '-'} {r['liaison_phone'] or ''}".rstrip()
        click.echo(f"{r['code']:<10} {r['kind']:<13} {r['name']}  {r['phone'] or ''}{liaison}")


@unit.command("set")
@click.argument("code")
@click.option("--name", help="单位名称")
@click.option("--liaison", help="联络员 (a role title such as 办公室联络员, or a name; empty text clears it)")
@click.option("--phone", help="联络员电话 (empty text clears it)")
@click.option("--kind", help="单位类型, e.g. station / window")
@click.option("--unit-phone", help="单位电话")
@click.option("--address", help="单位地址")
@pass_state
@reports_errors
def unit_set(state, code: str, name: str | None, liaison: str | None, phone: str | None, kind: str | None,
             unit_phone: str | None, address: str | None) -> None:
    """Edit one unit; reference reloads keep what is set here."""
    from sqlalchemy import select

    from handlers.models import OrgUnit
    from web import admin

    admin.edit_unit(state.engine, code, actor=admin.cli_actor(), name=name, liaison_name=liaison,
                    liaison_phone=phone, kind=kind, phone=unit_phone, address=address)
    with state.engine.read() as session:
        row = session.scalar(select(OrgUnit).where(OrgUnit.code == code))
        data = {"code": row.code, "name": row.name, "kind": row.kind, "liaison_name": row.liaison_name,
                "liaison_phone": row.liaison_phone, "phone": row.phone, "address": row.address}
    state.out(f"已更新 {data['code']} {data['name']}：联络员 {data['liaison_name'] or '-'} "
              f"{data['liaison_phone'] or ''}".rstrip(), data)
