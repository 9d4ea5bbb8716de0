"""Hostile and careless inputs (issue #27): each case runs the real CLI in a child process under an
8 GB address-space limit and a 60 s timeout, and must end with its exit status, one line on stderr,
no traceback, and nothing outside the tool's own files touched. Every payload is made here."""

from __future__ import annotations

import io
import os
import pickle
import resource
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from converter import atomic
from converter.choices import DEFAULT_CONFIG
from converter.errors import UserError

BIN = Path(sys.executable).parent
LIMIT = 8 << 30


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


def _run(command: str, *args: object, preexec: Callable[[], None] = _limit_memory) -> subprocess.CompletedProcess:
    quiet = ["--quiet"] if command == "pdl-convert" else []  # no progress lines: stderr is the verdict alone
    return subprocess.run(
        [str(BIN / command), *quiet, *map(str, args)], capture_output=True, timeout=60, preexec_fn=preexec
    )


def _assert_one_line_refusal(child: subprocess.CompletedProcess, *needles: str) -> str:
    err = child.stderr.decode("utf-8", "replace")
    assert child.returncode == 2, (child.returncode, err[-2000:])
    assert "Traceback" not in err and "\x1b" not in err, err[-2000:]
    assert err.count("\n") == 1 and err.endswith("\n"), err[-2000:]
    for needle in needles:
        assert needle in err, err
    return err


# --- payloads ------------------------------------------------------------------------------------


def _u(text: str) -> bytes:  # BINUNICODE
    data = text.encode("utf-8")
    return b"X" + struct.pack("<I", len(data)) + data


def _checkpoint(value: bytes) -> bytes:
    """A protocol-2 pickle of {"__author__": "x", "model": {"w": <value>}}."""
    return b"\x80\x02}" + _u("__author__") + _u("x") + b"s" + _u("model") + b"}" + _u("w") + value + b"ss."


def nested_tuples(path: Path) -> None:  # a None in 200,000 nested 1-tuples as a key: no globals at all
    key = b"N" + b"\x85" * 200_000  # hashing it recursed in C until the process died (exit 139)
    path.write_bytes(b"\x80\x02}" + _u("__author__") + _u("x") + b"s" + _u("model") + b"}" + key + _u("w") + b"ss.")


def codecs_bomb(path: Path) -> None:  # _codecs.encode(..., "hex") nested 31 times: 359 bytes -> 4 GB
    value = b"c_codecs\nencode\n(" + _u("ab") + _u("latin1") + b"tR"
    for _ in range(31):
        value = b"c_codecs\nencode\n(" + value + _u("hex") + b"tR"
    path.write_bytes(_checkpoint(value))


def deflated_record(path: Path) -> None:  # a 2 GB record of zeros, deflated to ~2 MB, in a torch file
    buffer = io.BytesIO()
    torch.save({"model": {"w": torch.zeros(2)}}, buffer)
    path.write_bytes(buffer.getvalue())
    with (
        zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z,
        z.open("archive/data/1", "w", force_zip64=True) as record,
    ):
        chunk = bytes(1 << 24)
        for _ in range(128):
            record.write(chunk)


def escape_codes(path: Path) -> None:  # a global whose module name holds a newline and a clear-screen
    name = _u("numpy\nFAKE: all fine\x1b[2J") + _u("x") + b"\x93"
    path.write_bytes(b"\x80\x04" + name + b".")


def torch_protocol_4(path: Path) -> None:  # a legacy torch file refused by torch's own allow-list
    torch.save({"model": {}, "x": {1, 2}}, path, _use_new_zipfile_serialization=False, pickle_protocol=4)


def _config(tmp_path: Path, body: str, base: bool = True) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text((f"_BASE_: {DEFAULT_CONFIG}\n" if base else "") + body)
    return path


def _mapping_bomb() -> str:
    lines = ["MODEL:", "  X0: &x0 {a: 1, b: 1, c: 1, d: 1, e: 1, f: 1, g: 1, h: 1, i: 1}"]
    for level in range(1, 9):
        refs = ", ".join(f"k{i}: *x{level - 1}" for i in range(9))
        lines.append(f"  X{level}: &x{level} {{{refs}}}")
    return "\n".join(lines) + "\n"


