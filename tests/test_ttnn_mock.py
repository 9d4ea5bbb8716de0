"""The real ttnn 0.81.1 on a mock device (runtime/ttnn_mock.py) judges generated programs (the
committed ones: tests/test_codegen_generated.py).

These tests run real ttnn (not our emulator, not our planner's model) in child processes: its
validation, allocator and circular-buffer checks are the independent authority on legality and L1.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from hardware.targets import TARGETS, get_target
from passes.pipeline import plan_graph
from runtime.ttnn_mock import check_module, condense, run_child
from templates.render import render_module

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = sorted(p for p in (ROOT / "generated").glob("*.py") if p.name != "__init__.py")
_DEVICE_FACTS = """
import json, sys, ttnn
out = {}
for small in (0, 32768):
    dev = ttnn.open_device(device_id=0, l1_small_size=small)
    grid = dev.compute_with_storage_grid_size()
    view = ttnn.get_memory_view(dev, ttnn.BufferType.L1)
    out[small] = [grid.x, grid.y, view.num_banks, view.total_bytes_per_bank]
    ttnn.close_device(dev)
print(json.dumps(out))
"""


@pytest.mark.parametrize("name", sorted(n for n, t in TARGETS.items() if t.num_chips == 1))  # meshes: below
def test_target_facts_are_the_mock_devices(name: str, tmp_path: Path) -> None:
    """Grid, bank count and L1 bank size of each target are what real ttnn reports for its mock device."""
    target = get_target(name)
    script = tmp_path / "facts.py"
    script.write_text(_DEVICE_FACTS)
    proc = run_child(target, [str(script)], cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    facts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert facts["0"][:3] == [*target.grid, target.num_cores]
    assert facts["0"][3] == target.l1_unreserved_per_core
    assert facts["32768"][3] == target.l1_unreserved_per_core - 32768  # L1_SMALL comes out of the bank


_MESH_FACTS = """
import json, sys, ttnn
rows, cols = map(int, sys.argv[1:3])
mesh = ttnn.open_mesh_device(ttnn.MeshShape(rows, cols), l1_small_size=32768, num_command_queues=2)
grid = mesh.compute_with_storage_grid_size()
view = ttnn.get_memory_view(mesh, ttnn.BufferType.L1)
print(json.dumps([mesh.get_num_devices(), grid.x, grid.y, view.num_banks, view.total_bytes_per_bank]))
ttnn.close_mesh_device(mesh)
"""


@pytest.mark.parametrize("name", sorted(n for n, t in TARGETS.items() if t.num_chips > 1))
def test_mesh_targets_open_as_meshes_of_their_chip(name: str, tmp_path: Path) -> None:
    """Each mesh target's descriptor opens as a mesh of its shape, with two command queues, whose
    chips have the grid and L1 bank the target plans one chip with."""
    target = get_target(name)
    script = tmp_path / "mesh.py"
    script.write_text(_MESH_FACTS)
    proc = run_child(target, [str(script), *map(str, target.mesh)], cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    chips, gx, gy, banks, bank = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (chips, (gx, gy), banks) == (target.num_chips, target.grid, target.num_cores)
    assert bank == target.l1_unreserved_per_core - 32768


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_small_programs_pass_real_ttnn(small_graphs, tmp_path: Path, target: str) -> None:
    """Both variants at 128x256 (the test suite's small size) on every target; a mesh target's run
    is data parallel on its whole mock mesh, per-chip batch 1 (runtime/ttnn_mock._run_check)."""
    for variant, graph in small_graphs.items():
        path = tmp_path / f"{variant}.py"
        path.write_text(render_module(plan_graph(graph, get_target(target)), target))
        result = check_module(path, target)
        assert result.accepted, f"{variant}: {result.verdict()}\n  {result.statement}"
        assert result.chips == get_target(target).num_chips


def test_a_rejection_names_the_layer_line_and_ttnns_message(tmp_path: Path) -> None:
    """A conv whose act_block_h_override is not a multiple of 32: ttnn's own validation rejects it,
    and the check names the layer, the generated line and ttnn's message (no C++ backtrace)."""
    path = COMMITTED[0]
    text = path.read_text()
    first = next(
        m
        for m in re.finditer(r'^    "([^"]+)": dict\(\n(.*?)\n    \),$', text, re.M | re.S)
        if "Conv2dL1FullSliceConfig" in m.group(2)
    )
    bad = re.sub(r"act_block_h_override=\d+", "act_block_h_override=48", first.group(2), count=1)
    broken = tmp_path / path.name
    broken.write_text(text.replace(first.group(2), bad))
    target = re.search(r'^TARGET = "([^"]+)"', text, re.M)
    assert target is not None
    result = check_module(broken, target.group(1))
    assert not result.accepted
    assert result.layer == first.group(1)
    # the statement as written in the block's method, which names the layer relative to the block
    assert "self.conv2d(" in result.statement and f'{first.group(1).rsplit(".", 1)[1]}"' in result.statement
    assert broken.read_text().splitlines()[result.line - 1].strip().startswith(result.statement.split("(")[0])
    assert result.error.startswith(("TT_FATAL", "TT_THROW")) and "backtrace" not in result.error
    assert "act_block_h" in result.error


def test_condense_keeps_the_message_and_drops_the_backtrace() -> None:
    raw = (
        "TT_FATAL @ /project/x.cpp:12: a == b\ninfo:\nAll Tensors should have same layouts\n"
        "backtrace:\n --- ttnn::foo()\n --- ttnn::bar()\n"
    )
    assert condense(raw) == "TT_FATAL @ /project/x.cpp:12: a == b info: All Tensors should have same layouts"


def test_the_mock_root_and_jit_cache_live_in_the_users_cache_and_a_broken_root_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One root and JIT cache per wheel under $XDG_CACHE_HOME/pdl2ttnn, shared by every checkout; a root
    whose wheel links no longer resolve (the venv that built it was removed) is rebuilt on first use."""
    from runtime.ttnn_mock import build_runtime_root, jit_cache_dir, runtime_root

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("PDL2TTNN_TTNN_MOCK_ROOT", raising=False)
    root = runtime_root()
    assert root.parent == jit_cache_dir().parent and root.parent.parent == tmp_path / "pdl2ttnn"
    assert build_runtime_root() == root and (root / "tt_metal" / "hw").is_dir()
    (root / "tt_metal").unlink()
    (root / "tt_metal").symlink_to(tmp_path / "removed-venv" / "tt_metal")
    assert build_runtime_root() == root and (root / "tt_metal" / "hw").is_dir()
    compiler = root / "runtime" / "sfpi" / "compiler" / "bin" / "riscv-tt-elf-g++"
    assert subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout.startswith(
        "riscv-tt-elf-g++ "
    )
