"""The code generator on a small hand-planned graph: what it writes for each op, and its guarantees."""

from __future__ import annotations

import ast
import dataclasses
import json
import subprocess
import sys
import tempfile
import textwrap

import pytest

from converter.ir import Graph, Node, TensorInfo
from templates.render import CodegenError, render_module
from tests.codegen_graphs import plan, tiny_graph


@pytest.fixture(scope="module")
def text() -> str:
    return render_module(tiny_graph(), "blackhole-20")


def _forward(text: str) -> list[str]:
    body = text[text.index("    def forward("):]
    return [line.strip() for line in body.splitlines() if line.strip()]


def _index(lines: list[str], prefix: str) -> int:
    hits = [i for i, line in enumerate(lines) if line.startswith(prefix)]
    assert len(hits) == 1, f"{prefix!r} found {len(hits)} times"
    return hits[0]


def test_conv_is_one_call_reading_its_table_row(text: str) -> None:
    lines = _forward(text)
    assert 'res2_0_conv1 = self.conv2d("backbone.res2.0.conv1", stem_pool)  # 32->32 1x1, relu on 16x32' in lines
    row = text[text.index('    "backbone.stem.conv1": dict('):text.index('    "backbone.res2.0.conv1": dict(')]
    for field in ("batch_size=1", "input_height=64", "input_width=128", "in_channels=3", "out_channels=32",
                  "kernel_size=(3, 3)", "stride=(2, 2)", "padding=(1, 1)", "weights_dtype=ttnn.bfloat8_b",
                  "activation=ttnn.UnaryWithParam(ttnn.UnaryOpType.RELU)",
                  "slice_config=ttnn.Conv2dSliceConfig(slice_type=ttnn.Conv2dDRAMSliceWidth, num_slices=2)",
                  "memory_config=ttnn.DRAM_MEMORY_CONFIG", "math_fidelity=ttnn.MathFidelity.HiFi2"):
        assert field in row, field
    # a conv without a fused activation gets none
    row2 = text[text.index('    "backbone.res2.0.conv2": dict('):text.index('    "sem_seg_head.decoder')]
    assert "activation=" not in row2
    # an L1 conv says so: with slice_config=None ttnn would slice a DRAM input by its own estimate
    assert "slice_config=ttnn.Conv2dL1FullSliceConfig," in row2


def test_planned_spill_and_reshard_replace_the_tensor(text: str) -> None:
    lines = _forward(text)
    spill, reshard = [i for i, line in enumerate(lines) if line.startswith("stem_pool = move(")]
    assert lines[spill] == "stem_pool = move(stem_pool, ttnn.DRAM_MEMORY_CONFIG)"  # spilled before conv2 runs
    assert spill < _index(lines, "res2_0_conv2 = self.conv2d(") < reshard
    assert lines[reshard + 1].startswith("stem_pool, sharded(ttnn.TensorMemoryLayout.HEIGHT_SHARDED, grid=(5, 4), count=8")
    # the module's move() frees the old copy
    assert "    moved = ttnn.to_memory_config(x, memory_config)\n    ttnn.deallocate(x)\n    return moved" in text


def test_add_fuses_relu_after_the_planned_reshard_and_frees_at_last_use(text: str) -> None:
    lines = _forward(text)
    reshard = [i for i, line in enumerate(lines) if line.startswith("stem_pool = move(")][-1]
    add = _index(lines, "res2_0_add = ttnn.add(")
    assert reshard < add
    assert lines[add + 1].startswith("res2_0_conv2, stem_pool, activations=[ttnn.UnaryWithParam(ttnn.UnaryOpType.RELU)]")
    # conv1 dies at conv2, conv2 and the (moved) pool output at the add, after its tap copy
    assert _index(lines, "ttnn.deallocate(res2_0_conv1)") == _index(lines, "res2_0_conv2 = self.conv2d(") + 1
    tap = _index(lines, 'taps["res2"] = ttnn.to_memory_config(res2_0_add, ttnn.DRAM_MEMORY_CONFIG)')
    assert add < tap < _index(lines, "ttnn.deallocate(res2_0_conv2)") < _index(lines, "ttnn.deallocate(stem_pool)")


def test_upsample_uses_an_integer_scale_on_an_nhwc_view(text: str) -> None:
    lines = _forward(text)
    up = _index(lines, "sem_upsample = ttnn.upsample(")
    # the 4-class predictor was widened to 32 channels (bilinear needs channels % 32 == 0)
    assert lines[up + 1] == ('ttnn.reshape(sem_predictor_rm, (1, 16, 32, 32)), (4, 4), mode="bilinear",')
    assert "sem_upsample = ttnn.reshape(sem_upsample, (1, 1, 8192, 32))" in lines
    assert '"sem_seg": (1, 4, 64, 128),' in text  # OUTPUTS: the real channels, read from the first 4
    # a 1x1 conv runs as a matmul, which writes TILE whatever output_layout says: a conversion is emitted
    assert _index(lines, "sem_predictor_rm = ttnn.to_layout(sem_predictor, ttnn.ROW_MAJOR_LAYOUT)") < up
    row = text[text.index('    "sem_seg_head.predictor": dict('):text.index("OUTPUT_MEMORY = {")]
    assert "output_layout=ttnn.TILE_LAYOUT" in row and "fp32_dest_acc_en=True" in row


