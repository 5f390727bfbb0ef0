"""Restricted evaluation of every expression and script a diagram contains.

Diagram text is data from a designer's file, not trusted code. Every gateway condition, timer expression,
script task, input/output mapping and candidate-group expression is compiled by RestrictedPython (no
imports, no names or attributes starting with ``_``, guarded attribute/item access and writes) and then run
with a small set of builtins plus the functions below. The same compile step runs at deploy time, so a
hostile expression is refused before it is stored and can never run.

Every evaluation is bounded (:class:`ScriptLimits`): CPU time (``QIFU_EXPRESSION_TIME_LIMIT``, checked at
every loop iteration and function call, :mod:`engine.script_policy`), and the size of what one operation
may build (:mod:`engine.script_guards`). A step is bounded too (:class:`StepGuard`): tasks run
(``QIFU_MAX_STEP_TASKS``) and wall-clock time (``QIFU_MAX_STEP_SECONDS``). Past a limit the evaluation
raises :class:`~engine.errors.ExpressionError` (the step :class:`StepLimitError`) naming the limit, and the
step rolls back. Scripts may use ordinary Python: tuple unpacking, ``print()`` (kept for the log only),
``str.format``/``format_map`` and f-strings (through a formatter that refuses ``_`` names and huge widths).

Functions for diagrams (all deadlines come from the working-day calendar, see :mod:`engine.calendar`):

- ``now()`` — the engine clock, ISO 8601.
- ``working_days_after(start, n)`` — end of the n-th working day after ``start`` (ISO).
- ``end_of_working_day(start)`` — end of the working day on which ``start`` falls (or the next one).
- ``end_of_receipt_day(received)`` — the same-day limit (当场/当日) of a case received then: the end of that
  working day within office hours, else of the next working day (``QIFU_OFFICE_HOURS``, RC-10).
- ``is_workday(day)`` — whether a date is a working day.
"""

from __future__ import annotations

import ast
import builtins
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from types import CodeType, TracebackType
from typing import TYPE_CHECKING, Any

from RestrictedPython import compile_restricted_eval, compile_restricted_exec, safe_builtins
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment

from . import script_guards as guards
from .clock import to_utc
from .errors import ExpressionError, QifuError
from .script_policy import RUNTIME_GLOBALS, LimitingTransformer, check_constants

if TYPE_CHECKING:
    from .calendar import WorkdayCalendar
    from .settings import EngineSettings

MAX_EXPRESSION_LENGTH = 4000
log = logging.getLogger(__name__)


# --- limits ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScriptLimits:
    """What diagram code may cost. The time settings come from :class:`engine.settings.EngineSettings`."""

    time_limit: float = 2.0  # CPU seconds per evaluation (QIFU_EXPRESSION_TIME_LIMIT)
    max_step_tasks: int = 5000  # tasks one step may run (QIFU_MAX_STEP_TASKS)
    max_step_seconds: float = 10.0  # wall clock of one step's engine work (QIFU_MAX_STEP_SECONDS)
    max_int_bits: int = guards.MAX_INT_BITS  # largest integer one operation may build
    max_length: int = guards.MAX_LENGTH  # longest string/sequence one operation may build
    max_total_length: int = guards.MAX_TOTAL_LENGTH  # all results of one evaluation together

    @classmethod
    def from_settings(cls, settings: EngineSettings) -> ScriptLimits:
        return cls(time_limit=settings.expression_time_limit, max_step_tasks=settings.max_step_tasks,
                   max_step_seconds=settings.max_step_seconds)


class StepLimitError(QifuError):
    """A step ran too many tasks or too long (a loop without a wait state); it was rolled back."""

    code = "step_limit"


def element_label(spec: Any) -> str:
    """How errors name a diagram element: ``id (name)``."""
    name = getattr(spec, "bpmn_name", None)
    return f"{getattr(spec, 'bpmn_id', None) or spec.name}" + (f" ({name})" if name else "")


