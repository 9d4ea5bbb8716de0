"""The offline ttnn API checker flags the six planted mistakes of api facts §4.1 and nothing in clean code.

The checker imports the real ttnn, so it runs in a subprocess (import-time logging, native crashes).
"""

import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).parent / "data"


def run_checker(name: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "runtime.api_check", str(DATA / name)], capture_output=True, text=True, timeout=120
    )


def test_planted_mistakes_are_all_flagged():
    result = run_checker("api_sample_bad.py")
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    by_line = {int(line.split(":")[1]): line for line in lines}
    assert sorted(by_line) == [7, 8, 9, 10, 11, 12], result.stdout
    assert "Conv2dConfig" in by_line[7] and "TypeError" in by_line[7]
    assert "unknown keyword 'enable_split_reader'" in by_line[8]
    assert "CoreGrid" in by_line[9] and "positional" in by_line[9]
    assert "ttnn.MathFidelity.HiFi5 does not exist" in by_line[10]
    assert "ttnn.conv2d" in by_line[11] and "9 positional args" in by_line[11]
    assert "unknown keyword 'align_corners'" in by_line[12]


def test_clean_sample_has_no_problems():
    result = run_checker("api_sample_clean.py")
    assert result.stdout.strip() == "" and result.returncode == 0, result.stdout + result.stderr
