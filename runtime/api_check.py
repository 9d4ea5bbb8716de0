"""Offline check of a Python file's ttnn usage against the real ttnn 0.81.1 API (api facts §4.1).

1. Every `ttnn.a.b.c` attribute chain must exist on the real ttnn.
2. Every `ttnn.f(...)` call must fit one real overload: positional count, keyword names,
   positional-only / keyword-only rules, required parameters. Signatures come from nanobind
   `__call__(self, ...)` lines of FastOperation implementations, `name(...)` lines of nanobind
   functions, `__init__(self, ...)` lines of classes, or inspect.signature (following
   `*args, **kwargs` wrappers into ttnn._ttnn.operations). Hand-written lines (with `\\*`) are
   relaxed: parameters optional, and keywords named in the docstring accepted.
3. Constructors whose arguments are all literals or ttnn constants are actually constructed with
   the real classes, so nanobind reports real type errors (e.g. Conv2dConfig(activation="relu")).

    python -m runtime.api_check generated/panoptic_deeplab.py   # prints problems, exit 1 if any
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.ttnn_host import import_ttnn

CONSTRUCTORS = frozenset(
    {
        "Conv2dConfig",
        "Conv2dSliceConfig",
        "Op2DSliceConfig",
        "MemoryConfig",
        "ShardSpec",
        "CoreRangeSet",
        "CoreRange",
        "CoreCoord",
        "CoreGrid",
        "UnaryWithParam",
        "WormholeComputeKernelConfig",
        "init_device_compute_kernel_config",
        "create_sharded_memory_config",
        "Tile",
        "Shape",
        "MeshShape",
    }
)


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # "pos_only" | "pos_or_kw" | "kw_only" | "var_pos" | "var_kw"
    required: bool


@dataclass(frozen=True)
class Overload:
    params: tuple[Param, ...]
    relaxed_keywords: frozenset[str] | None = None  # hand-written line: these extra keywords are fine too

    def mismatch(self, n_positional: int, keywords: list[str], partial: bool) -> str | None:
        """Why a call does not fit this overload, or None when it does."""
        positional = [p for p in self.params if p.kind in ("pos_only", "pos_or_kw")]
        var_pos = any(p.kind == "var_pos" for p in self.params)
        var_kw = any(p.kind == "var_kw" for p in self.params)
        if n_positional > len(positional) and not var_pos:
            return f"{n_positional} positional args, at most {len(positional)} accepted"
        filled = {p.name for p in positional[:n_positional]}
        by_name = {p.name: p for p in self.params if p.kind in ("pos_or_kw", "kw_only")}
        for kw in keywords:
            if kw in filled:
                return f"argument {kw!r} given twice"
            if kw not in by_name and not var_kw and not (self.relaxed_keywords and kw in self.relaxed_keywords):
                return f"unknown keyword {kw!r}"
            filled.add(kw)
        if not partial and self.relaxed_keywords is None:
            missing = [
                p.name
                for p in self.params
                if p.required and p.kind not in ("var_pos", "var_kw") and p.name not in filled
            ]
            if missing:
                return f"missing required argument {missing[0]!r}"
        return None


def _keyword(k: ast.keyword) -> str:
    """A literal call's keyword name; a `**mapping` argument makes the call not a literal."""
    if k.arg is None:
        raise _NotLiteral
    return k.arg


