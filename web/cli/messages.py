"""``qifu message send NAME BUSINESS_KEY [--data JSON]``: deliver a message from outside to the case waiting for it.

One step of that case (:meth:`engine.runtime.RuntimeService.correlate_message`): its events waiting for a
message of that name catch it, ``--data`` becomes case variables. A case that does not exist, has ended or waits
for no such message is refused (``not_correlated``, exit 2, the messages it does wait for in ``details``).
"""

from __future__ import annotations

import click

from . import main, pass_state, reports_errors
from .cases import _data


@main.group()
def message() -> None:
    """Messages from outside (BPMN message events)."""


@message.command("send")
@click.argument("name")
@click.argument("business_key")
@click.option("--data", help="variables the message carries, a JSON object")
@click.option("--actor", default="cli", help="who sends it (recorded in the case's history)")
@pass_state
@reports_errors
def message_send(state, name: str, business_key: str, data: str | None, actor: str) -> None:
    """Deliver the message NAME to the case BUSINESS_KEY."""
    result = state.engine.runtime.correlate_message(name, business_key, _data(data), actor=actor)
    state.out(f"消息 {name} 已投递到 {result.business_key}，案件状态 {result.status}，新待办 {len(result.opened)} 个",
              {"sent": name, **result.__dict__})
