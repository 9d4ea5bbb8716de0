"""`python -m converter`: the front end's debug command."""

from __future__ import annotations

import subprocess
import sys


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "converter", *args], capture_output=True, text=True, timeout=300)


def test_prints_histogram_of_the_semantic_variant():
    result = _run("--variant", "deeplab_v3_plus")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("deeplab_v3_plus 512x1024 (panoptic_deeplab_R_52_os16_mg124_cityscapes): ")
    assert "70 convs" in lines[0]
    assert {"conv2d": "70", "upsample": "4", "concat": "3"}.items() <= dict(line.split() for line in lines[1:]).items()


def test_user_mistake_is_one_line_and_exit_2():
    result = _run("--input-size", "128x256")
    assert result.returncode == 2
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1
    assert "ASPP pooling window" in result.stderr
