"""Every diagram expression and script is bounded: CPU time, and the size of what one operation builds.

The evaluations run in a helper thread joined with a timeout, so a protection that is missing makes the
test fail instead of hanging the suite.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from engine import script_guards
from engine.errors import ExpressionError
from engine.scripting import RestrictedEnvironment, ScriptLimits, compile_expression, compile_script

LIMIT = 0.5
BIG = "a" * 1_000_000


def bounded(fn: Callable[[], Any], seconds: float = 10.0) -> BaseException | Any:
    """Run ``fn`` in a daemon thread; its exception or result. Fails the test if it is still running."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(fn())
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s: the limit did not stop it"
    return outcome[0]


@pytest.fixture
def env() -> RestrictedEnvironment:
    return RestrictedEnvironment({}, ScriptLimits(time_limit=LIMIT))  # as a step's engine gets it from the settings


def refused(fn: Callable[[], Any], *needles: str, seconds: float = 10.0) -> ExpressionError:
    error = bounded(fn, seconds)
    assert isinstance(error, ExpressionError), error
    for needle in needles:
        assert needle in error.message, error.message
    return error


# --- time -------------------------------------------------------------------------------------------------
TIME = ("CPU 时间上限", "QIFU_EXPRESSION_TIME_LIMIT")
SPINNING_SCRIPTS = {
    "while loop": "i = 0\nwhile True:\n    i += 1",
    "for loop": "for i in range(10**6):\n    for j in range(10**6):\n        pass",
    "recursion that never gets deep": "def f(n):\n    return f(n - 1) + f(n - 1) if n else 1\nr = f(80)",
    "limit error caught and the loop restarted": ("while True:\n    try:\n        while True:\n            pass\n"
                                                  "    except BaseException:\n        pass"),
    "limit error caught and the script finishing": "try:\n    while True:\n        pass\nexcept Exception:\n    pass\nok = 1",
    "generator never exhausted": "def g():\n    while True:\n        yield 1\nn = sum(g())",
}
SPINNING_EXPRESSIONS = {
    "generator expression": "any(a < 0 for a in range(10**6) for b in range(10**6))",
    "lambda calling itself twice": "(lambda f: f(f, 80))(lambda f, n: f(f, n - 1) + f(f, n - 1) if n else 1)",
    "comprehension": "len([a for a in range(10**6) for b in range(10**6)])",
}


@pytest.mark.parametrize("name", sorted(SPINNING_SCRIPTS))
def test_a_script_that_never_ends_is_stopped_at_the_time_limit(env, name: str) -> None:
    started = time.monotonic()
    error = refused(lambda: env.execute(SPINNING_SCRIPTS[name], {}), *TIME)
    assert error.details["limit"] == "time"
    assert time.monotonic() - started < LIMIT + 5  # CPU time; a busy machine stretches the wall clock


@pytest.mark.parametrize("name", sorted(SPINNING_EXPRESSIONS))
def test_an_expression_that_never_ends_is_stopped_at_the_time_limit(env, name: str) -> None:
    refused(lambda: env.evaluate(SPINNING_EXPRESSIONS[name], {}), *TIME)


def test_the_limit_is_cpu_time_of_the_evaluating_thread(env) -> None:
    """Time the thread spends outside Python bytecode it runs itself (here: asleep) does not count."""
    env.globals["pause"] = lambda: time.sleep(LIMIT * 2) or 1
    assert bounded(lambda: env.evaluate("[pause() for i in range(2)]", {})) == [1, 1]


def test_nested_evaluations_share_the_outer_budget(env) -> None:
    seen: list[Any] = []

    def inner() -> int:
        seen.append(script_guards._current.get())
        return env.evaluate("probe()", {})

    env.globals.update(inner=inner, probe=lambda: seen.append(script_guards._current.get()) or 1)
    assert env.evaluate("inner()", {}) == 1
    assert seen[0] is not None and seen[0] is seen[1], "the nested evaluation must not get a fresh deadline"
    assert script_guards._current.get() is None


def test_one_threads_limit_does_not_touch_another_thread(env) -> None:
    """The deadline is per thread: a stuck evaluation in one thread leaves short ones elsewhere alone."""
    stop = threading.Event()
    results: list[Any] = []

    def quick() -> None:
        while not stop.is_set():
            try:
                results.append(env.evaluate("sum(x for x in range(100))", {}))
            except ExpressionError as exc:
                results.append(exc)
                return

    other = threading.Thread(target=quick, daemon=True)
    other.start()
    refused(lambda: env.execute(SPINNING_SCRIPTS["while loop"], {}), *TIME)
    time.sleep(0.05)
    stop.set()
    other.join(5)
    assert results and all(r == 4950 for r in results), [r for r in results if r != 4950][:1]


