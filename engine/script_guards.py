"""What restricted diagram code calls while it runs: the time budget and the size guards.

Python cannot stop a thread from outside, and one C call (``10**10**10``, ``'a' * 10**10``,
``sum(range(10**12))``) cannot be interrupted at all. So the limits are enforced from inside:

- :mod:`engine.script_policy` rewrites diagram code so every loop iteration, function call and comprehension
  step calls :func:`tick`, which raises once the evaluation has used its CPU time;
- every operation that can build a huge object or run long in ONE C call goes through a guard here that
  refuses it *before* the work: ``**``, ``*``, ``<<``, ``+`` on sequences, ``%``/``str.format``/f-string
  formatting, ``[*a, *b]``, ``range``, ``str()``/``repr()`` of containers, ``str.join``/``replace``/``ljust``…,
  ``list.extend``, ``int.to_bytes``… Each result is bounded by ``max_length`` and all results of one
  evaluation together by ``max_total_length``, so straight-line code without loops cannot pile up memory either.

The budget of the running evaluation lives in a context variable, i.e. per thread: the web server runs steps
in several threads. A nested evaluation (diagram code calling a function that evaluates another expression)
shares the outer budget, and the step's wall-clock deadline (see :class:`engine.scripting.StepGuard`) caps it.

Known gaps, by design of CPython: comparing or hashing two structures that share sub-objects exponentially
(``a = [a, a]`` thirty times) is one uninterruptible C call, and a loop may keep appending small items
until its time is up (bounded by time, not size); a process-level memory limit is the backstop.
"""

from __future__ import annotations

import _string  # the field-name parser string.Formatter itself uses
import math
import operator
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar, Token
from typing import Any, Protocol

from RestrictedPython.Guards import safer_getattr, safer_getattr_raise
from RestrictedPython.PrintCollector import PrintCollector

from .errors import ExpressionError

MAX_INT_BITS = 10_000
MAX_LENGTH = 1_000_000
MAX_TOTAL_LENGTH = 8_000_000
PRINT_KEEP = 4_000  # characters of print() output kept per script (for the log); the rest is dropped

_monotonic = time.monotonic
_thread_time = time.thread_time


class Limits(Protocol):
    """What the guards read; :class:`engine.scripting.ScriptLimits` is the one implementation."""

    @property
    def time_limit(self) -> float: ...
    @property
    def max_int_bits(self) -> int: ...
    @property
    def max_length(self) -> int: ...
    @property
    def max_total_length(self) -> int: ...


class _Defaults:
    time_limit = 2.0
    max_int_bits = MAX_INT_BITS
    max_length = MAX_LENGTH
    max_total_length = MAX_TOTAL_LENGTH


# --- the budget -------------------------------------------------------------------------------------------
class Budget:
    """Time and size spent by one evaluation (and the evaluations nested in it)."""

    __slots__ = ("limits", "cpu_start", "check_at", "step", "allocated", "expired")

    def __init__(self, limits: Limits, step: tuple[float, float] | None) -> None:
        self.limits = limits
        self.step = step  # (monotonic deadline, seconds) of the step this evaluation runs in
        self.cpu_start = _thread_time()
        self.allocated = 0
        self.expired: str | None = None
        self.check_at = _monotonic() + limits.time_limit
        if step is not None:
            self.check_at = min(self.check_at, step[0])

    def check(self) -> None:
        """The slow path of :func:`tick`: CPU time used, or the step's wall-clock deadline.

        CPU time of a thread never runs faster than the wall clock, so until ``check_at`` (a monotonic
        instant) the limit cannot have been reached and :func:`tick` need not ask the (slower) CPU clock.
        """
        if self.expired is None:
            now = _monotonic()
            if self.step is not None and now >= self.step[0]:
                self.expired = (f"本步骤运行超过 {self.step[1]:g} 秒的时间上限，已中止并回滚 "
                                f"(step time limit QIFU_MAX_STEP_SECONDS)")
            else:
                used = _thread_time() - self.cpu_start
                left = self.limits.time_limit - used
                if left > 0:
                    self.check_at = now + left if self.step is None else min(now + left, self.step[0])
                    return
                self.expired = (f"表达式运行超过 {self.limits.time_limit:g} 秒的 CPU 时间上限，已中止 "
                                f"(expression time limit QIFU_EXPRESSION_TIME_LIMIT)")
            self.check_at = -math.inf  # every later tick raises again, so a caught error does not help
        raise ExpressionError(self.expired, limit="time")

    def allocate(self, n: int) -> None:
        self.allocated += n
        if self.allocated > self.limits.max_total_length:
            raise ExpressionError(
                f"一次求值生成的数据合计超过 {self.limits.max_total_length} 个元素/字符的上限 "
                f"(total size limit)", limit="total_length")