class StepGuard:
    """Bounds one engine step: the tasks it runs and its wall-clock time.

    A process that loops with no wait state, or a call activity that calls itself, would otherwise spin for
    ever inside ``do_engine_steps`` while the step holds its database lock. Pass :meth:`will_run` and
    :meth:`did_run` as its callbacks; inside ``with guard:`` every evaluation also stops at the deadline.
    """

    def __init__(self, limits: ScriptLimits, completed: list[Any]) -> None:
        self.limits = limits
        self.completed = completed
        self.running: Any = None
        self.deadline = time.monotonic() + limits.max_step_seconds

    def __enter__(self) -> StepGuard:
        self._token = guards.step_deadline.set((self.deadline, self.limits.max_step_seconds))
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        guards.step_deadline.reset(self._token)

    def will_run(self, task: Any) -> None:
        self.running = task
        if time.monotonic() > self.deadline:
            raise StepLimitError(f"本步骤运行超过 {self.limits.max_step_seconds:g} 秒的时间上限，已中止并回滚 "
                                 f"(step time limit QIFU_MAX_STEP_SECONDS)", element=element_label(task.task_spec))

    def did_run(self, task: Any) -> None:
        self.completed.append(task)
        if len(self.completed) > self.limits.max_step_tasks:
            raise StepLimitError(
                f"本步骤连续执行的流程元素超过 {self.limits.max_step_tasks} 个的上限，已中止并回滚：流程可能在"
                f"没有等待点的循环中，或调用活动调用了自身 (QIFU_MAX_STEP_TASKS)",
                element=element_label(task.task_spec))

    def locate(self, exc: QifuError) -> QifuError:
        """Name the element that was running in an error that names none yet."""
        if exc.element is None and self.running is not None:
            exc.element = element_label(self.running.task_spec)
        return exc


# --- compiling -----------------------------------------------------------------------------------------------
_EXTRA_BUILTINS: dict[str, Any] = {
    name: getattr(builtins, name)
    for name in ("dict", "list", "set", "sorted", "min", "max", "sum", "any", "all", "enumerate", "reversed", "zip")
}
_BUILTINS = guards.builtins_for_diagrams({**safe_builtins, **_EXTRA_BUILTINS})
_GLOBALS: dict[str, Any] = {"__builtins__": _BUILTINS, **RUNTIME_GLOBALS}
# Python builtins the restricted engine does not offer (open, eval, getattr, vars, ...): naming one is refused
# at compile time, so the mistake or the attack shows at deploy time instead of when a case reaches it.
_FORBIDDEN_NAMES = frozenset(n for n in dir(builtins) if n not in _BUILTINS)
_DEPLOY_LIMITS = ScriptLimits()


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
    text = source.strip() if mode == "eval" else source
    try:
        tree = ast.parse(text, mode=mode)
    except SyntaxError as exc:
        raise ExpressionError(f"表达式语法错误 (syntax error): {exc.msg}", source=source) from None
    if any(isinstance(node, (ast.Import, ast.ImportFrom)) for node in ast.walk(tree)):
        raise ExpressionError("表达式中不允许 import (imports are not allowed)", source=source)
    compiler = compile_restricted_eval if mode == "eval" else compile_restricted_exec
    result = compiler(text, filename="<diagram>", policy=LimitingTransformer)
    if result.errors or result.code is None:
        raise ExpressionError(
            "表达式不被允许 (refused by the restricted engine): " + "; ".join(result.errors), source=source
        )
    forbidden = sorted(set(result.used_names) & _FORBIDDEN_NAMES)
    if forbidden:
        raise ExpressionError(f"表达式使用了不允许的名称 (not available): {', '.join(forbidden)}", source=source)
    try:
        check_constants(tree, _DEPLOY_LIMITS)
    except ExpressionError as exc:
        raise ExpressionError(exc.message, source=source, **exc.details) from None
    return result.code


# --- running ---------------------------------------------------------------------------------------------------
def _diagram_line(tb: TracebackType | None) -> int | None:
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<diagram>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _failure(exc: BaseException, source: str, script: bool) -> ExpressionError:
    """An error raised by diagram code, as an ExpressionError with a bounded message."""
    if isinstance(exc, RecursionError):
        reason = "递归过深 (recursion too deep)"
    elif isinstance(exc, MemoryError):
        reason = "内存不足 (out of memory)"
    else:
        try:
            guards.check_size(exc.args, limit=1000)
            text = str(exc)
        except Exception:  # whatever it is, it is not shown
            text = "（消息过长，已省略）"
        reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    line = _diagram_line(exc.__traceback__) if script else None
    return ExpressionError(f"表达式运行出错{f'（第 {line} 行）' if line else ''}: {reason}", source=source)


