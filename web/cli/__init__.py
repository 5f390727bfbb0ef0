"""The ``qifu`` command line. One module per area; each adds its commands to :data:`main`.

Errors the engine reports (:class:`engine.errors.QifuError`) are printed as a clear message and exit with
status 2; nothing is changed.

``qifu --json …`` prints exactly one JSON document on stdout, whatever happens, so a script can always
``json.loads`` it: the command's result, or ``{"error": …, "message": …}`` for a refusal (engine error or bad
arguments: exit 2), an interruption or a crash (exit 1). Commands hand their result to :meth:`CliState.out`
instead of printing it; :class:`JsonGroup` prints it once the command has finished, and sends anything else a
command writes to stdout (progress lines, a server banner) to stderr. ``--help`` with ``--json`` gives
``{"help": …}``.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import traceback
from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any

import click

from engine.errors import QifuError


class CliState:
    def __init__(self, json_output: bool) -> None:
        self.json = json_output
        self.document: Any = None  # --json: the one document JsonGroup prints when the command ends
        self._engine: Any = None
        self._settings: Any = None

    @property
    def settings(self) -> Any:
        """The settings (:class:`web.settings.Settings`), read from the environment once."""
        if self._settings is None:
            from web.settings import Settings

            self._settings = Settings.from_env()
        return self._settings

    @property
    def engine(self) -> Any:
        """The engine, built the way ``create_app`` builds it (:func:`web.engine.build_engine`)."""
        if self._engine is None:
            from web.engine import build_engine

            self._engine = build_engine(self.settings)
        return self._engine

    def out(self, human: str, data: Any = None) -> None:
        """Print ``human`` for people; with --json keep ``data`` (or ``{"message": human}``) as the result."""
        if not self.json:
            click.echo(human)
            return
        if self.document is not None:  # a second document would make stdout unparsable
            raise RuntimeError("a --json command has exactly one result; out() was called twice")
        self.document = data if data is not None else {"message": human}


def reports_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn engine errors into a message on stderr and exit status 2 (with --json :class:`JsonGroup` reports)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except QifuError as exc:
            state = click.get_current_context().find_object(CliState)
            if state is not None and state.json:
                raise
            click.echo(f"错误: {exc}", err=True)
            sys.exit(2)

    return wrapper


def _asks_for_json(args: Sequence[str]) -> bool:
    """``--json`` among the options before the command name (the only place ``main`` takes it)."""
    for arg in args:
        if arg == "--":
            return False
        if not arg.startswith("-"):
            return False
        if arg == "--json":
            return True
    return False


def _usage_error(exc: click.ClickException) -> dict[str, Any]:
    out: dict[str, Any] = {"error": "usage", "message": exc.format_message()}
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        out["command"] = ctx.command_path
        out["usage"] = ctx.get_usage()
    return out


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    return exc.code if isinstance(exc.code, int) else 1


class JsonGroup(click.Group):
    """The root group: with ``--json`` the process prints one JSON document on stdout and nothing else."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if not _asks_for_json(argv):
            return super().main(argv, prog_name, complete_var, standalone_mode, **extra)
        state = CliState(json_output=True)
        asks_help = "--help" in argv
        captured = io.StringIO()
        code = 0
        # stray stdout goes to stderr (help is kept to become the document); --json always ends the process
        with contextlib.redirect_stdout(captured if asks_help else sys.stderr):
            try:
                result = super().main(argv, prog_name, complete_var, standalone_mode=False, obj=state, **extra)
                code = result if isinstance(result, int) else 0
            except SystemExit as exc:
                code = _exit_code(exc)
            except click.ClickException as exc:
                state.document, code = _usage_error(exc), 2
            except QifuError as exc:
                state.document, code = exc.to_dict(), 2
            except (click.Abort, KeyboardInterrupt, EOFError):
                state.document, code = {"error": "aborted", "message": "已中止"}, 1
            except Exception as exc:  # a crash is still reported as JSON; the traceback goes to stderr
                traceback.print_exc()
                state.document, code = {"error": "internal_error", "message": f"{type(exc).__name__}: {exc}"}, 1
        text = captured.getvalue()
        if state.document is None:
            if code == 0:
                state.document = {"help": text} if asks_help and text else {"ok": True}
            else:
                state.document = {"error": "failed", "message": f"命令失败（退出状态 {code}），详见标准错误输出"}
        elif text:
            click.echo(text, err=True, nl=False)
        click.echo(json.dumps(state.document, ensure_ascii=False, default=str))
        sys.exit(code)


@click.group(cls=JsonGroup)
@click.option("--json", "json_output", is_flag=True, help="machine-readable output (and errors): one JSON document")
@click.pass_context
def main(ctx: click.Context, json_output: bool) -> None:
    """企服 Qifu — 企业服务中心诉求办理系统."""
    if not isinstance(ctx.obj, CliState):  # JsonGroup.main passes the state it prints from
        ctx.obj = CliState(json_output)


pass_state = click.make_pass_decorator(CliState)

# each module adds its commands: api_clients (intake API), briefing/outbox/units (domain), users (web accounts)
from . import (  # noqa: E402,F401
    api_clients,
    audit,
    briefing,
    cases,
    deploy,
    incidents,
    messages,
    migrate,
    outbox,
    report,
    settings,
    setup,
    units,
    users,
    workdays,
)
