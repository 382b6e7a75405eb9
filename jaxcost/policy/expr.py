"""A small, safe expression language for export-control rule conditions.

Conditions such as ``"datacenter and 2400 <= tpp < 4800 and 1.6 <= pd < 5.92"`` are
tokenised and parsed by a recursive-descent parser into a tree of plain records. Nothing
is ever passed to Python's ``eval``: only the constructs below exist.

Grammar (lowest precedence first)::

    expr       := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := sum ((("<"|"<="|">"|">="|"=="|"!=") sum)+     # chained
                       | ["not"] "in" sum)?
    sum        := term (("+"|"-") term)*
    term       := unary (("*"|"/") unary)*
    unary      := ("-"|"+") unary | atom
    atom       := NUMBER | STRING | NAME | "True" | "False" | "(" expr ")"
                | "[" [expr ("," expr)*] "]"

Numbers may contain underscores (``26_900_000``) and exponents (``5.06e9``); strings
use single or double quotes without escapes.

Evaluation uses three-valued (Kleene) logic: a number that is NaN, or a name bound to
``None``, is *unknown*; a comparison involving an unknown is unknown (``None``);
``False and unknown`` is ``False``, ``True or unknown`` is ``True``. The caller decides
what an unknown condition means (export_control: "indeterminate").
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any


class ExprError(Exception):
    """A syntax or name/type error at ``position`` (0-based character offset)."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


