"""Fuzzing the loaders of untrusted files in-process: pickles assembled from opcodes (the model-zoo
checkpoint loader) and YAML assembled from tokens (the config and overrides loaders). Every input
must load or be refused with a UserError: no other exception, crash or hang."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from converter.checkpoint import unpickle_arrays
from converter.errors import UserError
from converter.untrusted import load_yaml
from passes.overrides import parse_overrides

FUZZ = settings(
    max_examples=10_000,
    derandomize=True,  # the same inputs on every run
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def _u(text: str) -> bytes:
    return b"X" + struct.pack("<I", len(text)) + text.encode()


_OPCODES = [
    b"(",  # MARK
    b"}",  # EMPTY_DICT
    b"]",  # EMPTY_LIST
    b")",  # EMPTY_TUPLE
    b"N",
    b"\x88",  # NEWTRUE
    b"\x85",  # TUPLE1
    b"\x86",  # TUPLE2
    b"\x87",  # TUPLE3
    b"t",  # TUPLE
    b"l",  # LIST
    b"d",  # DICT
    b"a",  # APPEND
    b"e",  # APPENDS
    b"s",  # SETITEM
    b"u",  # SETITEMS
    b"0",  # POP
    b"2",  # DUP
    b"1",  # POP_MARK
    b"R",  # REDUCE
    b"b",  # BUILD
    b"\x81",  # NEWOBJ
    b"\x94",  # MEMOIZE
    b"\x93",  # STACK_GLOBAL
    b".",  # STOP
    b"K\x03",  # BININT1
    b"J\xff\xff\xff\x7f",  # BININT
    b"\x8a\x09" + b"\xff" * 9,  # LONG1
    b"G" + struct.pack(">d", 1.5),  # BINFLOAT
    b"q\x00",  # BINPUT 0
    b"q\x01",
    b"h\x00",  # BINGET 0
    b"h\x01",
    b"r\xff\xff\xff\x0f",  # LONG_BINPUT far away
    b"C\x04\x00\x00\x80?",  # SHORT_BINBYTES
    b"B\x08\x00\x00\x00" + bytes(8),  # BINBYTES
    _u("model"),
    _u("__author__"),
    _u("latin1"),
    _u("hex"),
    _u("<f4"),
    _u("f4"),
    b"cnumpy.core.multiarray\n_reconstruct\n",
    b"cnumpy._core.multiarray\nscalar\n",
    b"cnumpy\nndarray\n",
    b"cnumpy\ndtype\n",
    b"ccollections\nOrderedDict\n",
    b"c_codecs\nencode\n",
    b"cos\nsystem\n",
    b"cbuiltins\ngetattr\n",
    b"\x95\x10\x00\x00\x00\x00\x00\x00\x00",  # FRAME of 16 bytes
]


@FUZZ
@given(st.sampled_from([b"", b"\x80\x02", b"\x80\x04", b"\x80\x05"]), st.lists(st.sampled_from(_OPCODES), max_size=40))
def test_any_pickle_loads_or_is_refused(proto, opcodes):
    try:
        unpickle_arrays(proto + b"".join(opcodes) + b".", "fuzz")
    except UserError as e:
        assert "\n" not in str(e)


_YAML_TOKENS = [
    "layers:",
    "MODEL:",
    "\n",
    "\n  ",
    "\n    ",
    " ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    ", ",
    ": ",
    "&a ",
    "*a",
    "&b ",
    "*b",
    "? ",
    "!!python/object:os.system ",
    "!!binary ",
    "!!set ",
    "null",
    "1",
    "1099511627776",
    "-3",
    "1e9",
    "true",
    "'x'",
    '"\\x1b[2J"',
    "backbone.stem.conv1",
    "*.conv1",
    "dtype",
    "bfloat16",
    "act_block_h",
    "32",
    "slicing",
    "type",
    "DRAM_SLICE_WIDTH",
    "num_slices",
    "channel_slices",
    "sharding",
    "HEIGHT_SHARDED",
    "---",
    "#",
    "\t",
    "%YAML 1.1\n",
]


@FUZZ
@given(st.lists(st.sampled_from(_YAML_TOKENS), max_size=40))
def test_any_yaml_overrides_load_or_are_refused(tokens):
    try:
        parse_overrides(load_yaml("".join(tokens), "fuzz"))
    except UserError as e:
        assert "\n" not in str(e)