class RestrictedEnvironment(BasePythonScriptEngineEnvironment):
    """SpiffWorkflow script environment that runs only restricted, pre-compiled code, within ``limits``."""

    def __init__(self, functions: Mapping[str, Callable[..., Any]], limits: ScriptLimits | None = None) -> None:
        super().__init__(dict(functions))
        self.limits = limits or ScriptLimits()

    def _globals(self, context: Mapping[str, Any], external: Mapping[str, Any] | None) -> dict[str, Any]:
        glb: dict[str, Any] = dict(self.globals)
        if external:
            glb.update(external)
        glb.update(context)
        glb.update(_GLOBALS)  # last: task data cannot replace a guard
        return glb

    def evaluate(self, expression: str, context: dict, external_context: dict | None = None) -> Any:
        code = compile_expression(expression)
        glb = self._globals(context, external_context)
        try:
            with guards.evaluation(self.limits):
                value = eval(code, glb)  # restricted code only
                guards.check_size(value, what="表达式结果")
        except QifuError:
            raise
        except BaseException as exc:  # SystemExit & co. from diagram code stop nothing else
            raise _failure(exc, expression, script=False) from None
        return value

    def execute(self, script: str, context: dict, external_context: dict | None = None) -> bool:
        code = compile_script(script)
        glb = self._globals(context, external_context)
        hidden = set(self.globals) | set(external_context or ())
        try:
            with guards.evaluation(self.limits):
                exec(code, glb)  # restricted code only
                written = {key: value for key, value in glb.items()
                           if not key.startswith("_") and key not in hidden and not callable(value)}
                guards.check_size(list(written.values()), what="脚本写入的数据")
        except QifuError:
            raise
        except BaseException as exc:  # see evaluate
            raise _failure(exc, script, script=True) from None
        printed = glb.get("_print")
        if isinstance(printed, guards.BoundedPrintCollector) and printed.txt:
            log.debug("script printed: %s", printed())
        for key in list(context):
            if key not in glb:
                del context[key]
        context.update(written)
        return True

    def call_service(self, context: dict, **kwargs: Any) -> Any:  # pragma: no cover - we use our own spec
        raise NotImplementedError


class RestrictedScriptEngine(PythonScriptEngine):
    """The script engine every workflow runs with; ``validate`` is used at deploy time.

    A failing expression raises :class:`~engine.errors.ExpressionError` naming the task's element
    (SpiffWorkflow's own wrapper would hide our error inside its exception).
    """

    def __init__(self, functions: Mapping[str, Callable[..., Any]] | None = None,
                 limits: ScriptLimits | None = None) -> None:
        super().__init__(environment=RestrictedEnvironment(functions or {}, limits))

    @property
    def limits(self) -> ScriptLimits:
        return self.environment.limits

    def validate(self, expression: str) -> None:
        compile_expression(expression)

    def evaluate(self, task: Any, expression: str, external_context: dict | None = None) -> Any:
        try:
            return self.environment.evaluate(expression, task.data, external_context)
        except QifuError as exc:
            if exc.element is None:
                exc.element = element_label(task.task_spec)
            raise

    def execute(self, task: Any, script: str, external_context: dict | None = None) -> bool:
        try:
            return self.environment.execute(script, task.data, external_context or {})
        except QifuError as exc:
            if exc.element is None:
                exc.element = element_label(task.task_spec)
            raise


def diagram_functions(now: Callable[[], datetime], calendar: Callable[[], WorkdayCalendar]
                      ) -> dict[str, Callable[..., Any]]:
    """The functions a diagram may call, over the step's clock and (read when first needed) calendar."""

    def now_iso() -> str:
        return now().isoformat()

    def working_days_after(start: Any, n: int) -> str:
        return calendar().deadline(to_utc(as_datetime(start)), int(n)).isoformat()

    def end_of_working_day(start: Any = None) -> str:
        return calendar().end_of_working_day(to_utc(as_datetime(start)) if start else now()).isoformat()

    def end_of_receipt_day(received: Any = None) -> str:
        return calendar().end_of_receipt_day(to_utc(as_datetime(received)) if received else now()).isoformat()

    def is_workday(day: Any) -> bool:
        return calendar().is_workday(as_datetime(day).date())

    return {"now": now_iso, "working_days_after": working_days_after, "end_of_working_day": end_of_working_day,
            "end_of_receipt_day": end_of_receipt_day, "is_workday": is_workday}


def as_datetime(value: Any) -> datetime:
    """Accept a datetime, a date or an ISO string from task data."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    raise ExpressionError(f"不是日期时间: {value!r}")
