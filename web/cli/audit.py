"""``qifu audit verify`` and ``qifu audit replay CASE --step K``."""

from __future__ import annotations

import json
import sys

import click

from . import main, pass_state, reports_errors


@main.group()
def audit() -> None:
    """Audit the history: verify the hash chains, replay a case."""


@audit.command()
@pass_state
@reports_errors
def verify(state) -> None:
    """Check every event row; exit 1 and name each bad row if anything was edited, inserted or deleted."""
    problems = state.engine.history.verify()
    count = state.engine.history.count_instances()
    if state.json:
        state.out("", {"ok": not problems, "problems": [p.__dict__ for p in problems]})
    elif problems:
        for p in problems:
            click.echo(f"篡改: {p}", err=True)
        click.echo(f"历史记录被篡改 (history tampered): {len(problems)} 处问题", err=True)
    else:
        click.echo(f"历史记录完整 (history intact; {count} case chains checked)")
    if problems:
        sys.exit(1)


@audit.command()
@click.argument("case")
@click.option("--step", type=int, default=None, help="event number K (default: the newest)")
@pass_state
@reports_errors
def replay(state, case: str, step: int | None) -> None:
    """Print the active and completed tasks and the case data as they were after event K."""
    history = state.engine.history
    st = history.replay(history.instance_id(case), step)
    if state.json:
        state.out("", {"instance": st.instance_id, "step": st.step, "at": st.at, "actor": st.actor,
                       "action": st.action, "active": st.active, "completed": st.completed, "data": st.data})
        return
    click.echo(f"案件 #{st.instance_id} 第 {st.step} 步  {st.at}  {st.actor or '-'}  {st.action}")
    click.echo("进行中:")
    for a in st.active:
        click.echo(f"  {a['element']}  {a.get('name') or ''}  ({a['state']})")
    click.echo("已完成:")
    for c in st.completed:
        click.echo(f"  [{c['seq']}] {c['element']}  {c.get('name') or ''}")
    click.echo("案件数据:")
    click.echo("  " + json.dumps(st.data, ensure_ascii=False, sort_keys=True, default=str))