_current: ContextVar[Budget | None] = ContextVar("qifu_script_budget", default=None)
step_deadline: ContextVar[tuple[float, float] | None] = ContextVar("qifu_step_deadline", default=None)


def tick() -> None:
    """Called at the top of every loop body, function body and iteration step of diagram code."""
    budget = _current.get()
    if budget is not None and _monotonic() >= budget.check_at:
        budget.check()


class evaluation:  # used like a function: ``with evaluation(limits):``
    """Run diagram code under ``limits``; an evaluation nested in another shares the outer budget."""

    __slots__ = ("limits", "budget", "token")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.token: Token[Budget | None] | None = None

    def __enter__(self) -> Budget:
        outer = _current.get()
        if outer is not None:
            return outer
        self.budget = Budget(self.limits, step_deadline.get())
        self.token = _current.set(self.budget)
        return self.budget

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self.token is None:
            return
        _current.reset(self.token)
        if self.budget.expired is not None and not (isinstance(exc, ExpressionError)
                                                    and exc.details.get("limit") == "time"):
            # the code caught the limit's error and went on (or failed otherwise): the limit stands
            raise ExpressionError(self.budget.expired, limit="time") from None


def _limits() -> Limits:
    budget = _current.get()
    return budget.limits if budget is not None else _Defaults


def _length_error(what: str, limit: int, n: int | None = None) -> ExpressionError:
    count = f"：{n} " if n is not None else "，"
    return ExpressionError(f"{what}过长{count}超过 {limit} 个元素/字符的长度上限 (length limit)", limit="length")


def _check_length(n: int, what: str = "结果") -> None:
    limit = _limits().max_length
    if n > limit:
        raise _length_error(what, limit, n)


def _grow(n: int, what: str = "结果", added: int | None = None) -> None:
    """Refuse a result of ``n`` elements/characters before it is built, and count what it adds to the total."""
    budget = _current.get()
    limits = budget.limits if budget is not None else _Defaults
    if n > limits.max_length:
        raise _length_error(what, limits.max_length, n)
    if budget is not None:
        budget.allocate(n if added is None else added)


def _refuse_bits(bits: float) -> None:
    limit = _limits().max_int_bits
    if bits > limit:
        raise ExpressionError(f"整数结果过大：约 {bits:.0f} 位，超过 {limit} 位的上限 (integer size limit)",
                              limit="int_bits")


# --- sizes of existing values ---------------------------------------------------------------------------
_SCALARS = frozenset({int, float, bool, complex, type(None)})
_TEXT = (str, bytes, bytearray)
_SEQUENCES = (str, bytes, bytearray, list, tuple)
_VIEWS: tuple[type, ...] = (type({}.keys()), type({}.values()), type({}.items()))


