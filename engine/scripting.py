"""Restricted evaluation of every expression and script a diagram contains.

Diagram text is data from a designer's file, not trusted code. Every gateway condition, timer expression,
script task, input/output mapping and candidate-group expression is compiled by RestrictedPython (no
imports, no names or attributes starting with ``_``, guarded attribute/item access and writes) and then run
with a small set of builtins plus the functions below. The same compile step runs at deploy time, so a
hostile expression is refused before it is stored and can never run.

Functions for diagrams (all deadlines come from the working-day calendar, see :mod:`engine.calendar`):

- ``now()`` — the engine clock, ISO 8601.
- ``working_days_after(start, n)`` — end of the n-th working day after ``start`` (ISO).
- ``end_of_working_day(start)`` — end of the working day on which ``start`` falls (or the next one).
- ``is_workday(day)`` — whether a date is a working day.
"""

from __future__ import annotations

import ast
import builtins
import operator
from collections.abc import Callable, Mapping
from datetime import date, datetime
from functools import lru_cache
from types import CodeType
from typing import Any

from RestrictedPython import compile_restricted_eval, compile_restricted_exec, safe_builtins
from RestrictedPython.Guards import full_write_guard, guarded_iter_unpack_sequence, safer_getattr
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment

from .errors import ExpressionError

MAX_EXPRESSION_LENGTH = 4000

_EXTRA_BUILTINS: dict[str, Any] = {
    name: __builtins__[name] if isinstance(__builtins__, dict) else getattr(__builtins__, name)
    for name in ("dict", "list", "set", "sorted", "min", "max", "sum", "any", "all", "enumerate", "reversed")
}
_EXTRA_BUILTINS["zip"] = zip

_INPLACE = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": operator.imod, "|=": operator.ior, "&=": operator.iand,
}


def _inplacevar(op: str, x: Any, y: Any) -> Any:
    if op not in _INPLACE:
        raise ExpressionError(f"不支持的运算符 {op}")
    return _INPLACE[op](x, y)


_GUARDS: dict[str, Any] = {
    "__builtins__": {**safe_builtins, **_EXTRA_BUILTINS},
    "_getattr_": safer_getattr,
    "_getitem_": operator.getitem,
    "_getiter_": iter,
    "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
    "_write_": full_write_guard,
    "_inplacevar_": _inplacevar,
}
_RESERVED = frozenset(_GUARDS)
# Python builtins the restricted engine does not offer (open, eval, getattr, vars, ...): naming one is refused
# at compile time, so the mistake or the attack shows at deploy time instead of when a case reaches it.
_FORBIDDEN_NAMES = frozenset(n for n in dir(builtins) if n not in _GUARDS["__builtins__"])


@lru_cache(maxsize=4096)
def compile_expression(source: str) -> CodeType:
    """Compile an expression under the restrictions; raise :class:`ExpressionError` naming the reasons."""
    return _compile(source, "eval")


@lru_cache(maxsize=1024)
def compile_script(source: str) -> CodeType:
    return _compile(source, "exec")


def _compile(source: str, mode: str) -> CodeType:
    if source is None or not str(source).strip():
        raise ExpressionError("表达式为空 (empty expression)")
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"表达式过长 (over {MAX_EXPRESSION_LENGTH} characters)")
    try:
        tree = ast.parse(source.strip() if mode == "eval" else source, mode=mode)
    except SyntaxError as exc:
        raise ExpressionError(f"表达式语法错误 (syntax error): {exc.msg}", source=source) from None
    if any(isinstance(node, (ast.Import, ast.ImportFrom)) for node in ast.walk(tree)):
        raise ExpressionError("表达式中不允许 import (imports are not allowed)", source=source)
    compiler = compile_restricted_eval if mode == "eval" else compile_restricted_exec
    result = compiler(source.strip() if mode == "eval" else source, filename="<diagram>")
    if result.errors or result.code is None:
        raise ExpressionError(
            "表达式不被允许 (refused by the restricted engine): " + "; ".join(result.errors), source=source
        )
    forbidden = sorted(set(result.used_names) & _FORBIDDEN_NAMES)
    if forbidden:
        raise ExpressionError(f"表达式使用了不允许的名称 (not available): {', '.join(forbidden)}", source=source)
    return result.code


class RestrictedEnvironment(BasePythonScriptEngineEnvironment):
    """SpiffWorkflow script environment that runs only restricted, pre-compiled code."""

    def __init__(self, functions: Mapping[str, Callable[..., Any]]) -> None:
        super().__init__(dict(functions))

    def _globals(self, context: Mapping[str, Any], external: Mapping[str, Any] | None) -> dict[str, Any]:
        glb: dict[str, Any] = dict(_GUARDS)
        glb.update(self.globals)
        if external:
            glb.update(external)
        glb.update(context)
        return glb

    def evaluate(self, expression: str, context: dict, external_context: dict | None = None) -> Any:
        return eval(compile_expression(expression), self._globals(context, external_context))  # noqa: S307

    def execute(self, script: str, context: dict, external_context: dict | None = None) -> bool:
        code = compile_script(script)
        glb = self._globals(context, external_context)
        exec(code, glb)  # noqa: S102 - restricted code only
        hidden = _RESERVED | set(self.globals) | set(external_context or ())
        for key in list(context):
            if key not in glb:
                del context[key]
        for key, value in glb.items():
            if key not in hidden and not callable(value):
                context[key] = value
        return True

    def call_service(self, context: dict, **kwargs: Any) -> Any:  # pragma: no cover - we use our own spec
        raise NotImplementedError


class RestrictedScriptEngine(PythonScriptEngine):
    """The script engine every workflow runs with; ``validate`` is used at deploy time."""

    def __init__(self, functions: Mapping[str, Callable[..., Any]] | None = None) -> None:
        super().__init__(environment=RestrictedEnvironment(functions or {}))

    def validate(self, expression: str) -> None:
        compile_expression(expression)


def as_datetime(value: Any) -> datetime:
    """Accept a datetime, a date or an ISO string from task data."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    raise ExpressionError(f"不是日期时间: {value!r}")
