"""generated/ is exactly what `pdl-convert --ttnn-check` writes today: real ttnn (on a mock device)
accepts both modules, and they pass the offline ttnn API check."""

from __future__ import annotations

from pathlib import Path

import pytest

from compiler.cli import convert, stale_files
from converter.model import VARIANTS
from runtime.api_check import check_file

GENERATED = Path(__file__).resolve().parent.parent / "generated"


@pytest.mark.parametrize("variant", VARIANTS)
def test_generated_is_byte_identical_to_a_fresh_render(variant: str) -> None:
    converted = convert(variant, "blackhole-20", ttnn_check=True)
    check = converted.check
    assert check is not None and check.accepted, check.verdict() if check else "not checked"
    assert set(converted.files) == {f"{variant}.py", f"{variant}.plan.md", f"{variant}.ops_perf_modeled.csv"}
    assert stale_files(GENERATED, converted) == []


@pytest.mark.parametrize("variant", VARIANTS)
def test_generated_code_conforms_to_the_real_ttnn_api(variant: str) -> None:
    assert check_file(GENERATED / f"{variant}.py") == []


def test_check_reports_a_changed_file(tmp_path: Path) -> None:
    converted = convert("deeplab_v3_plus", "blackhole-20")
    for name, data in converted.outputs().items():  # module, plan report and its plots
        (tmp_path / name).write_bytes(data)
    assert stale_files(tmp_path, converted) == []
    (tmp_path / "deeplab_v3_plus.py").write_text(converted.files["deeplab_v3_plus.py"] + "# edited\n")
    assert stale_files(tmp_path, converted) == ["deeplab_v3_plus.py"]
