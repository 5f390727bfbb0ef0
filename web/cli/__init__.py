"""The ``qifu`` command line. One module per area; each adds its commands to :data:`main`.

Errors the engine reports (:class:`engine.errors.QifuError`) are printed as a clear message (``--json``:
as a structured object) and exit with status 2; nothing is changed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from engine.errors import QifuError


class CliState:
    def __init__(self, json_output: bool) -> None:
        self.json = json_output
        self._engine = None

    @property
    def engine(self):  # noqa: ANN201 - engine.process_engine.ProcessEngine
        if self._engine is None:
            import handlers  # noqa: F401 - registers the service-task handlers
            from engine.process_engine import ProcessEngine

            self._engine = ProcessEngine()
        return self._engine

    def out(self, human: str, data: Any = None) -> None:
        if self.json:
            click.echo(json.dumps(data if data is not None else {"message": human}, ensure_ascii=False,
                                  default=str))
        else:
            click.echo(human)


def reports_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn engine errors into a message on stderr (or JSON on stdout with --json) and exit status 2."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except QifuError as exc:
            state = click.get_current_context().find_object(CliState)
            if state is not None and state.json:
                click.echo(json.dumps(exc.to_dict(), ensure_ascii=False, default=str))
            else:
                click.echo(f"错误: {exc}", err=True)
            sys.exit(2)

    return wrapper


@click.group()
@click.option("--json", "json_output", is_flag=True, help="machine-readable output (and errors)")
@click.pass_context
def main(ctx: click.Context, json_output: bool) -> None:
    """企服 Qifu — 企业服务中心诉求办理系统."""
    ctx.obj = CliState(json_output)


pass_state = click.make_pass_decorator(CliState)

# each module adds its commands: api_clients (intake API), briefing/outbox/units (domain), users (web accounts)
from . import api_clients, audit, briefing, cases, deploy, outbox, setup, units, users, workdays  # noqa: E402,F401