def test_a_conv_feeding_only_an_upsample_writes_row_major_itself() -> None:
    text = render_module(tiny_graph(predictor_kernel=3), "blackhole-20")
    lines = _forward(text)
    up = _index(lines, "sem_upsample = ttnn.upsample(")
    assert lines[up + 1] == ('ttnn.reshape(sem_predictor, (1, 16, 32, 32)), (4, 4), mode="bilinear",')
    assert not any(line.startswith("sem_predictor_rm") for line in lines)
    row = text[text.index('    "sem_seg_head.predictor": dict('):text.index("OUTPUT_MEMORY = {")]
    assert "output_layout=ttnn.ROW_MAJOR_LAYOUT" in row


def test_concat_of_mixed_layouts_tilizes_the_row_major_input(text: str) -> None:
    lines = _forward(text)
    conv = _index(lines, "sem_decoder_res5_project_conv_pool_up_tiled = ttnn.to_layout(")
    cat = _index(lines, "sem_decoder_res5_project_conv_cat = ttnn.concat(")
    assert conv < cat
    assert lines[cat + 1] == "[res2_0_add, sem_decoder_res5_project_conv_pool_up_tiled], dim=3,"
    # the concat is the upsample output's last use: the row-major original goes right after conversion
    assert lines[conv + 3] == "ttnn.deallocate(sem_decoder_res5_project_conv_pool_up)"


def test_pool_input_interleaved_output_sharded_names_the_shard_scheme(text: str) -> None:
    call = text[text.index("stem_pool = ttnn.max_pool2d("):]
    call = call[:call.index(")\n")]
    assert "applied_shard_scheme=ttnn.TensorMemoryLayout.HEIGHT_SHARDED" in call
    assert "input_h=32, input_w=64, channels=32" in call and "dilation=(1, 1)" in call


def test_module_imports_only_ttnn_and_declares_its_interface(text: str) -> None:
    tree = ast.parse(text)
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [ast.unparse(n) for n in imports] == ["import ttnn"]
    names = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    assert {"TARGET", "INPUT_SHAPE", "DEVICE_PARAMS", "OUTPUTS", "TAPS", "CONV2D", "OUTPUT_MEMORY"} <= names
    assert 'TARGET = "blackhole-20"' in text and "INPUT_SHAPE = (1, 3, 64, 128)" in text
    assert '"sem_seg": (1, 4, 64, 128),' in text


def test_rendering_is_deterministic() -> None:
    assert render_module(tiny_graph(), "blackhole-20") == render_module(tiny_graph(), "blackhole-20")


def test_tables_construct_with_the_real_ttnn() -> None:
    """Import the generated module against the real ttnn 0.81.1 (host only): every config builds."""
    code = textwrap.dedent("""
        import importlib.util, json, sys
        from runtime.ttnn_host import import_ttnn
        ttnn = import_ttnn()
        spec = importlib.util.spec_from_file_location("tiny_generated", sys.argv[1])
        m = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(m)
        stem = m.CONV2D["backbone.stem.conv1"]
        pool = m.OUTPUT_MEMORY["backbone.stem.pool"]
        print(json.dumps({
            "conv_config": type(stem["conv_config"]).__name__,
            "weights_dtype": str(stem["conv_config"].weights_dtype),
            "slice": str(stem["slice_config"]),
            "pool_cores": pool.shard_spec.grid.num_cores(),
            "pool_shard": list(pool.shard_spec.shape),
        }))
    """)
    with tempfile.TemporaryDirectory() as d:
        path = f"{d}/tiny_generated.py"
        with open(path, "w") as f:
            f.write(render_module(tiny_graph(), "blackhole-20"))
        out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["conv_config"] == "Conv2dConfig"
    assert got["weights_dtype"] == "DataType.BFLOAT8_B"
    assert "DRAM_WIDTH" in got["slice"] and "num_slices=2" in got["slice"]
    assert got["pool_cores"] == 8 and got["pool_shard"] == [64, 32]


def test_unplanned_node_is_a_codegen_error() -> None:
    g = tiny_graph()
    nodes = [dataclasses.replace(n, plan=None) if n.name == "backbone.res2.0.add" else n for n in g.nodes]
    with pytest.raises(CodegenError, match="backbone.res2.0.add"):
        render_module(g.replace_nodes(nodes), "blackhole-20")


def test_unfolded_batch_norm_is_a_codegen_error() -> None:
    g = tiny_graph()
    bn = Node("backbone.stem.conv1.norm", "batch_norm", ("backbone.stem.conv1",), TensorInfo((1, 16, 16, 32)),
              "backbone.stem.conv1.norm", attrs={"eps": 1e-5}, plan=plan())
    nodes = list(g.nodes)
    nodes.insert(3, bn)
    with pytest.raises(CodegenError, match="batch_norm must be folded"):
        render_module(Graph(tuple(nodes), g.outputs, g.meta), "blackhole-20")
