"""``qifu case …`` and ``qifu task …``: start cases and work tasks from the shell (scripts, operators)."""

from __future__ import annotations

import json

import click

from engine.clock import SHANGHAI
from engine.errors import QifuError

from . import main, pass_state, reports_errors


def _data(text: str | None) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise QifuError(f"--data 不是合法的 JSON: {exc}") from None
    if not isinstance(value, dict):
        raise QifuError("--data 必须是 JSON 对象")
    return value


@main.group()
def case() -> None:
    """Cases (process instances)."""


@case.command("start")
@click.argument("process_key")
@click.argument("business_key")
@click.option("--data", help="initial case data as a JSON object")
@click.option("--actor", default="cli")
@pass_state
@reports_errors
def case_start(state, process_key: str, business_key: str, data: str | None, actor: str) -> None:
    result = state.engine.runtime.start(process_key, business_key, _data(data), actor=actor)
    state.out(f"已立案 {result.business_key} (#{result.instance_id})，待办任务 {len(result.opened)} 个",
              result.__dict__)


@main.group()
def task() -> None:
    """Open user tasks."""


@task.command("list")
@click.option("--group", "groups", multiple=True)
@click.option("--user")
@pass_state
@reports_errors
def task_list(state, groups: tuple[str, ...], user: str | None) -> None:
    from engine.tasks import TaskQuery

    query = TaskQuery(groups=tuple(groups) if groups else None if user is None else (), assignee=user)
    rows = state.engine.tasks.query(query, page_size=1000).rows
    data = [{"task": r.task_guid, "instance": r.instance_id, "element": r.spec_id, "name": r.name,
             "groups": ",".join(r.candidate_groups), "assignee": r.assignee, "due_at": r.due_at} for r in rows]
    if state.json:
        state.out("", data)
        return
    for d in data:  # people read Beijing time; --json keeps the stored UTC instant
        due = f"期限 {d['due_at'].astimezone(SHANGHAI):%Y-%m-%d %H:%M} (北京时间)" if d["due_at"] else "无期限"
        click.echo(f"{d['task']}  #{d['instance']}  {d['name'] or d['element']}  [{d['groups']}]  "
                   f"{d['assignee'] or '-'}  {due}")


@task.command("complete")
@click.argument("task_guid")
@click.option("--data", help="form data as a JSON object")
@click.option("--actor", default="cli")
@pass_state
@reports_errors
def task_complete(state, task_guid: str, data: str | None, actor: str) -> None:
    result = state.engine.runtime.complete_task(task_guid, _data(data), actor=actor)
    state.out(f"已办理；案件状态 {result.status}，新待办 {len(result.opened)} 个", result.__dict__)
