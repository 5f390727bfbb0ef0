"""``qifu outbox …``: deliver the messages handlers queued (``notify``), and look at what is pending.

The default sender only logs (no SMS gateway is configured in this project); a deployment plugs in its own
:class:`handlers.notify.Sender` by naming it in ``QIFU_SENDER`` (``module:ClassName``).
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from engine.errors import QifuError

from . import main, pass_state, reports_errors


def _sender(state: Any) -> Any:
    """The configured outbox sender (``QIFU_SENDER``), else the logging one."""
    from handlers.notify import LoggingSender

    spec = state.settings.sender
    if not spec:
        return LoggingSender()
    module, _, name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), name)()
    except (ImportError, AttributeError, ValueError) as exc:
        raise QifuError(f"QIFU_SENDER 无法加载：{spec}（{exc}）") from None


@main.group()
def outbox() -> None:
    """Queued notifications."""


@outbox.command("send")
@click.option("--limit", default=100, show_default=True, type=int)
@click.option("--max-attempts", default=5, show_default=True, type=int)
@pass_state
@reports_errors
def outbox_send(state, limit: int, max_attempts: int) -> None:
    """Deliver pending messages through the configured sender."""
    from handlers.notify import deliver_pending

    sender = _sender(state)
    with state.engine.session() as session:
        report = deliver_pending(session, sender, state.engine.clock.now(), limit=limit, max_attempts=max_attempts)
    state.out(f"已发送 {report.sent} 条，失败 {report.failed} 条", report.__dict__)


@outbox.command("list")
@click.option("--limit", default=50, show_default=True, type=int)
@pass_state
@reports_errors
def outbox_list(state, limit: int) -> None:
    """Show pending messages, oldest first."""
    from handlers.notify import pending

    with state.engine.session() as session:
        rows = [{"id": r.id, "business_key": r.business_key, "recipient": r.recipient, "address": r.address,
                 "template": r.template, "attempts": r.attempts, "last_error": r.last_error, "body": r.body}
                for r in pending(session, limit, max_attempts=1_000_000)]
    if state.json:
        state.out("", rows)
        return
    for r in rows:
        click.echo(f"#{r['id']} {r['business_key'] or '-'} → {r['recipient']} ({r['address'] or '-'}) "
                   f"[{r['attempts']}] {r['body']}")