def _list_bomb() -> str:
    value = "&l0 [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]"
    for level in range(1, 9):
        value = f"&l{level} [{value}, " + ", ".join([f"*l{level - 1}"] * 8) + "]"
    return f"MODEL:\n  PIXEL_MEAN: {value}\n"


# --- the cases -----------------------------------------------------------------------------------

CHECKPOINTS = {
    "nested_tuples": (nested_tuples, "nests objects more than 100 deep"),
    "codecs_bomb": (codecs_bomb, "_codecs.encode with encoding 'hex'"),
    "deflated_record": (deflated_record, "more than the"),
    "escape_codes": (escape_codes, "numpy\\nFAKE: all fine\\x1b[2J.x"),
    "torch_protocol_4": (torch_protocol_4, "not a readable torch file"),
}


@pytest.mark.parametrize("case", sorted(CHECKPOINTS))
def test_a_hostile_checkpoint_is_refused_in_one_line(tmp_path, case):
    make, needle = CHECKPOINTS[case]
    weights = tmp_path / "weights.pkl"
    make(weights)
    child = _run("pdl-convert", "--weights", weights, "--variant", "deeplab_v3_plus", "--out", tmp_path / "out")
    _assert_one_line_refusal(child, needle)
    assert not (tmp_path / "out").exists()


CONFIGS = {
    "alias_mapping_bomb": (_mapping_bomb(), "uses a YAML alias"),
    "alias_list_bomb": (_list_bomb(), "uses a YAML alias"),
    "crop_zero": ("INPUT:\n  CROP:\n    SIZE: (0, 0)\n", "INPUT.CROP.SIZE"),
    "crop_one_value": ("INPUT:\n  CROP:\n    SIZE: (128,)\n", "INPUT.CROP.SIZE"),
    "in_features_res6": ("MODEL:\n  SEM_SEG_HEAD:\n    IN_FEATURES: ['res2', 'res3', 'res6']\n", "IN_FEATURES"),
    "pixel_mean_two": ("MODEL:\n  PIXEL_MEAN: [123.0, 116.0]\n", "PIXEL_MEAN"),
    "num_classes_1e9": ("MODEL:\n  SEM_SEG_HEAD:\n    NUM_CLASSES: 1000000000\n", "NUM_CLASSES"),
}


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_a_hostile_config_is_refused_in_one_line(tmp_path, case):
    body, needle = CONFIGS[case]
    child = _run("pdl-convert", "--config", _config(tmp_path, body), "--out", tmp_path / "out")
    _assert_one_line_refusal(child, needle)


def test_a_fifo_as_base_config_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "base.yaml"
    os.mkfifo(fifo)
    child = _run("pdl-convert", "--config", _config(tmp_path, f"_BASE_: {fifo}\n", base=False), "--out", tmp_path / "o")
    _assert_one_line_refusal(child, "is not a regular file")


def test_a_config_without_version_gets_no_log_line(tmp_path):
    body = DEFAULT_CONFIG.read_text().replace("VERSION: 2\n", "")
    assert "VERSION" not in body
    child = _run("pdl-convert", "--config", _config(tmp_path, body, base=False), "--input-size", "32x32")
    _assert_one_line_refusal(child, "input size 32x32 does not work")


OVERRIDES = {
    "int_key.yaml": (b"layers:\n  1: {dtype: bfloat16}\n  backbone.stem: {dtype: bfloat16}\n", "is not a layer name"),
    "null_key.yaml": (b"layers:\n  null: {dtype: bfloat16}\n  backbone.stem: {dtype: bfloat16}\n", "is not a layer"),
    "latin1.yaml": (b"layers:\n  caf\xe9: {dtype: bfloat16}\n", "is not UTF-8 text"),
    "deep.json": (b"[" * 100_000 + b"]" * 100_000, "nests more levels deep"),
    "deep.yaml": (b"[" * 100_000 + b"]" * 100_000, "nests more than 100 levels"),
    "act_block_h.yaml": (b"layers:\n  backbone.stem.conv1: {act_block_h: 1099511627776}\n", "act_block_h"),
}