def test_time_limit_setting() -> None:
    from engine.settings import EngineSettings, SettingsError, read

    def limits(**env: str) -> ScriptLimits:
        return ScriptLimits.from_settings(read(EngineSettings, env))

    assert limits() == ScriptLimits()
    got = limits(QIFU_EXPRESSION_TIME_LIMIT="0.25", QIFU_MAX_STEP_TASKS="40", QIFU_MAX_STEP_SECONDS="3")
    assert (got.time_limit, got.max_step_tasks, got.max_step_seconds) == (0.25, 40, 3.0)
    for name, bad in (("QIFU_EXPRESSION_TIME_LIMIT", "soon"), ("QIFU_EXPRESSION_TIME_LIMIT", "-1"),
                      ("QIFU_MAX_STEP_TASKS", "1.5"), ("QIFU_MAX_STEP_SECONDS", "nan")):
        with pytest.raises(SettingsError, match=name):
            limits(**{name: bad})


# --- size: operations that are one C call ----------------------------------------------------------------
LENGTH, BITS, SIZE = "长度上限", "位的上限", "上限"
EXPLOSIONS = {
    # expression: words of the refusal
    "sum(range(10**9)) >= 0": ["range", LENGTH],
    "x ** 10**10": [BITS], "pow(x, 10**10)": [BITS], "pow(x, e, m)": [BITS],
    "x << 10**10": [BITS], "y * y * y": [BITS], "round(x, -10**8)": [BITS],
    "s * 10**10": [LENGTH], "10**10 * s": [LENGTH], "[0] * n": [LENGTH], "(0,) * n": [LENGTH],
    "big + big": [LENGTH], "[*range(10**6), *range(10**6)]": [LENGTH], "{*range(10**6), *range(10**6)}": [LENGTH],
    "max(*range(10**6), *range(10**6))": [LENGTH], "big[:] + big[:]": [LENGTH],
    "'%*d' % (n, 1)": ["格式宽度"], "'%10000000000s' % s": ["格式宽度"], "'%s' * 2000 % ((big,) * 2000)": ["格式化结果"],
    "'{:>10000000000}'.format(s)": ["格式宽度"], "'{0}{0}'.format(big)": ["格式化结果"],
    "f'{s:>{n}}'": ["格式宽度"], "f'{big}{big}'": ["格式化结果"],
    "s.ljust(n)": [LENGTH], "s.rjust(n)": [LENGTH], "s.center(n)": [LENGTH], "s.zfill(n)": [LENGTH],
    "'\\t'.expandtabs(n)": [LENGTH], "big.replace('a', 'aa')": [LENGTH], "big.join([big, big])": [LENGTH],
    "'xx'.translate({120: big})": [LENGTH], "str.center(s, n)": [LENGTH], "big.encode().hex().upper()": [LENGTH],
    "(0).to_bytes(n, 'big')": [LENGTH], "int.from_bytes(big.encode(), 'big')": [BITS],
    "str([big, big])": [SIZE], "repr([big] * 2)": [SIZE], "f'{[big] * 2}'": [SIZE], "'%s' % ([big] * 2,)": [SIZE],
    "'{}'.format([big] * 2)": [SIZE], "str({'k': [big] * 2})": [SIZE],
    "sum([[0] * 1000] * 1000, [])": ["sum()"], "list(zip(*[range(10**6)] * 2))": ["zip", LENGTH],
    "sorted(range(10**6)) + sorted(range(10**6))": [LENGTH],
    "[big * 1 for i in range(20)]": ["合计", "total size limit"],
    "[lst[:] for i in range(20)]": ["合计"], "[list(lst) for i in range(20)]": ["合计"],
    "[sorted(lst) for i in range(20)]": ["合计"], "[lst.copy() for i in range(20)]": ["合计"],
}


@pytest.mark.parametrize("expression", sorted(EXPLOSIONS))
def test_an_operation_that_would_explode_in_one_call_is_refused_first(env, expression: str) -> None:
    data = {"x": 10, "y": 7**3000, "e": 2**100_000 - 1, "m": 3**20_000, "s": "a", "n": 10**9, "big": BIG,
            "lst": [0] * 1_000_000}
    started = time.monotonic()
    refused(lambda: env.evaluate(expression, dict(data)), *EXPLOSIONS[expression], seconds=5)
    assert time.monotonic() - started < 3, "refused before the work, not after it"


