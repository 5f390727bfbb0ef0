"""Messages and signals from outside.

``qifu message send NAME BUSINESS_KEY [--data JSON]`` delivers a message to the case waiting for it: one step of
that case (:meth:`engine.runtime.RuntimeService.correlate_message`), ``--data`` becomes case variables. A case
that does not exist, has ended or waits for no such message is refused (``not_correlated``, exit 2, the messages
it does wait for in ``details``).

``qifu signal send NAME [--data JSON]`` broadcasts a signal to every case waiting for it, one step per case
(:meth:`engine.runtime.RuntimeService.broadcast_signal`). No case waiting is refused (``not_correlated``, exit
2); a case whose step failed is listed in ``failed`` and the command exits 2 after the others were delivered.
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


@main.group()
def signal() -> None:
    """Signals from outside (BPMN signal events)."""


@signal.command("send")
@click.argument("name")
@click.option("--data", help="variables the signal carries, a JSON object")
@click.option("--actor", default="cli", help="who sends it (recorded in each case's history)")
@pass_state
@reports_errors
def signal_send(state, name: str, data: str | None, actor: str) -> None:
    """Broadcast the signal NAME to every case waiting for it."""
    outcome = state.engine.runtime.broadcast_signal(name, _data(data), actor=actor)
    delivered = [r.business_key for r in outcome.delivered]
    failed = [{"instance": iid, **exc.to_dict()} for iid, exc in outcome.failed]
    lines = [f"信号 {name} 已送达 {len(delivered)} 个案件" + (f"：{'、'.join(delivered)}" if delivered else "")]
    lines += [f"未送达 #{f['instance']}：{f['message']}" for f in failed]
    state.out("\n".join(lines), {"sent": name, "delivered": delivered, "failed": failed})
    if failed:
        raise SystemExit(2)