@pytest.mark.parametrize("case", sorted(OVERRIDES))
def test_hostile_overrides_are_refused_in_one_line(tmp_path, case):
    data, needle = OVERRIDES[case]
    (tmp_path / case).write_bytes(data)
    _assert_one_line_refusal(_run("pdl-convert", "--overrides", tmp_path / case, "--out", tmp_path / "o"), needle)


@pytest.mark.parametrize(
    ("command", "args", "needle"),
    [
        ("pdl-convert", ["--input-size", "99999999984x99999999984"], "has a side over 16384"),
        ("pdl-convert", ["--batch-size", "1000000"], "GiB of DRAM"),
        ("pdl-demo", [":scenes", "--random-weights", "--input-size", "1600000x1600000"], "has a side over 16384"),
        ("pdl-demo", [":scenes", "--random-weights", "--input-size", "9" * 5000 + "x16"], "is not HxW"),
        ("pdl-demo", [":scenes", "--random-weights", "--input-size", "\u00b2x16"], "is not HxW"),
    ],
)
def test_absurd_sizes_are_refused_before_anything_is_allocated(tmp_path, command, args, needle):
    out = ["--out", tmp_path / "out"] if command == "pdl-convert" else [tmp_path / "out"]
    _assert_one_line_refusal(_run(command, *args, *out), needle)


@pytest.mark.parametrize("journal", ['["a.py", "b', "[1, 2]"])
@pytest.mark.parametrize("check", [True, False])
def test_a_damaged_journal_is_one_line_with_the_recovery_step(tmp_path, journal, check):
    out = tmp_path / "out"
    out.mkdir()
    (out / atomic.JOURNAL).write_text(journal)
    child = _run("pdl-convert", *(["--check"] if check else []), "--out", out)
    _assert_one_line_refusal(child, "is damaged", f"delete {out / atomic.JOURNAL}")
    assert (out / atomic.JOURNAL).read_text() == journal


def test_readers_refuse_an_interrupted_update(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "panoptic_deeplab.py").write_text("old")
    (out / atomic.JOURNAL).write_text('["panoptic_deeplab.py"]')
    _assert_one_line_refusal(_run("pdl-convert", "--check", "--out", out), "interrupted update", f"--out {out}")
    from runtime.run import load_module

    with pytest.raises(UserError, match="interrupted update"):
        load_module(out / "panoptic_deeplab.py")


def test_a_full_disk_in_pdl_demo_is_one_line(tmp_path):
    def small_files() -> None:
        _limit_memory()
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))  # Python ignores SIGXFSZ: writes fail

    child = _run("pdl-demo", ":scenes", tmp_path / "out", "--random-weights", "--pytorch-only", preexec=small_files)
    _assert_one_line_refusal(child, "cannot write", "File too large")


def test_staging_never_touches_a_users_file(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    foreign = {"notes.draft.staged": b"my draft", ".notes.staged": b"hidden", "keep.txt": b"mine"}
    for name, data in foreign.items():
        (out / name).write_bytes(data)
    config = _config(tmp_path, "INPUT:\n  CROP:\n    SIZE: (128, 256)\n")
    child = _run("pdl-convert", "--config", config, "--variant", "deeplab_v3_plus", "--out", out)
    assert child.returncode == 0, child.stderr.decode()[-2000:]
    assert {name: (out / name).read_bytes() for name in foreign} == foreign
    assert (out / "deeplab_v3_plus.py").is_file() and not (out / atomic.STAGING).exists()


def test_pdl_demo_gives_every_image_its_own_name(tmp_path):
    from PIL import Image

    from runtime.images import collect_images

    for name in ("a.png", "a.jpg", "a_png.jpg", "a_png_2.png"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    names = [image.name for image in collect_images(tmp_path).images]
    assert len(set(names)) == 4, names


def test_a_pickle_bomb_never_reaches_the_unpickler():
    from converter.checkpoint import unpickle_arrays

    memo = b"\x80\x02N" + b"r" + struct.pack("<I", 0xFFFFFFF0) + b"."  # LONG_BINPUT at index ~4e9
    with pytest.raises(UserError, match="memo entry at index"):
        unpickle_arrays(memo, "x")
    assert unpickle_arrays(pickle.dumps({"model": {}}, protocol=2), "x") == {"model": {}}
