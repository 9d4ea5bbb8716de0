"""The code generator on a small hand-planned graph: what it writes for each op, and its guarantees."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
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


def _method(text: str, name: str) -> list[str]:
    """The stripped lines of one method of the generated class."""
    body = text[text.index(f"    def {name}(") :]
    end = body.find("\n    def ", 1)
    return [line.strip() for line in (body[:end] if end > 0 else body).splitlines() if line.strip()]


def _flat(lines: list[str]) -> str:
    """Lines joined without whitespace: calls compare as written, however the formatter wrapped them."""
    return re.sub(r"\s+", "", "".join(lines))


def _index(lines: list[str], prefix: str) -> int:
    hits = [i for i, line in enumerate(lines) if line.startswith(prefix)]
    assert len(hits) == 1, f"{prefix!r} found {len(hits)} times"
    return hits[0]


def test_forward_calls_one_method_per_module_with_its_inputs_and_results(text: str) -> None:
    forward = _method(text, "forward")
    assert 'stem_pool = self.stem("backbone.stem", normalize)' in forward
    assert 'res2_0_add = self.res2_0("backbone.res2.0", stem_pool, taps)' in forward
    # the ASPP moves res2_0_add (to DRAM) and returns it with its own result for the heads after it
    assert "res2_0_add,sem_decoder_res5_project_conv_cat=self.sem_aspp(" in _flat(forward)
    assert 'ins_offset_scale = self.ins_head("ins_embed_head", res2_0_add)' in forward
    assert _method(text, "res2_0")[0] == "def res2_0(self, name, x, taps):"


def test_conv_is_one_call_reading_its_table_row(text: str) -> None:
    assert 'conv1 = self.conv2d(f"{name}.conv1", x)  # 32->32 1x1, relu on 16x32' in _method(text, "res2_0")
    row = text[text.index('    "backbone.stem.conv1": dict(') : text.index('    "backbone.res2.0.conv1": dict(')]
    for field in (
        "batch_size=1",
        "input_height=64",
        "input_width=128",
        "in_channels=3",
        "out_channels=32",
        "kernel_size=(3, 3)",
        "stride=(2, 2)",
        "padding=(1, 1)",
        "weights_dtype=ttnn.bfloat8_b",
        "activation=ttnn.UnaryWithParam(ttnn.UnaryOpType.RELU)",
        "slice_config=ttnn.Conv2dSliceConfig(slice_type=ttnn.Conv2dDRAMSliceWidth, num_slices=2)",
        "memory_config=ttnn.DRAM_MEMORY_CONFIG",
        "compute_config=COMPUTE_HIFI2,",
    ):
        assert field in row, field
    assert "COMPUTE_HIFI2 = ttnn.WormholeComputeKernelConfig(" in text  # declared once, by name
    # a conv without a fused activation gets none
    row2 = text[text.index('    "backbone.res2.0.conv2": dict(') : text.index('    "sem_seg_head.decoder')]
    assert "activation=" not in row2
    # an L1 conv says so: with slice_config=None ttnn would slice a DRAM input by its own estimate
    assert "slice_config=ttnn.Conv2dL1FullSliceConfig," in row2


def test_planned_spill_and_reshard_replace_the_tensor(text: str) -> None:
    lines = _method(text, "res2_0")
    spill, reshard = [i for i, line in enumerate(lines) if line.startswith("x = move(")]
    assert lines[spill] == "x = move(x, ttnn.DRAM_MEMORY_CONFIG)"  # spilled before conv2 runs
    assert spill < _index(lines, "conv2 = self.conv2d(") < reshard
    assert lines[reshard] == "x = move(x, HEIGHT_8CORES_64x32)"
    assert "HEIGHT_8CORES_64x32 = sharded(HEIGHT, (5, 4), 8, (64, 32))" in text  # the shard spec, named
    # the module's move() frees the old copy
    assert "    moved = ttnn.to_memory_config(x, memory_config)\n    ttnn.deallocate(x)\n    return moved" in text


def test_add_fuses_relu_after_the_planned_reshard_and_frees_at_last_use(text: str) -> None:
    lines = _method(text, "res2_0")
    reshard = [i for i, line in enumerate(lines) if line.startswith("x = move(")][-1]
    add = _index(lines, "add = ttnn.add(")
    assert reshard < add
    assert _flat(lines[add:]).startswith(
        "add=ttnn.add(conv2,x,activations=[ttnn.UnaryWithParam(ttnn.UnaryOpType.RELU)]"
    )
    # conv1 dies at conv2, conv2 and the (moved) pool output at the add, after its tap copy
    assert _index(lines, "ttnn.deallocate(conv1)") == _index(lines, "conv2 = self.conv2d(") + 1
    tap = _index(lines, 'taps["res2"] = ttnn.to_memory_config(add, ttnn.DRAM_MEMORY_CONFIG)')
    assert add < tap < _index(lines, "ttnn.deallocate(conv2)") < _index(lines, "ttnn.deallocate(x)")


def test_upsample_uses_an_integer_scale_on_an_nhwc_view(text: str) -> None:
    lines = _method(text, "sem_head")
    up = _index(lines, "upsample = ttnn.upsample(")
    # the 4-class predictor was widened to 32 channels (bilinear needs channels % 32 == 0)
    assert _flat(lines[up:]).startswith(
        'upsample=ttnn.upsample(ttnn.reshape(predictor_rm,(1,16,32,32)),(4,4),mode="bilinear",'
    )
    assert "upsample = ttnn.reshape(upsample, (1, 1, 8192, 32))" in lines
    assert '"sem_seg": (1, 4, 64, 128),' in text  # OUTPUTS: the real channels, read from the first 4
    # a 1x1 conv runs as a matmul, which writes TILE whatever output_layout says: a conversion is emitted
    assert _index(lines, "predictor_rm = ttnn.to_layout(predictor, ttnn.ROW_MAJOR_LAYOUT)") < up
    row = text[text.index('    "sem_seg_head.predictor": dict(') : text.index("OUTPUT_MEMORY = {")]
    assert "output_layout=ttnn.TILE_LAYOUT" in row and "compute_config=COMPUTE_HIFI4_FP32_ACC" in row


def test_a_conv_feeding_only_an_upsample_writes_row_major_itself() -> None:
    text = render_module(tiny_graph(predictor_kernel=3), "blackhole-20")
    lines = _method(text, "sem_head")
    up = _index(lines, "upsample = ttnn.upsample(")
    assert _flat(lines[up:]).startswith("upsample=ttnn.upsample(ttnn.reshape(predictor,(1,16,32,32)),(4,4),")
    assert not any(line.startswith("predictor_rm") for line in lines)
    row = text[text.index('    "sem_seg_head.predictor": dict(') : text.index("OUTPUT_MEMORY = {")]
    assert "output_layout=ttnn.ROW_MAJOR_LAYOUT" in row


def test_concat_of_mixed_layouts_tilizes_the_row_major_input(text: str) -> None:
    lines = _method(text, "sem_aspp")
    conv = _index(lines, "pool_up_tiled = ttnn.to_layout(")
    cat = _index(lines, "cat = ttnn.concat(")
    assert conv < cat
    assert _flat(lines[cat:]).startswith("cat=ttnn.concat([x,pool_up_tiled],dim=3,")
    # the concat is the upsample output's last use: the row-major original goes right after conversion
    assert lines[conv + 1] == "ttnn.deallocate(pool_up)"


def test_pool_input_interleaved_output_sharded_names_the_shard_scheme(text: str) -> None:
    call = _flat(_method(text, "stem"))
    call = call[call.index("pool=ttnn.max_pool2d(") :]
    assert "applied_shard_scheme=ttnn.TensorMemoryLayout.HEIGHT_SHARDED" in call
    assert "input_h=32,input_w=64,channels=32" in call and "dilation=(1,1)" in call


def test_blocks_with_the_same_code_share_one_method() -> None:
    from templates.methods import Block, split

    body = '        res4_{i}_conv1 = self.conv2d("backbone.res4.{i}.conv1", {x})\n        ttnn.deallocate({x})\n'
    blocks = [
        Block(
            "bottleneck",
            f"backbone.res4.{i}",
            f"res4_{i}",
            (f"res4_{i}_",),
            body.format(i=i, x="x" if i == 0 else f"res4_{i - 1}_conv1"),
        )
        for i in range(3)
    ]
    methods, calls = split(blocks, ("x",), ("res4_2_conv1",))
    assert [m.name for m in methods] == ["res4_bottleneck"]
    assert methods[0].body == '        conv1 = self.conv2d(f"{name}.conv1", x)\n        ttnn.deallocate(x)\n'
    assert (methods[0].params, methods[0].returns) == (("x",), ("conv1",))
    assert [c.line(True) for c in calls] == [
        'res4_0_conv1 = self.res4_bottleneck("backbone.res4.0", x)',
        'res4_1_conv1 = self.res4_bottleneck("backbone.res4.1", res4_0_conv1)',
        'res4_2_conv1 = self.res4_bottleneck("backbone.res4.2", res4_1_conv1)',
    ]
    # one layer different: its own method
    blocks[1] = dataclasses.replace(blocks[1], code=blocks[1].code.replace("_conv1)", "_conv1, 2)", 1))
    assert [m.name for m in split(blocks, ("x",), ("res4_2_conv1",))[0]] == ["res4_bottleneck", "res4_1"]


def test_generated_lines_and_functions_are_short(text: str) -> None:
    assert max(len(line) for line in text.splitlines()) <= 100
    functions = [n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.FunctionDef)]
    assert max(n.end_lineno - n.lineno + 1 for n in functions) <= 150  # type: ignore[operator]


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
    bn = Node(
        "backbone.stem.conv1.norm",
        "batch_norm",
        ("backbone.stem.conv1",),
        TensorInfo((1, 16, 16, 32)),
        "backbone.stem.conv1.norm",
        attrs={"eps": 1e-5},
        plan=plan(),
    )
    nodes = list(g.nodes)
    nodes.insert(3, bn)
    with pytest.raises(CodegenError, match="batch_norm must be folded"):
        render_module(Graph(tuple(nodes), g.outputs, g.meta), "blackhole-20")