# ---------------------------------------------------------------------------- tokens
_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?)
  | (?P<string>'[^']*'|"[^"]*")
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|==|!=|<|>|\+|-|\*|/|\(|\)|\[|\]|,)
    """,
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "True", "False"}


@dataclass(frozen=True)
class _Tok:
    kind: str  # number, string, name, kw, op, end
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i = 0
    while i < len(text):
        m = _TOKEN_RE.match(text, i)
        if m is None:
            raise ExprError(f"unexpected character {text[i]!r}", i)
        kind = m.lastgroup or ""
        if kind != "ws":
            tok_text = m.group()
            if kind == "name" and tok_text in _KEYWORDS:
                kind = "kw"
            if kind == "number" and ("__" in tok_text or tok_text.endswith("_")):
                raise ExprError(f"malformed number {tok_text!r}", i)
            toks.append(_Tok(kind, tok_text, i))
        i = m.end()
    toks.append(_Tok("end", "", len(text)))
    return toks


# ----------------------------------------------------------------------------- nodes
@dataclass
class Const:
    value: float | str | bool
    pos: int
    #: name of the threshold leaf when this number is an operand of a comparison
    #: (assigned by :func:`assign_threshold_names`).
    leaf: str | None = None


@dataclass
class Name:
    name: str
    pos: int


@dataclass
class ListExpr:
    items: list[Any]
    pos: int


@dataclass
class Unary:
    op: str  # "-" or "+"
    operand: Any
    pos: int


@dataclass
class BinOp:
    op: str  # + - * /
    left: Any
    right: Any
    pos: int


@dataclass
class BoolOp:
    op: str  # "and" / "or"
    operands: list[Any]
    pos: int


@dataclass
class Not:
    operand: Any
    pos: int


@dataclass
class Compare:
    operands: list[Any]
    ops: list[str]
    pos: int


@dataclass
class In:
    left: Any
    right: Any
    negated: bool
    pos: int


Node = Const | Name | ListExpr | Unary | BinOp | BoolOp | Not | Compare | In
_CMP_OPS = {"<", "<=", ">", ">=", "==", "!="}


# ---------------------------------------------------------------------------- parser
class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokenize(text)
        self.i = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def at(self, kind: str, text: str | None = None) -> bool:
        tok = self.peek()
        return tok.kind == kind and (text is None or tok.text == text)

    def expect(self, kind: str, text: str) -> _Tok:
        tok = self.peek()
        if tok.kind != kind or tok.text != text:
            found = "end of expression" if tok.kind == "end" else repr(tok.text)
            raise ExprError(f"expected {text!r}, found {found}", tok.pos)
        return self.take()

    def parse(self) -> Node:
        if self.at("end"):
            raise ExprError("empty expression", 0)
        node = self.or_expr()
        if not self.at("end"):
            tok = self.peek()
            raise ExprError(f"unexpected {tok.text!r}", tok.pos)
        return node

    def or_expr(self) -> Node:
        first = self.and_expr()
        operands = [first]
        while self.at("kw", "or"):
            self.take()
            operands.append(self.and_expr())
        return first if len(operands) == 1 else BoolOp("or", operands, _pos(first))

    def and_expr(self) -> Node:
        first = self.not_expr()
        operands = [first]
        while self.at("kw", "and"):
            self.take()
            operands.append(self.not_expr())
        return first if len(operands) == 1 else BoolOp("and", operands, _pos(first))

    def not_expr(self) -> Node:
        if self.at("kw", "not"):
            tok = self.take()
            return Not(self.not_expr(), tok.pos)
        return self.comparison()

    def comparison(self) -> Node:
        left = self.sum()
        if self.at("op") and self.peek().text in _CMP_OPS:
            operands, ops = [left], []
            while self.at("op") and self.peek().text in _CMP_OPS:
                ops.append(self.take().text)
                operands.append(self.sum())
            return Compare(operands, ops, _pos(left))
        if self.at("kw", "in"):
            self.take()
            return In(left, self.sum(), False, _pos(left))
        if self.at("kw", "not") and self.toks[self.i + 1].text == "in":
            self.take()
            self.take()
            return In(left, self.sum(), True, _pos(left))
        return left

    def sum(self) -> Node:
        node = self.term()
        while self.at("op") and self.peek().text in ("+", "-"):
            op = self.take().text
            node = BinOp(op, node, self.term(), _pos(node))
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.at("op") and self.peek().text in ("*", "/"):
            op = self.take().text
            node = BinOp(op, node, self.unary(), _pos(node))
        return node

    def unary(self) -> Node:
        if self.at("op") and self.peek().text in ("-", "+"):
            tok = self.take()
            return Unary(tok.text, self.unary(), tok.pos)
        return self.atom()

    def atom(self) -> Node:
        tok = self.peek()
        if tok.kind == "number":
            self.take()
            return Const(float(tok.text.replace("_", "")), tok.pos)
        if tok.kind == "string":
            self.take()
            return Const(tok.text[1:-1], tok.pos)
        if tok.kind == "kw" and tok.text in ("True", "False"):
            self.take()
            return Const(tok.text == "True", tok.pos)
        if tok.kind == "name":
            self.take()
            return Name(tok.text, tok.pos)
        if tok.kind == "op" and tok.text == "(":
            self.take()
            node = self.or_expr()
            self.expect("op", ")")
            return node
        if tok.kind == "op" and tok.text == "[":
            self.take()
            items: list[Node] = []
            if not self.at("op", "]"):
                items.append(self.or_expr())
                while self.at("op", ","):
                    self.take()
                    items.append(self.or_expr())
            self.expect("op", "]")
            return ListExpr(items, tok.pos)
        found = "end of expression" if tok.kind == "end" else repr(tok.text)
        raise ExprError(f"expected a value, found {found}", tok.pos)


def _pos(node: Node) -> int:
    return node.pos


def parse(text: str) -> Node:
    """Parse ``text`` into an expression tree.

    Raises:
      ExprError: on a syntax error, with the 0-based position of the offending token.
    """
    if not isinstance(text, str):
        raise ExprError(f"expected a string, got {type(text).__name__}", 0)
    return _Parser(text).parse()


# ------------------------------------------------------------------- static checks
def names(node: Node) -> list[tuple[str, int]]:
    """All ``(name, position)`` pairs used in ``node``, in order."""
    out: list[tuple[str, int]] = []

    def walk(n: Node) -> None:
        if isinstance(n, Name):
            out.append((n.name, n.pos))
        for child in _children(n):
            walk(child)

    walk(node)
    return out


def _children(n: Node) -> list[Node]:
    if isinstance(n, ListExpr):
        return list(n.items)
    if isinstance(n, Unary | Not):
        return [n.operand]
    if isinstance(n, BinOp):
        return [n.left, n.right]
    if isinstance(n, BoolOp | Compare):
        return list(n.operands)
    if isinstance(n, In):
        return [n.left, n.right]
    return []


def check(node: Node, name_types: dict[str, str]) -> str:
    """Check names and types; return the type of ``node``.

    Types: ``"num"``, ``"str"``, ``"bool"``, ``"list"``. ``name_types`` maps every
    allowed name to its type.

    Raises:
      ExprError: unknown name (the message lists the allowed names) or a type error.
    """
    if isinstance(node, Const):
        v = node.value
        return "bool" if isinstance(v, bool) else "str" if isinstance(v, str) else "num"
    if isinstance(node, Name):
        if node.name not in name_types:
            allowed = ", ".join(sorted(name_types))
            raise ExprError(f"unknown name {node.name!r} (allowed: {allowed})",
                            node.pos)
        return name_types[node.name]
    if isinstance(node, ListExpr):
        kinds = {check(item, name_types) for item in node.items}
        if len(kinds) > 1:
            raise ExprError("list items must all have the same type", node.pos)
        return "list"
    if isinstance(node, Unary):
        _want(node.operand, "num", name_types, f"operand of unary {node.op!r}")
        return "num"
    if isinstance(node, BinOp):
        _want(node.left, "num", name_types, f"left operand of {node.op!r}")
        _want(node.right, "num", name_types, f"right operand of {node.op!r}")
        return "num"
    if isinstance(node, BoolOp):
        for operand in node.operands:
            _want(operand, "bool", name_types, f"operand of {node.op!r}")
        return "bool"
    if isinstance(node, Not):
        _want(node.operand, "bool", name_types, "operand of 'not'")
        return "bool"
    if isinstance(node, Compare):
        kinds = [check(o, name_types) for o in node.operands]
        for op, a, b, right in zip(node.ops, kinds, kinds[1:], node.operands[1:],
                                   strict=False):
            if a != b:
                raise ExprError(f"cannot compare {a} with {b} using {op!r}", right.pos)
            if op not in ("==", "!=") and a != "num":
                raise ExprError(f"{op!r} needs numbers, got {a}", right.pos)
        return "bool"
    if isinstance(node, In):
        check(node.left, name_types)
        if check(node.right, name_types) != "list":
            raise ExprError("right operand of 'in' must be a [list]", node.right.pos)
        return "bool"
    raise ExprError("unsupported expression", 0)  # pragma: no cover


def _want(node: Node, kind: str, name_types: dict[str, str], what: str) -> None:
    got = check(node, name_types)
    if got != kind:
        raise ExprError(f"{what} must be {kind}, got {got}", node.pos)


def assign_threshold_names(node: Node, prefix: str) -> list[Const]:
    """Name every number that is a direct operand of a numeric comparison.

    The k-th such number (in source order) gets ``leaf = f"{prefix}/{k}"``. These are
    the thresholds a smooth classifier treats as differentiable leaves.
    """
    found: list[Const] = []

    def walk(n: Node) -> None:
        if isinstance(n, Compare):
            for o in n.operands:
                if isinstance(o, Const) and isinstance(o.value, float):
                    o.leaf = f"{prefix}/{len(found)}"
                    found.append(o)
        for child in _children(n):
            walk(child)

    walk(node)
    return found


# ------------------------------------------------------------------------ evaluation
def _unknown(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def evaluate(node: Node, env: dict[str, Any]) -> Any:
    """Evaluate ``node`` with three-valued logic; ``None`` means unknown.

    ``env`` maps names to floats (NaN = unknown), strings, bools or ``None`` (unknown).
    """
    if isinstance(node, Const):
        return node.value
    if isinstance(node, Name):
        return env[node.name]
    if isinstance(node, ListExpr):
        return [evaluate(i, env) for i in node.items]
    if isinstance(node, Unary):
        v = evaluate(node.operand, env)
        if _unknown(v):
            return math.nan
        return -float(v) if node.op == "-" else float(v)
    if isinstance(node, BinOp):
        a, b = evaluate(node.left, env), evaluate(node.right, env)
        if _unknown(a) or _unknown(b):
            return math.nan
        a, b = float(a), float(b)
        if node.op == "+":
            return a + b
        if node.op == "-":
            return a - b
        if node.op == "*":
            return a * b
        return a / b if b != 0 else math.nan
    if isinstance(node, BoolOp):
        values = [evaluate(o, env) for o in node.operands]
        if node.op == "and":
            if any(v is False for v in values):
                return False
            return None if any(v is None for v in values) else True
        if any(v is True for v in values):
            return True
        return None if any(v is None for v in values) else False
    if isinstance(node, Not):
        v = evaluate(node.operand, env)
        return None if v is None else not v
    if isinstance(node, Compare):
        values = [evaluate(o, env) for o in node.operands]
        results = []
        for op, a, b in zip(node.ops, values, values[1:], strict=False):
            results.append(None if _unknown(a) or _unknown(b) else _cmp(op, a, b))
        if any(r is False for r in results):
            return False
        return None if any(r is None for r in results) else True
    if isinstance(node, In):
        left = evaluate(node.left, env)
        items = evaluate(node.right, env)
        if _unknown(left):
            return None
        result = left in items
        return (not result) if node.negated else result
    raise TypeError(f"unsupported node {node!r}")  # pragma: no cover


def _cmp(op: str, a: Any, b: Any) -> bool:
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    if op == ">=":
        return a >= b
    if op == "==":
        return a == b
    return a != b


__all__ = ["ExprError", "parse", "check", "names", "evaluate", "assign_threshold_names",
           "Const", "Name", "ListExpr", "Unary", "BinOp", "BoolOp", "Not", "Compare",
           "In"]
