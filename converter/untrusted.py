"""Bounds on files a user passes, checked before they are parsed: one place for all of them.

A checkpoint, config or overrides file is data, and data can be shaped to exhaust the parser: a
pickle nesting 200,000 tuples (the unpickler's objects then crash the interpreter), one growing its
memo to an index of 2**32 (the unpickler allocates a table that large), a YAML alias bomb (871 bytes
that expand to billions of nodes), a FIFO where a file should be (open() blocks forever). Each is
refused here with a UserError, before the real parser sees the bytes:

- `read_regular`: only a regular file is opened (O_NONBLOCK: a FIFO never blocks the open), and no
  more than a limit is read;
- `scan_pickle`: pickletools walks the opcodes without building anything; the scan tracks how deeply
  each object on the unpickler's stack nests, and bounds the nesting, the opcode count (so the object
  count) and the memo indices. What the allowed callables may build is bounded where they are allowed
  (converter/checkpoint.py);
- `load_yaml`: the YAML's events are read (PyYAML's parser is iterative) and an alias or a nesting
  deeper than a config ever needs is refused before the (recursive) composer builds anything.
"""

from __future__ import annotations

import io
import os
import pickletools
import stat
from pathlib import Path
from typing import Any

import yaml

from converter.errors import UserError

MAX_NESTING = 100  # a model-zoo checkpoint nests 6 deep, a config or overrides file 4
MAX_PICKLE_OPS = 1_000_000  # an R-52 checkpoint: ~13,000 opcodes (each array is one bytes record)
MAX_TEXT_BYTES = 1 << 24  # a config or overrides file: a few KB


def printable(text: str) -> str:
    """`text` with every control character escaped (`\\n`, `\\x1b`): one line, and nothing the
    terminal would act on; untrusted names (a pickle's globals, a file's keys) reach messages."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def read_regular(path: Path, what: str, limit: int | None = None) -> bytes:
    """The bytes of `path` if it is a regular file (of at most `limit` bytes); else a UserError."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise UserError(f"{what} {path} not found; pass an existing file") from None
    except OSError as e:
        raise UserError(f"cannot read {what} {path}: {e.strerror}; pass a readable file") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UserError(f"{what} {path} is not a regular file (a FIFO, device or directory); pass a file")
        if limit is not None and st.st_size > limit:
            raise UserError(f"{what} {path} has {st.st_size} bytes, more than the {limit} such a file can need")
        return f.read()


def read_text(path: Path, what: str) -> str:
    """A config or overrides file's text (UTF-8), or a UserError."""
    data = read_regular(path, what, MAX_TEXT_BYTES)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(
            f"{what} {path} is not UTF-8 text (byte {data[e.start]:#04x} at {e.start}); save it as UTF-8"
        ) from None


# Ops that add to a container already on the stack: the container keeps its depth unless what goes in
# is deeper (else a dict of 1000 entries would count 1000 levels).
_IN_PLACE = frozenset({"APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"})
_MEMO_PUT = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_MEMO_GET = frozenset({"GET", "BINGET", "LONG_BINGET"})


def _index(arg: object) -> int:
    """A memo opcode's argument (pickletools decodes it as an int)."""
    if not isinstance(arg, int):
        raise ValueError(f"memo index {arg!r}")
    return arg


def scan_pickle(data: bytes, what: str) -> None:
    """A UserError unless the pickle `data` stays within the bounds above (see the top)."""

    def refuse(why: str) -> UserError:
        return UserError(f"{what} {why}, which no checkpoint does, so it was not loaded")

    stack: list[int] = []  # nesting depth of each object the unpickler would hold
    marks: list[int] = []
    memo: dict[int, int] = {}
    try:
        for count, (op, arg, _) in enumerate(pickletools.genops(io.BytesIO(data))):
            if count >= MAX_PICKLE_OPS:
                raise refuse(f"holds more than {MAX_PICKLE_OPS} pickle opcodes")
            name = op.name
            if name == "MARK":
                marks.append(len(stack))
            elif name == "STOP":
                return
            elif name in _MEMO_PUT or name == "MEMOIZE":
                index = len(memo) if name == "MEMOIZE" else _index(arg)
                if not (0 <= index <= MAX_PICKLE_OPS):
                    raise refuse(f"stores a pickle memo entry at index {index}")
                memo[index] = stack[-1]
            elif name in _MEMO_GET:
                stack.append(memo[_index(arg)])
            else:
                before = op.stack_before
                below = before.index(pickletools.markobject) if pickletools.markobject in before else len(before)
                sliced: list[int] = []
                if below < len(before):  # the items above the last mark
                    sliced = stack[marks.pop() :]
                    del stack[len(stack) - len(sliced) :]
                if len(stack) < below:
                    raise ValueError("stack underflow")
                popped = stack[len(stack) - below :] + sliced
                del stack[len(stack) - below :]
                inner = 1 + max(popped[1:] if name in _IN_PLACE else popped, default=0)
                depth = max(popped[0], inner) if name in _IN_PLACE else inner
                if depth > MAX_NESTING:
                    raise refuse(f"nests objects more than {MAX_NESTING} deep")
                stack.extend([depth] * len(op.stack_after))
    except UserError:
        raise
    except Exception as e:  # not a pickle, truncated, an unknown opcode, a memo index never stored
        raise UserError(
            f"{what} is not a readable pickle ({type(e).__name__}); pass the checkpoint file itself"
        ) from None
    raise UserError(f"{what} is not a readable pickle (it has no STOP); pass the checkpoint file itself")


def check_yaml(text: str, what: str) -> None:
    """A UserError if the YAML `text` has an alias or nests deeper than MAX_NESTING (see the top);
    a yaml.YAMLError if it does not parse."""
    depth = 0
    for event in yaml.parse(io.StringIO(text), Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise UserError(
                f"{what} uses a YAML alias (*{printable(str(event.anchor))}); pdl2ttnn does not expand "
                "aliases (a few can expand to billions of values): write the values out"
            )
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_NESTING:
                raise UserError(f"{what} nests more than {MAX_NESTING} levels deep; no config needs that")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def load_yaml(text: str, what: str) -> Any:
    """`yaml.safe_load(text)` after `check_yaml`; a UserError for anything it refuses."""
    try:
        check_yaml(text, what)
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise UserError(f"{what} is not valid YAML: {printable(str(e).splitlines()[0])}") from None