GROWING_SCRIPTS = {
    # script: words of the refusal (never the time limit: these stop long before it)
    "list doubling": ("a = [0]\nwhile True:\n    a.extend(a)", "长度上限"),
    "text doubling": ("s = 'ab'\nwhile True:\n    s = s + s", "长度上限"),
    "in-place doubling": ("s = 'ab'\nwhile True:\n    s += s", "长度上限"),
    "list repetition in place": ("a = [0, 0]\nwhile True:\n    a *= 2", "长度上限"),
    "hex doubling": ("b = b'ab'\nwhile True:\n    b = b.hex().encode()", "长度上限"),
    "unpacking doubling": ("a = [0]\nwhile True:\n    a = [*a, *a]", "长度上限"),
    "generator into a list": ("def g():\n    while True:\n        yield 1\nitems = []\nitems += g()", "长度上限"),
    "print of a huge list": ("print(['a' * 10**6] * 10**3)", "数据过大"),
    "data written back": ("x = ['a' * 10**6] * 10**3", "脚本写入的数据过大"),
}


@pytest.mark.parametrize("name", sorted(GROWING_SCRIPTS))
def test_a_script_cannot_grow_a_value_past_the_bound(name: str) -> None:
    source, words = GROWING_SCRIPTS[name]
    roomy = RestrictedEnvironment({}, ScriptLimits(time_limit=30))
    refused(lambda: roomy.execute(source, {}), words, seconds=20)


@pytest.mark.parametrize("source", ["'a' * 10**10", "10**10**10", "[0] * 10**9", "(1 << 10**9) > 0",
                                    "f'{1:>{10**10}}'", "'%s' % 'x' * 10**10"])
def test_a_literal_that_breaks_a_bound_is_refused_when_compiled(source: str) -> None:
    error = refused(lambda: compile_expression(source), seconds=5)
    assert error.details["source"] == source
    refused(lambda: compile_script(f"x = {source}"), seconds=5)


def test_literals_within_the_bounds_compile() -> None:
    for source in ("'-' * 40", "2 ** 64", "10 ** 3000", "[0] * 1000", "1 / 0", "f'{1:>10}'"):
        compile_expression(source)


# --- ordinary Python --------------------------------------------------------------------------------------
DATA = {"x": 3, "name": "张三", "items": [1, 2, 3], "d": {"a": 1, "b": 2}, "w": 6, "f": 1.23456}
EXPRESSIONS = [
    'f"{x}"', 'f"{x!r:>{w}}|"', 'f"{name=}"', 'f"{{}} {x:05d} {f:.2f}"', 'f"{items}"', 'f"{d!s:^20}"',
    '"%s-%d" % (name, x)', '"%(a)s/%(b)05d" % d', '"%*d|%-*.*f" % (5, x, 9, 2, f)', '"%.3f%%" % f',
    '"%s" % (items,)', '"%s" % d', '"%r %a" % (name, name)', 'b"%s %d %%" % (b"ab", 3)', '"abc" % ()', '"abc" % []',
    '"{} {}".format(x, name)', '"{0[a]}{0[b]}".format(d)', '"{a}-{b}".format_map(d)', '"{:,}".format(10**7)',
    '[*items, 4]', '(*items, *items)', '{*items}', '{**d, "c": 3}', 'max(*items)', 'dict(**d)',
    '",".join(str(i) for i in items)', 'sum(range(10))', 'sorted(items, key=lambda v: -v)',
    'list(zip(items, "abc"))', 'isinstance(name, str)', 'isinstance(items, (list, dict))', 'str(items)', 'repr(d)',
    'str.upper("ab")', '"ab".ljust(5, "*")', '"a\\tb".expandtabs(4)', 'items[::-1]', '2**10', '2**-1', '-2**3',
    '"ab" * 3', '3 * [0]', '1 << 10', '7 % 3', 'round(2.675, 2)', 'round(1234, -2)', 'pow(2, 10, 7)',
    '(5).to_bytes(2, "big")', 'int.from_bytes(b"\\x01\\x00", "big")', 'list("ab")', 'set([1, 1])', 'd.copy()',
    '[i * j for i in range(3) for j in range(2)]', 'str(b"x", "ascii")', '"a-b".replace("-", "+")',
]


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_expressions_mean_what_python_means(env, expression: str) -> None:
    expected = eval(expression, dict(DATA))  # trusted test literal
    got = env.evaluate(expression, dict(DATA))
    assert got == expected and type(got) is type(expected)