def check_size(value: Any, limit: int | None = None, what: str = "数据") -> None:
    """Refuse ``value`` if printing or storing it would produce more than ``limit`` characters/elements.

    Shared sub-objects count each time they occur (``[s] * 10**6`` prints ``s`` a million times), which is
    what ``str()``, formatting and JSON do with them.
    """
    kind = type(value)
    if kind in _SCALARS:
        return
    limit = _limits().max_length if limit is None else limit
    total, stack = 0, [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or kind is bytes or kind is bytearray:
            total += len(item)
        elif kind is list or kind is tuple or kind is set or kind is frozenset or kind in _VIEWS:
            total += len(item) + 2
            if total <= limit:
                stack.extend(item)
        elif kind is dict:
            total += 2 * len(item) + 2
            if total <= limit:
                stack.extend(item.keys())
                stack.extend(item.values())
        elif kind is int:
            total += item.bit_length() // 3 + 1
        elif isinstance(item, BaseException):
            total += 16
            stack.extend(item.args)
        else:
            total += 16
        if total > limit:
            raise ExpressionError(f"{what}过大：超过 {limit} 个元素/字符的上限 (size limit)", limit="length")


# --- operators --------------------------------------------------------------------------------------------
def guard_pow(base: Any, exp: Any, mod: Any = None) -> Any:
    """``base ** exp`` and ``pow()``: refuse integer results over ``max_int_bits`` before computing them."""
    if isinstance(base, int) and isinstance(exp, int):
        if mod is None:
            if exp > 1 and abs(base) > 1:
                _refuse_bits(math.inf if exp.bit_length() > 64 else exp * math.log2(abs(base)))
        elif isinstance(mod, int) and exp > 0:
            # square-and-multiply: one multiplication modulo ``mod`` per bit of the exponent
            digits = mod.bit_length() / 30 + 1
            if exp.bit_length() * digits * digits > 1e8:
                _refuse_bits(max(exp.bit_length(), mod.bit_length()) * 10)
    return base ** exp if mod is None else pow(base, exp, mod)


def _check_mul(a: Any, b: Any) -> None:
    if isinstance(a, int):
        if isinstance(b, int):
            _refuse_bits(a.bit_length() + b.bit_length())
        elif isinstance(b, _SEQUENCES):
            _grow(len(b) * a)
    elif isinstance(b, int) and isinstance(a, _SEQUENCES):
        _grow(len(a) * b)


def guard_mul(a: Any, b: Any) -> Any:
    _check_mul(a, b)
    return a * b


def guard_lshift(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int) and a and b > 0:
        _refuse_bits(a.bit_length() + b)
    return a << b


def guard_add(a: Any, b: Any) -> Any:
    if isinstance(a, _SEQUENCES) and isinstance(b, _SEQUENCES):
        _grow(len(a) + len(b))
    return a + b


def guard_mod(a: Any, b: Any) -> Any:
    if isinstance(a, _TEXT):
        return percent_format(a, b)
    return a % b


def _iadd(x: Any, y: Any) -> Any:
    if isinstance(x, list) and not isinstance(y, _SEQUENCES):
        return _extend(x, y)  # list += generator: bounded while it is consumed
    if isinstance(x, _SEQUENCES) and isinstance(y, _SEQUENCES):
        _grow(len(x) + len(y))
    return operator.iadd(x, y)


def _imul(x: Any, y: Any) -> Any:
    _check_mul(x, y)
    return operator.imul(x, y)


_INPLACE: dict[str, Callable[[Any, Any], Any]] = {
    "+=": _iadd, "-=": operator.isub, "*=": _imul, "/=": operator.itruediv, "//=": operator.ifloordiv,
    "%=": guard_mod, "**=": guard_pow, "<<=": guard_lshift, ">>=": operator.irshift, "|=": operator.ior,
    "&=": operator.iand, "^=": operator.ixor,
}


def inplacevar(op: str, x: Any, y: Any) -> Any:
    """``x += y`` and friends (RestrictedPython turns them into this call)."""
    fn = _INPLACE.get(op)
    if fn is None:
        raise ExpressionError(f"不支持的运算符 {op}")
    return fn(x, y)


def spread(kind: str, *parts: Any) -> Any:
    """``[a, *b]``, ``(*a, *b)``, ``{*a}``, ``{**a, **b}`` and ``f(*a)``: the parts' total length is bounded.

    The compiler passes plain elements as one-element tuples (one-item dicts), so evaluation order stays
    the source's.
    """
    limit = _limits().max_length
    total, ready = 0, []
    for part in parts:
        if not hasattr(part, "__len__"):
            part = _bounded_list(part, limit - total)
        total += len(part)
        _check_length(total)
        ready.append(part)
    _grow(total)
    if kind == "dict":
        out: dict[Any, Any] = {}
        for part in ready:
            out.update(part)
        return out
    items = [item for part in ready for item in part]
    return items if kind == "list" else tuple(items) if kind == "tuple" else set(items)


def apply(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``f(*args, **kwargs)`` (RestrictedPython's ``_apply_``); the compiler bounds ``*args`` via :func:`spread`."""
    return fn(*args, **kwargs)


def guarded_iter(obj: Any) -> Iterator[Any]:
    """``_getiter_``: every ``for`` loop and comprehension step ticks."""
    return _ticking(iter(obj))


def _ticking(it: Iterator[Any]) -> Iterator[Any]:
    for item in it:
        budget = _current.get()
        if budget is not None and _monotonic() >= budget.check_at:
            budget.check()
        yield item


def guarded_getitem(obj: Any, key: Any) -> Any:
    """``_getitem_``: a slice is a copy, counted like any other result."""
    value = obj[key]
    if type(key) is slice and isinstance(value, _SEQUENCES):
        _grow(len(value))
    return value


def _bounded_list(items: Iterable[Any], room: int) -> list[Any]:
    out: list[Any] = []
    for item in guarded_iter(items):
        if len(out) >= room:
            raise _length_error("结果", _limits().max_length)
        out.append(item)
    return out


def _extender(target: list[Any]) -> Callable[[Any], None]:
    def extend(items: Any) -> None:
        _extend(target, items)

    return extend


def _extend(target: list[Any], items: Any) -> list[Any]:
    if not hasattr(items, "__len__"):
        items = _bounded_list(items, _limits().max_length - len(target))
    _grow(len(target) + len(items), added=len(items))
    target.extend(items)
    return target


# --- formatting -----------------------------------------------------------------------------------------
_DIGITS = re.compile(r"\d+")


def _check_spec(spec: str) -> None:
    """Widths and precisions in a format spec (``>{n}``, ``.{n}f``) are bounded like any length."""
    for run in _DIGITS.findall(spec):
        _check_length(int(run) if len(run) < 8 else _limits().max_length + 1, "格式宽度")


class _SafeFormatter(string.Formatter):
    """``str.format``/``format_map`` and f-strings: no ``_`` attributes or keys, bounded widths and total."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> tuple[Any, Any]:
        first, rest = _string.formatter_field_name_split(field_name)
        obj = self.get_value(first, args, kwargs)
        for is_attr, key in rest:
            if isinstance(key, str) and key.startswith("_"):
                raise ExpressionError(f"格式字段不能访问以 _ 开头的名称: {key}")
            obj = safer_getattr_raise(obj, key) if is_attr else obj[key]
        return obj, first

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion:
            check_size(value)
        return super().convert_field(value, conversion)

    def format_field(self, value: Any, format_spec: str) -> str:
        _check_spec(format_spec)
        check_size(value)
        text = format(value, format_spec)
        self.total += len(text)
        _check_length(self.total, "格式化结果")
        return text


def safe_format(template: str, args: Any, kwargs: Any) -> str:
    """``template.format(*args, **kwargs)`` under the guards."""
    text = _SafeFormatter().vformat(template, args, kwargs)
    _grow(len(text), "格式化结果")
    return text


def fstring(template: str, *values: Any) -> str:
    """An f-string, compiled into a ``str.format`` template and its values (see :mod:`engine.script_policy`)."""
    return safe_format(template, values, {})


def percent_format(fmt: str | bytes | bytearray, args: Any) -> str | bytes:
    """``fmt % args``, one conversion at a time with Python's own ``%``, so the total stays bounded."""
    is_bytes = not isinstance(fmt, str)
    text = fmt if isinstance(fmt, str) else fmt.decode("latin-1")
    excluded = (tuple, bytes, bytearray) if is_bytes else (tuple, str)
    mapping = args if hasattr(type(args), "__getitem__") and not isinstance(args, excluded) else None
    positional = args if isinstance(args, tuple) else (args,)
    pieces: list[Any]  # all str for a str template, all bytes for a bytes one: the join below takes them
    used, pieces, total, i, n = 0, [], 0, 0, len(text)

    def next_arg() -> Any:
        nonlocal used
        if used >= len(positional):
            raise TypeError("not enough arguments for format string")
        used += 1
        return positional[used - 1]

    while i < n:
        j = text.find("%", i)
        j = n if j < 0 else j
        pieces.append(fmt[i:j])
        total += j - i
        if j == n:
            break
        k, key = j + 1, None
        if k < n and text[k] == "(":
            depth, start = 1, k + 1
            k += 1
            while k < n and depth:
                depth += (text[k] == "(") - (text[k] == ")")
                k += 1
            if depth:
                raise ValueError("incomplete format key")
            key = text[start:k - 1]
        spec_start = k
        while k < n and text[k] in "#0- +":
            k += 1
        spec = text[spec_start:k]
        for part in ("width", "precision"):
            if part == "precision":
                if k >= n or text[k] != ".":
                    break
                spec += "."
                k += 1
            if k < n and text[k] == "*":
                number = next_arg()
                if not isinstance(number, int):
                    raise TypeError("* wants int")
                _check_length(abs(number), "格式宽度")
                spec += str(number)
                k += 1
                continue
            m = k
            while k < n and text[k].isdigit():
                k += 1
            if k > m:
                _check_length(int(text[m:k]) if k - m < 8 else _limits().max_length + 1, "格式宽度")
                spec += text[m:k]
        while k < n and text[k] in "hlL":
            k += 1
        if k >= n:
            raise ValueError("incomplete format")
        conversion = text[k]
        k += 1
        if conversion == "%":
            piece: str | bytes | bytearray = fmt[k - 1:k]
        else:
            if key is not None:
                if mapping is None:
                    raise TypeError("format requires a mapping")
                value = mapping[key.encode("latin-1") if is_bytes else key]
            else:
                value = next_arg()
            if conversion in "rsab":
                check_size(value)
            one = "%" + spec + conversion
            piece = (one.encode("latin-1") if is_bytes else one) % (value,)
        total += len(piece)
        _check_length(total, "格式化结果")
        pieces.append(piece)
        i = k
    if mapping is None and used < len(positional):
        raise TypeError("not all arguments converted during string formatting")
    _grow(total, "格式化结果")
    return (b"" if is_bytes else "").join(pieces)


# --- builtins -------------------------------------------------------------------------------------------
class _GuardedType(type):
    """Metaclass of the builtin types handed to diagram code (``str``, ``list``…): ``isinstance`` still works."""

    real: type

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, cls.real)

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, cls.real)

    def __repr__(cls) -> str:
        return repr(cls.real)


def _guarded_type(real: type, check_input: bool) -> _GuardedType:
    def new(cls: type, *args: Any, **kwargs: Any) -> Any:
        if check_input and len(args) == 1 and not kwargs:
            check_size(args[0])  # str() of a container prints every element
        value = real(*args, **kwargs)
        _grow(len(value))
        return value

    return _GuardedType(real.__name__, (), {"real": real, "__new__": new, "__slots__": ()})


_GUARDED_TYPES = {t.real: t for t in (_guarded_type(str, check_input=True), _guarded_type(list, False),
                                      _guarded_type(dict, False), _guarded_type(set, False))}


def guard_repr(value: Any) -> str:
    check_size(value)
    return repr(value)


def guard_range(*args: Any) -> range:
    r = range(*args)
    try:
        n = len(r)
    except OverflowError:
        n = _limits().max_length + 1
    _check_length(n, "range ")
    return r


def guard_sum(iterable: Iterable[Any], /, start: Any = 0) -> Any:
    if not isinstance(start, (int, float, complex)):
        raise ExpressionError("sum() 只能对数字求和；拼接列表或文本请用 + 或 join (sum only adds numbers)")
    return sum(iterable, start)


def guard_sorted(iterable: Iterable[Any], /, **kwargs: Any) -> list[Any]:
    out = sorted(iterable, **kwargs)
    _grow(len(out))
    return out


def guard_round(number: Any, ndigits: Any = None) -> Any:
    if isinstance(number, int) and isinstance(ndigits, int) and ndigits < 0:
        _refuse_bits(-ndigits * 3.33)  # rounding an int to 10**-ndigits builds that power first
    return round(number) if ndigits is None else round(number, ndigits)


def guard_zip(*iterables: Iterable[Any], strict: bool = False) -> Iterator[tuple[Any, ...]]:
    width, produced = len(iterables), 0
    for item in guarded_iter(zip(*iterables, strict=strict)):
        produced += width
        _check_length(produced, "zip ")
        yield item


class BoundedPrintCollector(PrintCollector):
    """``print()`` in a script: the first :data:`PRINT_KEEP` characters are kept for the log, the rest dropped."""

    def __init__(self, _getattr_: Any = None) -> None:
        super().__init__(_getattr_)
        self.kept = 0

    def write(self, text: str) -> None:
        room = PRINT_KEEP - self.kept
        if room > 0:
            self.txt.append(text[:room])
            self.kept += min(len(text), room)

    def _call_print(self, *objects: Any, **kwargs: Any) -> None:
        if kwargs.get("file") is not None:
            raise ExpressionError("print() 只能输出到脚本日志，不支持 file= (print to a file is not supported)")
        for obj in objects:
            check_size(obj)
        kwargs["file"] = self
        print(*objects, **kwargs)


# --- attributes -----------------------------------------------------------------------------------------
def _width(s: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    width = args[0] if args else kwargs.get("width", 0)
    if isinstance(width, int):
        _check_length(width)


def _expandtabs(s: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    size = args[0] if args else kwargs.get("tabsize", 8)
    if isinstance(size, int):
        _check_length(len(s) + s.count("\t" if isinstance(s, str) else b"\t") * max(size, 0))


def _replace(s: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if len(args) >= 2 and isinstance(args[0], type(s)) and isinstance(args[1], type(s)):
        old, new = args[0], args[1]
        count = args[2] if len(args) > 2 else kwargs.get("count", -1)
        times = s.count(old) if old else len(s) + 1
        if isinstance(count, int) and count >= 0:
            times = min(times, count)
        _check_length(len(s) + times * max(len(new) - len(old), 0))


def _translate(s: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    table = args[0] if args else None
    if isinstance(table, dict):
        longest = max((len(v) for v in table.values() if isinstance(v, str)), default=1)
        _check_length(len(s) * max(longest, 1))


_TEXT_CHECKS: dict[str, Callable[[Any, tuple[Any, ...], dict[str, Any]], None]] = {
    "ljust": _width, "rjust": _width, "center": _width, "zfill": _width, "expandtabs": _expandtabs,
    "replace": _replace, "translate": _translate,
}
_TEXT_SPECIAL = frozenset({"join", "format", "format_map"})
_CONTAINER_METHODS = frozenset({"copy", "fromkeys", "union", "intersection", "difference",
                                "symmetric_difference"})


def _join(sep: Any, iterable: Iterable[Any]) -> Any:
    items = iterable if isinstance(iterable, (list, tuple)) else _bounded_list(iterable, _limits().max_length)
    try:
        total = sum(map(len, items)) + len(sep) * max(len(items) - 1, 0)
    except TypeError:
        total = 0  # not all text: join raises its own TypeError
    _grow(total)
    return sep.join(items)


def _checked(obj: Any, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    """A method whose result is counted (and, for the text methods that take a size, checked first)."""
    check = _TEXT_CHECKS.get(name)

    def call(*args: Any, **kwargs: Any) -> Any:
        if check is not None:
            check(obj, args, kwargs)
        result = method(*args, **kwargs)
        if hasattr(result, "__len__"):
            _grow(len(result))
        return result

    return call


def _unbound(real: type, name: str) -> Callable[..., Any]:
    """``str.upper``, ``int.to_bytes``… taken from the type: the instance comes first."""
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(self, real):
            return getattr(real, name)(self, *args, **kwargs)  # Python's own TypeError
        return guarded_getattr(self, name)(*args, **kwargs)

    return call


def _to_bytes(number: int) -> Callable[..., bytes]:
    def to_bytes(*args: Any, **kwargs: Any) -> bytes:
        length = args[0] if args else kwargs.get("length", 1)
        if isinstance(length, int):
            _grow(length)
        return number.to_bytes(*args, **kwargs)

    return to_bytes


def _from_bytes(data: Any, *args: Any, **kwargs: Any) -> int:
    if hasattr(data, "__len__"):
        _refuse_bits(len(data) * 8)
    return int.from_bytes(data, *args, **kwargs)


_TEXT_TYPES = (str, bytes, bytearray)
_CONTAINERS = (list, dict, set)


def _text_attribute(text: Any, name: str, default: Any) -> Any:
    if name == "format" and type(text) is str:
        return lambda *args, **kwargs: safe_format(text, args, kwargs)
    if name == "format_map" and type(text) is str:
        return lambda mapping: safe_format(text, (), mapping)
    if name == "join":
        return lambda iterable: _join(text, iterable)
    value = safer_getattr(text, name, default)
    return _checked(text, name, value) if callable(value) else value


def guarded_getattr(obj: Any, name: str, default: Any = None) -> Any:
    """``_getattr_``: RestrictedPython's ``safer_getattr`` plus size guards on the methods that allocate."""
    if type(obj) is _GuardedType:
        obj = obj.real  # ``str.join``, ``dict.fromkeys``… are the real type's
    kind = type(obj)
    if kind in _TEXT_TYPES:
        return _text_attribute(obj, name, default)
    if obj in _TEXT_TYPES and (name in _TEXT_CHECKS or name in _TEXT_SPECIAL):
        return _unbound(obj, name)  # str.ljust(s, n)
    if name == "to_bytes" and (obj is int or isinstance(obj, int)):
        return _to_bytes(obj) if isinstance(obj, int) else _unbound(int, name)  # else: obj is int
    if name == "from_bytes" and (obj is int or isinstance(obj, int)):
        return _from_bytes
    if name == "extend" and kind is list:
        return _extender(obj)
    value = safer_getattr(obj, name, default)
    if name in _CONTAINER_METHODS and callable(value) and (kind in _CONTAINERS or obj in _CONTAINERS):
        return _checked(obj, name, value)
    return value


def builtins_for_diagrams(base: dict[str, Any]) -> dict[str, Any]:
    """``base`` with the builtins that can explode in one call replaced by their guarded versions."""
    out = {k: v for k, v in base.items() if k != "__build_class__"}
    out.update({real.__name__: guarded for real, guarded in _GUARDED_TYPES.items()})
    out.update(repr=guard_repr, range=guard_range, pow=guard_pow, sum=guard_sum, sorted=guard_sorted,
               round=guard_round, zip=guard_zip)
    return out
