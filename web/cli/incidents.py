"""``qifu incident …``: timers and queued jobs that used up their retries (Camunda Cockpit's incidents).

- ``list [--status open|resolved|all] [--kind timer|job] [--case KEY] [--page N]``: newest first, 50 a page,
  with the counts by status (an open count above zero means a deadline or a message is stuck);
- ``retry ID``: a timer fires now through the normal step (the incident closes with it, or stays open with
  the new error: exit 2); a job (an outbox message) goes back into its queue;
- ``resolve ID --note TEXT``: close it by hand, saying how it was dealt with.
"""

from __future__ import annotations

from typing import Any

import click

from engine.clock import SHANGHAI
from engine.models import Incident

from . import main, pass_state, reports_errors

STATUS_LABELS = {"open": "未解决", "resolved": "已解决"}
RESOLUTION_LABELS = {"retried": "重试成功", "requeued": "已重新排队", "cancelled": "无需重试", "resolved": "人工处理"}


def incident_dict(row: Incident) -> dict[str, Any]:
    """An incident as ``--json`` prints it (instants in UTC, ISO 8601). The error text is ``failure``: a
    top-level ``error`` key is how every ``--json`` document says the command itself was refused."""
    return {"id": row.id, "kind": row.kind, "status": row.status, "business_key": row.business_key,
            "instance": row.instance_id, "element": row.element, "timer": row.timer_id, "job_type": row.job_type,
            "job": row.job_id, "failure": row.error, "retries": row.retries, "created_at": row.created_at,
            "updated_at": row.updated_at, "resolved_at": row.resolved_at, "resolved_by": row.resolved_by,
            "resolution": row.resolution, "note": row.note}


def _local(value: Any) -> str:
    return value.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


@main.group()
def incident() -> None:
    """Incidents: timers and jobs that failed their retries."""


@incident.command("list")
@click.option("--status", type=click.Choice(["open", "resolved", "all"]), default="open", show_default=True)
@click.option("--kind", type=click.Choice(["timer", "job"]))
@click.option("--case", "business_key", help="only this case's incidents (case number)")
@click.option("--page", default=1, show_default=True, type=click.IntRange(min=1))
@pass_state
@reports_errors
def incident_list(state, status: str, kind: str | None, business_key: str | None, page: int) -> None:
    """List incidents, newest first, 50 a page, with the counts by status."""
    found = state.engine.management.incidents(status=None if status == "all" else status, kind=kind,
                                              business_key=business_key, page=page)
    data = {"counts": found.counts, "total": found.total, "page": found.page, "pages": found.pages,
            "per_page": found.per_page, "incidents": [incident_dict(r) for r in found.rows]}
    if state.json:
        state.out("", data)
        return
    click.echo(f"未解决 {found.counts['open']} 个，已解决 {found.counts['resolved']} 个；"
               f"本页 {len(found.rows)} / 共 {found.total} 个（第 {found.page}/{found.pages} 页）")
    for r in found.rows:
        what = f"定时器 #{r.timer_id}" if r.kind == "timer" else f"{r.job_type} #{r.job_id}"
        state_text = STATUS_LABELS.get(r.status, r.status)
        if r.resolution:
            state_text += f"（{RESOLUTION_LABELS.get(r.resolution, r.resolution)}，{r.resolved_by or '-'}）"
        click.echo(f"#{r.id}  {_local(r.created_at)}  {r.business_key or '-'}  {r.element or '-'}  {what}  "
                   f"尝试 {r.retries} 次  {state_text}\n    {r.error}")


@incident.command("retry")
@click.argument("incident_id", type=int)
@click.option("--actor", default="cli", show_default=True, help="recorded as who retried (in the case history)")
@pass_state
@reports_errors
def incident_retry(state, incident_id: int, actor: str) -> None:
    """Run an incident's work again: a timer fires now through the normal step; a job is queued again."""
    result = state.engine.management.retry_incident(incident_id, actor=actor)
    messages = {"retried": "定时器已触发，异常事件已解决", "requeued": "已重新排队，异常事件已解决",
                "cancelled": "定时器已不再等待（案件已推进），异常事件已关闭"}
    state.out(f"异常事件 #{incident_id}：{messages.get(result.resolution, result.resolution)}",
              {"incident": incident_id, "fired": result.fired, "resolution": result.resolution})


@incident.command("resolve")
@click.argument("incident_id", type=int)
@click.option("--note", required=True, help="how it was dealt with (required)")
@click.option("--actor", default="cli", show_default=True)
@pass_state
@reports_errors
def incident_resolve(state, incident_id: int, note: str, actor: str) -> None:
    """Close an incident by hand (its timer is not fired), with a note saying why."""
    row = state.engine.management.resolve_incident(incident_id, actor=actor, note=note)
    state.out(f"异常事件 #{incident_id} 已标记为已解决", incident_dict(row))