def _split_top(text: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    depth, quote = 0, None
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = None
            continue
        if ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    if "".join(cur).strip():
        parts.append("".join(cur).strip())
    return parts


def _params_text(line: str) -> str | None:
    start = line.find("(")
    depth = 0
    for i in range(start, len(line)):
        depth += {"(": 1, ")": -1}.get(line[i], 0)
        if depth == 0:
            return line[start + 1 : i]
    return None


def parse_signature_line(line: str, skip_self: bool) -> Overload | None:
    relaxed = "\\*" in line
    text = _params_text(line.replace("\\*", "*"))
    if text is None:
        return None
    params: list[Param] = []
    kw_only = False
    for part in _split_top(text):
        if part == "self" and skip_self:
            continue
        if part == "*":
            kw_only = True
            continue
        if part == "/":
            params = [Param(p.name, "pos_only", p.required) for p in params]
            continue
        name = re.split(r"[:=]", part, maxsplit=1)[0].strip()
        if name.startswith("**"):
            params.append(Param(name[2:], "var_kw", False))
        elif name.startswith("*"):
            params.append(Param(name[1:], "var_pos", False))
            kw_only = True
        else:
            has_default = "=" in part.replace("==", "")
            params.append(Param(name, "kw_only" if kw_only else "pos_or_kw", not has_default))
    return Overload(tuple(params), frozenset() if relaxed else None)


def _doc_overloads(doc: str | None, prefix: str, skip_self: bool) -> list[Overload]:
    found, seen = [], set()
    for raw in (doc or "").splitlines():
        line = re.sub(r"^\d+\.\s*", "", raw.strip()).strip("`")
        if line.startswith(prefix + "(") and line not in seen:
            seen.add(line)
            ov = parse_signature_line(line, skip_self)
            if ov is not None:
                if ov.relaxed_keywords is not None:
                    ov = Overload(ov.params, frozenset(re.findall(r"^\s*(\w+) \(", doc or "", re.M)))
                found.append(ov)
    return found


def _from_inspect(fn) -> list[Overload]:
    kinds = {
        inspect.Parameter.POSITIONAL_ONLY: "pos_only",
        inspect.Parameter.POSITIONAL_OR_KEYWORD: "pos_or_kw",
        inspect.Parameter.KEYWORD_ONLY: "kw_only",
        inspect.Parameter.VAR_POSITIONAL: "var_pos",
        inspect.Parameter.VAR_KEYWORD: "var_kw",
    }
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    return [
        Overload(
            tuple(Param(p.name, kinds[p.kind], p.default is inspect.Parameter.empty) for p in sig.parameters.values())
        )
    ]


def _is_wrapper(overloads: list[Overload]) -> bool:
    return len(overloads) == 1 and {p.kind for p in overloads[0].params} == {"var_pos", "var_kw"}


def _cpp_twin(ttnn, name: str):
    """ttnn._ttnn.operations.<x>.<name>: the binding a thin `*args, **kwargs` wrapper forwards to."""
    ops = ttnn._ttnn.operations
    for sub in dir(ops):
        obj = getattr(getattr(ops, sub), name, None)
        if obj is not None:
            return obj
    return None


def real_overloads(ttnn, obj, name: str) -> list[Overload]:
    """All call signatures of a real ttnn object ([] when they cannot be read)."""
    if inspect.isclass(obj):
        found = _doc_overloads(getattr(obj.__init__, "__doc__", None), "__init__", skip_self=True)
        return found or _from_inspect(obj)
    impl = getattr(obj, "function", None)
    if impl is not None and hasattr(obj, "python_fully_qualified_name"):
        found = _doc_overloads(getattr(type(impl).__call__, "__doc__", None), "__call__", skip_self=True)
        if found:
            return found
        obj = impl
    found = _doc_overloads(getattr(obj, "__doc__", None), name, skip_self=False)
    if found:
        return found
    found = _from_inspect(obj)
    if _is_wrapper(found):
        twin = _cpp_twin(ttnn, name)
        if twin is not None:
            return real_overloads(ttnn, twin, name)
    return found


class _NotLiteral(Exception):
    pass


class Checker(ast.NodeVisitor):
    def __init__(self, ttnn, filename: str) -> None:
        self.ttnn = ttnn
        self.filename = filename
        self.problems: set[tuple[int, str]] = set()

    def report(self, node: ast.expr | ast.stmt, message: str) -> None:
        self.problems.add((node.lineno, message))

    @staticmethod
    def chain(node: ast.AST) -> list[str] | None:
        names = []
        while isinstance(node, ast.Attribute):
            names.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id == "ttnn" and names:
            return list(reversed(names))
        return None

    def resolve(self, names: list[str]) -> tuple[Any, str | None]:
        obj = self.ttnn
        for i, n in enumerate(names):
            if not hasattr(obj, n):
                return None, "ttnn." + ".".join(names[: i + 1])
            obj = getattr(obj, n)
        return obj, None

    def visit_Attribute(self, node: ast.Attribute) -> None:
        names = self.chain(node)
        if names is not None:
            _, missing = self.resolve(names)
            if missing:
                self.report(node, f"{missing} does not exist in ttnn 0.81.1")
            return  # inner nodes of the chain are part of this one
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        names = self.chain(node.func)
        if names is not None:
            obj, missing = self.resolve(names)
            if missing is None:
                self.check_call(node, obj, names)
        self.generic_visit(node)

    def check_call(self, node: ast.Call, obj, names: list[str]) -> None:
        label = "ttnn." + ".".join(names)
        overloads = real_overloads(self.ttnn, obj, names[-1])
        if overloads:
            partial = any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords)
            n_pos = sum(1 for a in node.args if not isinstance(a, ast.Starred))
            kws = [k.arg for k in node.keywords if k.arg is not None]
            reasons = [ov.mismatch(n_pos, kws, partial) for ov in overloads]
            if all(reasons):
                self.report(node, f"{label}(...) matches no overload: {reasons[0]}")
                return
        if names[-1] in CONSTRUCTORS:
            try:
                args = [self.evaluate(a) for a in node.args]
                kwargs = {_keyword(k): self.evaluate(k.value) for k in node.keywords}
            except _NotLiteral:
                return
            try:
                obj(*args, **kwargs)
            except Exception as err:  # the real constructor's complaint is the finding
                first = str(err).strip().splitlines()[0] if str(err).strip() else ""
                self.report(node, f"evaluating {label}(...) failed: {type(err).__name__}: {first}")

    def evaluate(self, node: ast.AST):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -self.evaluate(node.operand)
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            items = [self.evaluate(e) for e in node.elts]
            return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](items)
        names = self.chain(node)
        if names is not None:
            obj, missing = self.resolve(names)
            if missing is None:
                return obj
        if isinstance(node, ast.Call):
            names = self.chain(node.func)
            if names is not None and names[-1] in CONSTRUCTORS:
                obj, missing = self.resolve(names)
                if missing is None:
                    try:
                        return obj(
                            *[self.evaluate(a) for a in node.args],
                            **{_keyword(k): self.evaluate(k.value) for k in node.keywords},
                        )
                    except _NotLiteral:
                        raise
                    except Exception:
                        raise _NotLiteral from None  # reported where that call itself is visited
        raise _NotLiteral


def check_source(source: str, filename: str = "<string>") -> list[str]:
    """Problems ("file:line: message") of one Python source against the real ttnn."""
    checker = Checker(import_ttnn(), filename)
    checker.visit(ast.parse(source, filename))
    return [f"{filename}:{line}: {message}" for line, message in sorted(checker.problems)]


def check_file(path: str | Path) -> list[str]:
    p = Path(path)
    return check_source(p.read_text(), p.name)


def main(argv: list[str] | None = None) -> int:
    problems = [p for f in (argv if argv is not None else sys.argv[1:]) for p in check_file(f)]
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
