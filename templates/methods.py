"""The generated forward, split into methods that mirror Detectron2's modules.

`render.py` writes the forward as one statement list; this module cuts it into blocks (the stem,
each bottleneck, each decoder stage, each head), finds each block's inputs and results by reading
the code it wrote (`ast`: names read before they are written, names later blocks read), and
gives each block's locals names relative to the block (`res4_3_conv1` -> `conv1`). Blocks whose
code is the same once their layer names are a parameter become one method called once per block,
as Tenstorrent's hand-written model runs all its res4 blocks through one function.
"""

from __future__ import annotations

import ast
import keyword
import re
import textwrap
from dataclasses import dataclass


@dataclass(frozen=True)
class Block:
    """Consecutive forward statements of one Detectron2 module."""

    role: str  # what the module is: "stem", "bottleneck", "decoder_res3", "head", ...
    module: str  # its Detectron2 path, e.g. "backbone.res4.3"
    name: str  # its method's name when no other block shares the code, e.g. "res4_3"
    prefixes: tuple[str, ...]  # the Python name prefixes of its tensors, e.g. ("res4_3_",)
    code: str  # statements, indented 8


@dataclass(frozen=True)
class Method:
    name: str
    doc: str
    params: tuple[str, ...]  # after self (and `name` when shared)
    named: bool  # takes the module path as `name`
    taps: bool
    body: str
    returns: tuple[str, ...]


@dataclass(frozen=True)
class Call:
    method: str
    module: str
    args: tuple[str, ...]
    taps: bool
    results: tuple[str, ...]

    def line(self, named: bool) -> str:
        args = ([f'"{self.module}"'] if named else []) + list(self.args) + (["taps"] if self.taps else [])
        call = f"self.{self.method}({', '.join(args)})"
        return f"{', '.join(self.results)} = {call}" if self.results else call


_INPUT_NAMES = ("x", "y", "z", "u", "v", "w")


def _reads_writes(code: str) -> tuple[list[str], list[str]]:
    """(names read before the block writes them, names the block writes), in order of appearance."""
    reads: list[str] = []
    writes: list[str] = []
    for stmt in ast.parse(textwrap.dedent(code)).body:
        names = [n for n in ast.walk(stmt) if isinstance(n, ast.Name)]
        for n in names:
            if isinstance(n.ctx, ast.Load) and n.id not in writes and n.id not in reads:
                reads.append(n.id)
        for n in names:
            if isinstance(n.ctx, ast.Store) and n.id not in writes:
                writes.append(n.id)
    return reads, writes


def _rename(code: str, mapping: dict[str, str]) -> str:
    if not mapping:
        return code
    pattern = re.compile(r"(?<![\w.\"'])(" + "|".join(map(re.escape, sorted(mapping, key=len, reverse=True))) + r")\b")
    return pattern.sub(lambda m: mapping[m.group(1)], code)


def _short(name: str, prefixes: tuple[str, ...], taken: set[str]) -> str:
    for prefix in prefixes:
        short = name[len(prefix) :]
        if name.startswith(prefix) and short.isidentifier() and not keyword.iskeyword(short) and short not in taken:
            return short
    return name


def _relative_comments(code: str, module: str) -> str:
    """Comments name layers relative to the block ('backbone.res4.3.conv1: ...' -> 'conv1: ...'); a comment
    naming just the block goes (the method's docstring names it)."""
    lines = []
    for line in code.splitlines(keepends=True):
        text = line.strip()
        if text.startswith("#"):
            if text == f"# {module}":
                continue
            line = line.replace(f"# {module}.", "# ").replace(f"# {module}:", "#").replace(f"# {module} ", "# ")
        lines.append(line)
    return "".join(lines)


def split(
    blocks: list[Block], forward_args: tuple[str, ...], outputs: tuple[str, ...]
) -> tuple[list[Method], list[Call]]:
    """Methods and the forward's calls of them, in program order."""
    rw = [_reads_writes(b.code) for b in blocks]
    local = set(forward_args).union(*(w for _, w in rw))
    params = [[r for r in reads if r in local] for reads, _ in rw]
    results: list[list[str]] = [[] for _ in blocks]
    needed = set(outputs)
    for i in range(len(blocks) - 1, -1, -1):
        results[i] = [w for w in rw[i][1] if w in needed]
        needed = (needed - set(rw[i][1])) | set(params[i])

    groups: dict[tuple[str, str], list[int]] = {}
    bodies, signatures = [], []
    for i, (b, ps, rs, (reads, writes)) in enumerate(zip(blocks, params, results, rw, strict=True)):
        # inputs become x, y, z, ... ; the block's own tensors drop its prefix
        mapping = dict(zip(ps, _INPUT_NAMES, strict=False))
        reserved = {r for r in reads if r not in local} | {"self", "taps", "name"}
        for w in writes:
            if w not in mapping:
                mapping[w] = _short(w, b.prefixes, reserved | set(mapping.values()) | (set(writes) - {w}))
        body = _rename(_relative_comments(b.code, b.module), mapping)
        quoted = f'"{b.module}.'
        named = quoted in body or f'"{b.module}"' in body
        if named:
            body = body.replace(quoted, 'f"{name}.').replace(f'"{b.module}"', "name")
        bodies.append(body)
        signatures.append((tuple(mapping[p] for p in ps), named, "taps" in reads, tuple(mapping[r] for r in rs)))
        groups.setdefault((b.role, body + repr(signatures[-1])), []).append(i)

    methods, name_of, taken = [], {}, set()
    for members in groups.values():
        first = blocks[members[0]]
        base = first.name if len(members) == 1 else _shared_name(first.role, [blocks[i].name for i in members])
        name, k = base, 2
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        taken.add(name)
        params_, named, taps, returns = signatures[members[0]]
        doc = ", ".join(blocks[i].module for i in members)
        methods.append(Method(name, doc, params_, named, taps, bodies[members[0]], returns))
        name_of.update(dict.fromkeys(members, name))
    calls = [
        Call(name_of[i], b.module, tuple(params[i]), signatures[i][2], tuple(results[i])) for i, b in enumerate(blocks)
    ]
    return methods, calls


def _shared_name(role: str, names: list[str]) -> str:
    """'res4_bottleneck' for res4_2 .. res4_5; 'decoder_res3' for sem_decoder_res3 and ins_decoder_res3."""
    common = []
    for parts in zip(*(n.split("_") for n in names), strict=False):
        if len(set(parts)) > 1:
            break
        common.append(parts[0])
    prefix = "_".join(common)
    return f"{prefix}_{role}" if prefix and not role.startswith(prefix) else role
