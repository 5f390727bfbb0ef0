"""How diagram code is compiled: RestrictedPython's rules plus the hooks the limits need.

:class:`LimitingTransformer` is RestrictedPython's transformer (no imports, no ``_`` names, guarded attribute
and item access, see :mod:`engine.scripting`) that also

- puts ``_qifu_tick_()`` at the top of every ``while`` body, function body and lambda (``for`` loops and
  comprehensions tick through ``_getiter_``), so no loop outlives the time limit;
- routes ``**``, ``*``, ``<<``, ``+`` and ``%`` through the size guards of :mod:`engine.script_guards`
  (RestrictedPython leaves binary operators alone, and each of these can be one huge C call);
- compiles an f-string into a ``str.format`` template for the safe formatter, and ``[*a, *b]``, ``{**a}``
  and ``f(*a)`` into a bounded :func:`~engine.script_guards.spread`;
- refuses ``class`` statements, and ``print`` in an expression (only a script collects what it prints).

:func:`check_constants` evaluates, when a diagram is deployed, every sub-expression made only of literals
(``'a' * 10**10``, ``10**10**10``) under the guards, so such a diagram is refused before it is stored.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Iterator
from typing import Any, cast

from RestrictedPython import compile_restricted_eval
from RestrictedPython.Guards import full_write_guard, guarded_iter_unpack_sequence, guarded_unpack_sequence
from RestrictedPython.transformer import RestrictingNodeTransformer, copy_locations

from . import script_guards as guards
from .errors import ExpressionError

TICK = "_qifu_tick_"
FSTRING = "_qifu_fstring_"
SPREAD = "_qifu_spread_"
_BINOP_GUARDS = {ast.Pow: "_qifu_pow_", ast.Mult: "_qifu_mul_", ast.LShift: "_qifu_lshift_",
                 ast.Add: "_qifu_add_", ast.Mod: "_qifu_mod_"}

# Every name compiled diagram code calls besides its builtins (all start with "_": source cannot name them).
RUNTIME_GLOBALS: dict[str, Any] = {
    "_getattr_": guards.guarded_getattr,
    "_getitem_": guards.guarded_getitem,
    "_getiter_": guards.guarded_iter,
    "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
    "_unpack_sequence_": guarded_unpack_sequence,
    "_write_": full_write_guard,
    "_inplacevar_": guards.inplacevar,
    "_print_": guards.BoundedPrintCollector,
    "_apply_": guards.apply,
    TICK: guards.tick,
    FSTRING: guards.fstring,
    SPREAD: guards.spread,
    "_qifu_pow_": guards.guard_pow,
    "_qifu_mul_": guards.guard_mul,
    "_qifu_lshift_": guards.guard_lshift,
    "_qifu_add_": guards.guard_add,
    "_qifu_mod_": guards.guard_mod,
}


def _call(name: str, args: list[ast.expr], like: ast.stmt | ast.expr) -> ast.Call:
    node = ast.Call(func=ast.Name(name, ast.Load()), args=args, keywords=[])
    copy_locations(node, like)
    return node


class LimitingTransformer(RestrictingNodeTransformer):
    """RestrictedPython's policy with ticks, size guards, safe f-strings and bounded unpacking."""

    # RestrictedPython types every visit_* as returning AST | Iterable[AST] | None; the ones extended here
    # return the node they were given, hence the casts.
    def visit_Expression(self, node: ast.Expression) -> Any:
        node = cast(ast.Expression, super().visit_Expression(node))
        if self.print_info.print_used or self.print_info.printed_used:
            self.error(node.body, "表达式中不能使用 print，只有脚本任务可以 (print only in scripts)")
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> Any:
        self.error(node, "不支持 class 定义 (class statements are not allowed)")
        return node

    def visit_While(self, node: ast.While) -> Any:
        node = cast(ast.While, super().visit_While(node))
        tick = ast.Expr(_call(TICK, [], node))
        copy_locations(tick, node)
        node.body.insert(0, tick)
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> Any:
        node = cast(ast.FunctionDef, super().visit_FunctionDef(node))
        tick = ast.Expr(_call(TICK, [], node))
        copy_locations(tick, node)
        node.body.insert(0, tick)
        return node

    def visit_Lambda(self, node: ast.Lambda) -> Any:
        node = cast(ast.Lambda, super().visit_Lambda(node))
        body = ast.BoolOp(op=ast.Or(), values=[_call(TICK, [], node.body), node.body])  # tick() is None
        copy_locations(body, node.body)
        node.body = body
        return node

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        node = cast(ast.BinOp, super().visit_BinOp(node))
        name = _BINOP_GUARDS.get(type(node.op))
        return node if name is None else _call(name, [node.left, node.right], node)

    # f-strings: f"a{x!r:>{w}}" → _qifu_fstring_("a{0!r:>{1}}", x, w), same order of evaluation
    def visit_JoinedStr(self, node: ast.JoinedStr) -> Any:
        values: list[ast.expr] = []
        template = self._template(node, values)
        return _call(FSTRING, [ast.Constant(template), *values], node)

    def _template(self, joined: ast.JoinedStr, values: list[ast.expr]) -> str:
        parts = []
        for piece in joined.values:
            if isinstance(piece, ast.Constant):
                parts.append(str(piece.value).replace("{", "{{").replace("}", "}}"))
            elif isinstance(piece, ast.FormattedValue):
                values.append(self.visit(piece.value))
                field = "{" + str(len(values) - 1)
                if piece.conversion != -1:
                    field += "!" + chr(piece.conversion)
                if piece.format_spec is not None:
                    assert isinstance(piece.format_spec, ast.JoinedStr)  # what the parser makes of a spec
                    field += ":" + self._template(piece.format_spec, values)
                parts.append(field + "}")
            else:  # pragma: no cover - nothing else occurs in an f-string
                self.not_allowed(piece)
        return "".join(parts)

    # unpacking into a new object: [*a, b], (*a,), {*a}, {**a, k: v}, f(*a)
    def _spread(self, kind: str, node: ast.expr, parts: list[ast.expr]) -> ast.Call:
        return _call(SPREAD, [ast.Constant(kind), *parts], node)

    def _starred_parts(self, elts: list[ast.expr]) -> list[ast.expr]:
        return [e.value if isinstance(e, ast.Starred) else ast.Tuple([e], ast.Load()) for e in elts]

    def visit_List(self, node: ast.List) -> Any:
        node = cast(ast.List, super().visit_List(node))
        if isinstance(node.ctx, ast.Load) and any(isinstance(e, ast.Starred) for e in node.elts):
            return self._spread("list", node, self._starred_parts(node.elts))
        return node

    def visit_Tuple(self, node: ast.Tuple) -> Any:
        node = cast(ast.Tuple, super().visit_Tuple(node))
        if isinstance(node.ctx, ast.Load) and any(isinstance(e, ast.Starred) for e in node.elts):
            return self._spread("tuple", node, self._starred_parts(node.elts))
        return node

    def visit_Set(self, node: ast.Set) -> Any:
        node = cast(ast.Set, super().visit_Set(node))
        if any(isinstance(e, ast.Starred) for e in node.elts):
            return self._spread("set", node, self._starred_parts(node.elts))
        return node

    def visit_Dict(self, node: ast.Dict) -> Any:
        node = cast(ast.Dict, super().visit_Dict(node))
        if any(k is None for k in node.keys):
            parts = [v if k is None else ast.Dict([k], [v]) for k, v in zip(node.keys, node.values, strict=True)]
            return self._spread("dict", node, parts)
        return node

    def visit_Call(self, node: ast.Call) -> Any:
        node = cast(ast.Call, super().visit_Call(node))  # with *args RestrictedPython made it _apply_(f, *args, **kwargs)
        if any(isinstance(a, ast.Starred) for a in node.args):
            spread = self._spread("tuple", node, self._starred_parts(node.args))
            node.args = [ast.Starred(spread, ast.Load())]
            copy_locations(node.args[0], spread)
        return node