SCRIPTS = {
    "tuple unpacking": ("a, b = 1, 2\nc, *rest = items\n(p, q), r = (1, 2), 3", dict(a=1, b=2, c=1, rest=[2, 3], p=1,
                                                                                    q=2, r=3)),
    "unpacking in a for loop": ("pairs = []\nfor k, v in d.items():\n    pairs.append(f'{k}={v}')", dict(
        pairs=["a=1", "b=2"])),
    "print": ("print('办理', x, sep=':')\nprint(items)\nshown = printed", dict(shown="办理:3\n[1, 2, 3]\n")),
    "format": ("msg = '{}号 {n:>3}'.format(x, n=name)\ntpl = '{a}+{b}'.format_map(d)", dict(msg="3号  张三",
                                                                                         tpl="1+2")),
    "string building": ("s = ''\nfor i in range(5):\n    s += str(i)\nt = '%s/%s' % (s, len(s))", dict(s="01234",
                                                                                               t="01234/5")),
    "functions and generators": ("def gen(n):\n    for i in range(n):\n        yield i * i\nsq = list(gen(4))",
                                 dict(sq=[0, 1, 4, 9])),
    "exceptions": ("try:\n    1 / 0\nexcept ZeroDivisionError:\n    caught = True", dict(caught=True)),
    "list methods": ("lst = [3]\nlst.extend(range(2))\nlst += [9]\nlst *= 2\nlst.sort()", dict(
        lst=[0, 0, 1, 1, 3, 3, 9, 9])),
}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_scripts_run_ordinary_python(env, name: str) -> None:
    source, expected = SCRIPTS[name]
    context = dict(DATA)
    env.execute(source, context)
    assert {k: context[k] for k in expected} == expected


def test_print_output_is_kept_small_and_never_shown(env, caplog: pytest.LogCaptureFixture) -> None:
    context: dict[str, Any] = {}
    with caplog.at_level("DEBUG", logger="engine.scripting"):
        env.execute("for i in range(3000):\n    print('第', i, '行')", context)
    assert context == {"i": 2999}
    logged = "".join(r.getMessage() for r in caplog.records)
    assert "第 0 行" in logged and len(logged) < script_guards.PRINT_KEEP + 100
    refused(lambda: env.execute("print('x', file=items)", {"items": []}), "file=")


@pytest.mark.parametrize("source", ["'{0.__class__}'.format(1)", "'{0.__class__.__mro__}'.format(x)",
                                    "'{0[_secret]}'.format(d)", "'{d.__init__.__globals__}'.format(d=d)",
                                    "'{a.__class__}'.format_map({'a': 1})", "str.format('{0.__doc__}', 1)"])
def test_format_cannot_reach_underscore_names(env, source: str) -> None:
    refused(lambda: env.evaluate(source, {"x": 1, "d": {"_secret": 1}}), "_")


def test_print_is_refused_in_an_expression() -> None:
    refused(lambda: compile_expression("print(1)"), "print")


def test_class_statements_are_refused() -> None:
    refused(lambda: compile_script("class A:\n    pass"), "class")


def test_task_data_cannot_replace_a_guard(env) -> None:
    """Names a case's data could carry (``_getiter_``, ``__builtins__``) never replace the engine's own."""
    context = {"_getiter_": None, "_qifu_tick_": None, "__builtins__": {}, "v": 2}
    assert env.evaluate("[i * v for i in range(3)]", context) == [0, 2, 4]
    refused(lambda: env.execute("while True:\n    pass", dict(context)), *TIME)


def test_exit_and_interrupt_from_a_script_are_ordinary_errors(env) -> None:
    for exc in ("SystemExit", "KeyboardInterrupt", "GeneratorExit"):
        refused(lambda exc=exc: env.execute(f"raise {exc}", {}), exc)


def test_errors_of_diagram_code_are_bounded_and_say_where(env) -> None:
    error = refused(lambda: env.execute("a = 1\nb = missing", {}), "第 2 行", "NameError", "missing")
    assert error.details["source"] == "a = 1\nb = missing"
    refused(lambda: env.evaluate("(_ for _ in ()).throw(ValueError([big] * 1000))", {"big": BIG}), "省略")
