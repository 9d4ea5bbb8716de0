"""`pdl-convert` as a user runs it: a subprocess per call, small 128x256 conversions.

The embedded config pools ASPP over its 512x1024 training crop, so small runs use a config that
inherits it and sets INPUT.CROP.SIZE to 128x256 (Detectron2's `_BASE_`), exactly what a user would do.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from converter.model import DEFAULT_CONFIG

SMALL = "128x256"
DL3 = "deeplab_v3_plus"
FILES = tuple(f"{DL3}{suffix}" for suffix in (".py", ".plan.md", ".l1.png", ".dram.png", ".stages.png"))


def pdl_convert(*args: str | Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runtime.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="session")
def small_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "cityscapes_128x256.yaml"
    path.write_text(f"_BASE_: {DEFAULT_CONFIG}\nINPUT:\n  CROP:\n    SIZE: (128, 256)\n")
    return path


def small_run(config: Path, out: Path, *args: str | Path) -> subprocess.CompletedProcess:
    return pdl_convert("--config", config, "--input-size", SMALL, "--variant", DL3, "--out", out, *args)


def read_all(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


@pytest.fixture(scope="module")
def converted(small_config: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("out")
    return out, small_run(small_config, out)


def test_help_explains_every_option() -> None:
    result = pdl_convert("--help")
    assert result.returncode == 0
    for option in ("--config", "--weights", "--variant", "--target", "--input-size", "--overrides", "--precision", "--out",
                   "--check", "--verify", "--ttnn-check", "--quiet", "blackhole-20", "wormhole-n150", "exit status"):
        assert option in result.stdout, option


def test_real_ttnn_verdict_in_summary_and_report(converted, small_config: Path, tmp_path: Path) -> None:
    _, plain = converted
    assert "real ttnn" not in plain.stdout  # the check is opt-in (--ttnn-check, or --verify)
    result = small_run(small_config, tmp_path, "--ttnn-check")
    assert f"{DL3}: real ttnn: accepted" in result.stdout, result.stdout + result.stderr
    assert "- real ttnn: accepted (ttnn 0.81.1 on a mock device" in (tmp_path / f"{DL3}.plan.md").read_text()


def test_writes_module_report_and_plots(converted) -> None:
    out, result = converted
    assert result.returncode == 0, result.stderr
    assert sorted(read_all(out)) == sorted(FILES)
    report = (out / f"{DL3}.plan.md").read_text()
    for png in FILES[2:]:
        assert f"]({png})" in report  # linked by relative name, no absolute path
        with Image.open(out / png) as image:
            assert image.format == "PNG" and image.width >= 800 and image.height >= 300
    assert str(out) not in report and "/tmp" not in (out / f"{DL3}.py").read_text()
    assert 'TARGET = "blackhole-20"' in (out / f"{DL3}.py").read_text()
    # The summary: variant, target, size, nodes/convs, L1 vs budget, latency, files, stage times.
    assert f"{DL3} on blackhole-20 at {SMALL}" in result.stdout
    for key in ("nodes / convs      98 / 70", "L1 peak per core", "B budget", "activations in L1",
                "modeled latency", "5 written in", "stage times        trace"):
        assert key in result.stdout, key
    assert "SEEDED RANDOM WEIGHTS" in result.stderr  # no --weights: loud notice
    assert f"pdl-convert: {DL3}: tracing at {SMALL}" in result.stderr  # progress


def test_same_inputs_give_identical_bytes_and_check_names_stale_files(converted, small_config, tmp_path) -> None:
    out, _ = converted
    again = tmp_path / "again"
    assert small_run(small_config, again, "--quiet").returncode == 0
    assert read_all(again) == read_all(out)

    clean = small_run(small_config, again, "--check")
    assert clean.returncode == 0, clean.stderr
    assert "5 up to date" in clean.stdout

    (again / f"{DL3}.l1.png").write_bytes(b"not the plot")
    (again / f"{DL3}.plan.md").unlink()
    stale = small_run(small_config, again, "--check")
    assert stale.returncode == 1
    named = [line for line in stale.stderr.splitlines() if "is stale" in line]
    assert len(named) == 2 and any(f"{DL3}.l1.png" in n for n in named) and any(f"{DL3}.plan.md" in n for n in named)
    assert (again / f"{DL3}.l1.png").read_bytes() == b"not the plot"  # --check writes nothing
    assert not (again / f"{DL3}.plan.md").exists()


def test_quiet_prints_only_the_warning(small_config, tmp_path) -> None:
    result = small_run(small_config, tmp_path, "--quiet")
    assert result.returncode == 0
    assert result.stdout == ""
    assert "pdl-convert: " + DL3 not in result.stderr and "SEEDED RANDOM WEIGHTS" in result.stderr


def test_weights_are_checked_but_do_not_change_the_files(converted, small_config, checkpoint_path, tmp_path) -> None:
    out, _ = converted
    result = small_run(small_config, tmp_path, "--weights", checkpoint_path)
    assert result.returncode == 0, result.stderr
    assert "RANDOM WEIGHTS" not in result.stderr
    assert read_all(tmp_path) == read_all(out)


def test_target_and_overrides_change_the_plan(converted, small_config, tmp_path) -> None:
    out, _ = converted
    pins = tmp_path / "pins.yaml"
    pins.write_text("layers:\n  backbone.stem.conv2:\n    weights_dtype: bfloat16\n    math_fidelity: HiFi4\n")
    result = small_run(small_config, tmp_path / "out", "--target", "wormhole-n150", "--overrides", pins)
    assert result.returncode == 0, result.stderr
    module = (tmp_path / "out" / f"{DL3}.py").read_text()
    assert 'TARGET = "wormhole-n150"' in module
    row = next(line for line in (tmp_path / "out" / f"{DL3}.plan.md").read_text().splitlines()
               if line.startswith("| ") and "| backbone.stem.conv2 |" in line)
    assert "| bfloat16 | HiFi4 |" in row
    default_row = next(line for line in (out / f"{DL3}.plan.md").read_text().splitlines()
                       if "| backbone.stem.conv2 |" in line)
    assert "| bfloat16 | HiFi4 |" not in default_row  # the pin, not the default, put it there


def test_fast_precision_runs_every_conv_lofi_in_bfloat8_b(converted, small_config, tmp_path) -> None:
    out, _ = converted
    result = small_run(small_config, tmp_path / "out", "--precision", "fast")
    assert result.returncode == 0, result.stderr
    fast, default = ((d / f"{DL3}.py").read_text() for d in (tmp_path / "out", out))
    assert "MathFidelity.HiFi2" in default and "MathFidelity.LoFi" in default  # the semantic head only
    assert "MathFidelity.HiFi2" not in fast and "bfloat8_b" in fast
    assert fast.count("MathFidelity.LoFi") > default.count("MathFidelity.LoFi")


def test_failure_midway_leaves_previous_output_untouched(small_config, tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    previous = {name: f"previous {name}".encode() for name in FILES}
    for name, data in previous.items():
        (out / name).write_bytes(data)
    # Valid for deeplab_v3_plus (no instance head: the pin is dropped), unknown for panoptic_deeplab,
    # which is converted second: the first variant is fully rendered when the run fails.
    pins = tmp_path / "pins.yaml"
    pins.write_text("layers:\n  ins_embed_head.no_such_layer:\n    dtype: bfloat16\n")
    result = pdl_convert("--config", small_config, "--input-size", SMALL, "--variant", DL3,
                         "--variant", "panoptic_deeplab", "--overrides", pins, "--out", out)
    assert result.returncode == 2
    assert f"pdl-convert: {DL3}: rendering" in result.stderr  # it did get midway
    assert result.stderr.splitlines()[-1].startswith("pdl-convert: error: override names unknown layer")
    assert read_all(out) == previous  # same files, same bytes, no temporaries left


@pytest.mark.parametrize("case", ["missing weights", "corrupt pkl", "unknown target", "size not HxW",
                                  "size zero", "size not a stride multiple", "size not tiling the pool window",
                                  "overrides not YAML", "overrides unknown field", "missing config",
                                  "unknown variant", "out is a file", "pkl that would run code",
                                  "config that would run code"])
def test_user_mistakes_exit_2_with_one_line(case: str, small_config: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.pkl"
    corrupt.write_bytes(b"\x80\x04this is not a pickle")
    bad_yaml, bad_field = tmp_path / "bad.yaml", tmp_path / "field.yaml"
    bad_yaml.write_text("layers: [unclosed\n")
    bad_field.write_text("layers:\n  backbone.stem.conv1:\n    colour: red\n")
    evil_pkl, evil_yaml = tmp_path / "evil.pkl", tmp_path / "evil.yaml"
    evil_pkl.write_bytes(pickle.dumps({"model": {}, "__author__": _RunsCode(tmp_path / "pwned")}))
    evil_yaml.write_text(f"_BASE_: {DEFAULT_CONFIG}\nMODEL:\n  WEIGHTS: !!python/object/apply:os.mkdir "
                         f"['{tmp_path / 'pwned'}']\n")
    args, expected = {
        "missing weights": (["--weights", tmp_path / "nope.pkl"], "checkpoint"),
        "corrupt pkl": (["--weights", corrupt], "not a readable pickle"),
        "unknown target": (["--target", "grayskull"], "invalid choice: 'grayskull'"),
        "size not HxW": (["--input-size", "128by256"], "is not HxW"),
        "size zero": (["--input-size", "0x256"], "is not HxW"),
        "size not a stride multiple": (["--config", small_config, "--input-size", "120x256"],
                                       "not a multiple of the encoder stride 16"),
        "size not tiling the pool window": (["--input-size", SMALL], "ASPP pooling window"),
        "overrides not YAML": (["--overrides", bad_yaml], "is not valid YAML"),
        "overrides unknown field": (["--overrides", bad_field], "unknown field(s) colour"),
        "missing config": (["--config", tmp_path / "nope.yaml"], "config file"),
        "unknown variant": (["--variant", "mask_rcnn"], "invalid choice: 'mask_rcnn'"),
        "out is a file": (["--config", small_config, "--input-size", SMALL, "--variant", DL3, "--out", corrupt],
                          "is a file, not a directory"),
        "pkl that would run code": (["--weights", evil_pkl], "refers to posix.mkdir"),
        "config that would run code": (["--config", evil_yaml], "YAML tag that would construct Python objects"),
    }[case]
    result = pdl_convert("--out", tmp_path / "out", *args, timeout=300)  # a later --out wins
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    # Besides the error: progress lines ("... ...") and the random-weights banner ("!! ...").
    errors = [line for line in result.stderr.splitlines() if not (line.startswith("!!") or line.endswith(" ..."))]
    assert len(errors) == 1 and errors[0].startswith("pdl-convert: error: "), result.stderr
    assert expected in errors[0]
    assert not (tmp_path / "out").exists() and not (tmp_path / "pwned").exists()


class _RunsCode:
    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (str(self.path),)


def test_a_second_writer_is_refused_and_check_names_an_interrupted_update(converted, small_config, tmp_path) -> None:
    from converter.atomic import JOURNAL, locked

    out, _ = converted
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    with locked(copy, exclusive=True):  # another pdl-convert writing there
        busy = small_run(small_config, copy, "--quiet")
    assert busy.returncode == 2
    assert busy.stderr.splitlines()[-1] == (f"pdl-convert: error: another process is writing to {copy}; "
                                            "wait for it to finish, or write to another directory")
    assert read_all(copy) == read_all(out)
    (copy / JOURNAL).write_text("[]")  # what a run killed between its commit and its last rename leaves
    check = small_run(small_config, copy, "--check", "--quiet")
    assert check.returncode == 1
    assert f"pdl-convert: {copy} holds an interrupted update: run pdl-convert" in check.stderr


@pytest.fixture(scope="module")
def verified(small_config, checkpoint_path, tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict[str, float]]:
    result = pdl_convert("--config", small_config, "--input-size", SMALL, "--variant", "panoptic_deeplab",
                         "--weights", checkpoint_path, "--out", tmp_path_factory.mktemp("verify"), "--verify")
    lines = [line for line in result.stdout.splitlines() if line.startswith("verify panoptic_deeplab")]
    assert len(lines) == 1, result.stdout + result.stderr
    return result, {head: float(v) for head, v in re.findall(r"(\w+) PCC (-?[0-9.]+)", lines[0])}


def test_verify_prints_the_metrics_and_exits_by_the_bounds(verified) -> None:
    result, scores = verified
    assert set(scores) == {"sem_seg", "center", "offset"}, result.stdout
    assert all(-1.0 <= v <= 1.0 for v in scores.values())
    lines = result.stdout.splitlines()
    metrics = lines[lines.index(next(line for line in lines if line.startswith("verify panoptic_deeplab"))) + 1]
    assert re.match(r"  PQ [0-9.]+ \(SQ [0-9.]+, RQ [0-9.]+\), instances \d+/\d+, semantic agreement", metrics)
    assert all(f"{h} gain " in metrics for h in scores)
    below = [line for line in lines if line.startswith("  below bound: ")]
    assert result.returncode == (1 if below else 0)
    assert ("BELOW BOUNDS" in result.stdout) == bool(below)
    assert "running the generated module" in result.stderr and "Detectron2 fp32 reference" in result.stderr


@pytest.mark.xfail(strict=True, reason="issue #15: the default precision breaks the result bounds (PQ ~0.5, "
                                       "1.3-1.9x the instances, semantic gain 0.83 at 128x256); remove once fixed")
def test_verify_meets_the_accuracy_bounds(verified) -> None:
    result, _ = verified
    assert result.returncode == 0, result.stdout