# --- deploy-time evaluation of literal sub-expressions ---------------------------------------------------
_LITERAL_NODES = (ast.Constant, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Tuple,
                  ast.List, ast.Set, ast.Dict, ast.JoinedStr, ast.FormattedValue, ast.Starred, ast.Subscript,
                  ast.Slice, ast.operator, ast.unaryop, ast.boolop, ast.cmpop, ast.Load)


def _literal_roots(node: ast.AST) -> Iterator[ast.expr]:
    """The largest sub-expressions built only from literals that compute something."""
    if isinstance(node, ast.expr) and all(isinstance(n, _LITERAL_NODES) for n in ast.walk(node)):
        if any(isinstance(n, (ast.BinOp, ast.JoinedStr)) for n in ast.walk(node)):
            yield node
        return
    for child in ast.iter_child_nodes(node):
        yield from _literal_roots(child)


def check_constants(tree: ast.AST, limits: guards.Limits) -> None:
    """Evaluate every literal-only sub-expression under the guards; raise the guard's ExpressionError.

    Other errors (``1 / 0``) are left to run time, where they name the element that failed.
    """
    for node in _literal_roots(tree):
        result = compile_restricted_eval(ast.Expression(body=copy.deepcopy(node)), filename="<diagram>",
                                         policy=LimitingTransformer)
        if result.code is None:
            continue
        try:
            with guards.evaluation(limits):
                eval(result.code, {"__builtins__": {}, **RUNTIME_GLOBALS})  # literals, guarded
        except ExpressionError:
            raise
        except Exception:  # a run-time error of the diagram, reported when it runs
            continue
