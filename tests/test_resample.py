"""The resample op (bilinear resize at any scale, average pool as matmuls) against torch.

- converter/resample.py's matrices, applied as the IR interpreter does, equal F.interpolate
  (align_corners False and True) and F.avg_pool2d (the released model's 32x64 stride-1 ASPP pooling
  at 1024x2048 included);
- the generated modules' resample() (templates/resample.py.j2), run on the emulated ttnn with the
  host weights the runtime builds, matches F.interpolate at non-integer scales within bfloat16;
- the resample pass keeps ttnn's own ops where they are cheaper and legal, and replaces the pool
  whose halo cannot fit L1.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from converter.ir import Graph, Node, TensorInfo
from converter.ops import op_kind
from converter.resample import avg_pool_matrix, bilinear_matrix
from hardware.targets import get_target
from passes.resample import resample

_resample = op_kind("resample").reference
assert _resample is not None

SIZES = [((33, 65), (64, 128)), ((17, 33), (32, 64)), ((64, 128), (33, 65)), ((5, 7), (12, 3)), ((1, 1), (32, 64))]


def _node(rows, cols, shape) -> Node:
    return Node(
        "r",
        "resample",
        ("input",),
        TensorInfo(shape),
        "",
        {"kind": "bilinear", "program": "one_row"},
        {"rows": rows, "cols": cols},
    )


@pytest.mark.parametrize("align", [False, True])
@pytest.mark.parametrize("size,out", SIZES)
def test_bilinear_matrices_equal_interpolate(size, out, align):
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(0))
    node = _node(bilinear_matrix(size[0], out[0], align), bilinear_matrix(size[1], out[1], align), (2, 3, *out))
    want = F.interpolate(x, size=out, mode="bilinear", align_corners=align)
    # (torch computes align_corners=True source positions in float32: ~1e-5 apart from exact ones)
    torch.testing.assert_close(_resample(node, x), want, atol=3e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "size,kernel,stride,padding,include",
    [
        ((64, 128), (32, 64), (1, 1), (0, 0), True),  # the released ASPP pooling at 1024x2048
        ((13, 9), (3, 3), (2, 2), (1, 1), True),
        ((13, 9), (3, 5), (1, 2), (1, 2), False),
    ],
)
def test_avg_pool_matrices_equal_avg_pool2d(size, kernel, stride, padding, include):
    x = torch.randn(1, 4, *size, generator=torch.Generator().manual_seed(1))
    rows = avg_pool_matrix(size[0], kernel[0], stride[0], padding[0], include)
    cols = avg_pool_matrix(size[1], kernel[1], stride[1], padding[1], include)
    want = F.avg_pool2d(x, kernel, stride, padding, count_include_pad=include)
    torch.testing.assert_close(_resample(_node(rows, cols, tuple(want.shape)), x), want, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("n,c,size,out", [(1, 256, (33, 65), (64, 128)), (2, 19, (17, 33), (40, 70))])
def test_generated_resample_on_emulator_matches_interpolate(n, c, size, out):
    from runtime.emulator.namespace import emulated_ttnn
    from runtime.weights import host_weights, to_ttnn
    from templates.render import resample_source

    target = get_target("blackhole-20")
    ttnn = emulated_ttnn(target)
    namespace = {"ttnn": ttnn, "GRID": target.grid}
    exec(resample_source(), namespace)
    x = torch.randn(n, c, *size, generator=torch.Generator().manual_seed(2)).to(torch.bfloat16).to(torch.float32)
    node = _node(bilinear_matrix(size[0], out[0], False), bilinear_matrix(size[1], out[1], False), (n, c, *out))
    inp = Node("input", "input", (), TensorInfo((n, c, *size)), "")
    graph = Graph((inp, node, Node("output.y", "output", ("r",), node.out, "")), {"y": "output.y"})
    device = ttnn.open_device(device_id=0)
    module = namespace["Resample"]()
    module.params = {
        k: ttnn.to_device(v, device, memory_config=ttnn.DRAM_MEMORY_CONFIG)
        for k, v in to_ttnn(host_weights(graph), ttnn).items()
    }
    flat = ttnn.from_torch(
        x.permute(0, 2, 3, 1).reshape(1, 1, -1, c),
        dtype=ttnn.bfloat16,
        layout=ttnn.ROW_MAJOR_LAYOUT,
        device=device,
        memory_config=ttnn.DRAM_MEMORY_CONFIG,
    )
    y = module.resample("r", flat, (n, *size, c), out, ttnn.MathFidelity.HiFi4, ttnn.DRAM_MEMORY_CONFIG)
    got = ttnn.to_torch(y).reshape(n, *out, c).permute(0, 3, 1, 2).float()
    want = F.interpolate(x, size=out, mode="bilinear", align_corners=False)
    err = (got - want).abs().max().item()
    assert err <= 2**-6 * want.abs().max().item(), err  # bfloat16 partials and output
    assert torch.corrcoef(torch.stack([got.flatten(), want.flatten()]))[0, 1] > 0.9999


def _pool_graph(size, kernel) -> Graph:
    inp = Node("input", "input", (), TensorInfo((1, 2048, *size)), "")
    out_hw = (size[0] - kernel[0] + 1, size[1] - kernel[1] + 1)
    pool = Node(
        "pool",
        "avg_pool2d",
        ("input",),
        TensorInfo((1, 2048, *out_hw)),
        "aspp",
        {"kernel_size": kernel, "stride": (1, 1), "padding": (0, 0), "ceil_mode": False, "count_include_pad": True},
    )
    up = Node(
        "up",
        "upsample",
        ("pool",),
        TensorInfo((1, 2048, out_hw[0] * 2, out_hw[1] * 2)),
        "aspp",
        {"scale_factor": (2, 2), "mode": "bilinear", "align_corners": False},
    )
    return Graph((inp, pool, up, Node("output.y", "output", ("up",), up.out, "")), {"y": "output.y"})


@pytest.mark.parametrize("target", ["blackhole-20", "blackhole-p150", "wormhole-n150"])
def test_pass_replaces_the_pool_ttnn_cannot_hold_and_keeps_upsample(target):
    g = resample(_pool_graph((64, 128), (32, 64)), get_target(target))
    assert [n.op for n in g] == ["input", "resample", "upsample", "output"]
    assert g.node("pool").attrs == {"kind": "avg_pool", "program": "one_row"}


def test_pass_keeps_a_small_pool():
    g = resample(_pool_graph((32, 64), (3, 3)), get_target("blackhole-20"))
    assert [n.op for n in g] == ["input", "avg_pool2d", "upsample", "output"]


def test_multicast_matmuls_read_each_operand_once():
    """An x4 upsample 16x32 -> 64x128 of 32 channels (bfloat16 tiles of 2048 B), as the cost model prices
    the two matmuls' operands: one_row re-reads in1 for every output tile row, multicast reads it once.
    Over W: M=16 (1 tile), K=32 (1), N=128 (4); over H: M=64 (2), K=16 (1), N=128 (4); batch 32."""
    from converter.ops import is_host
    from passes.cost_model import Operand, op_cost
    from passes.overrides import LayerOverride, Overrides
    from passes.plan import DRAM_INTERLEAVED, OpPlan

    inp = Node("input", "input", (), TensorInfo((1, 32, 16, 32)), "")
    up = Node(
        "up", "upsample", ("input",), TensorInfo((1, 32, 64, 128)), "h",
        {"scale_factor": (4, 4), "mode": "bilinear", "align_corners": False},
    )  # fmt: skip
    g = Graph((inp, up, Node("output.y", "output", ("up",), up.out, "")), {"y": "output.y"})
    target = get_target("blackhole-p150")
    plan = OpPlan("bfloat16", None, "HiFi4", False, output=DRAM_INTERLEAVED)
    src = [Operand((1, 32, 16, 32), "bfloat16", DRAM_INTERLEAVED)]
    bytes_of = {}
    for choice in ("matmuls", "matmuls_multicast"):
        (r,) = [n for n in resample(g, target, Overrides({"up": LayerOverride(upsample=choice)})) if not is_host(n)]
        assert r.op == "resample"
        bytes_of[choice] = op_cost(r, plan, target, src).dram_bytes
    tile = 2048
    one_row = 32 * (1 * (1 + 1 * 4 + 4) + 2 * (1 + 1 * 4 + 4)) * tile  # batch * M * (K + K*N + N) per matmul
    multicast = 32 * ((1 * 1 + 1 * 4 + 1 * 4) + (2 * 1 + 1 * 4 + 2 * 4)) * tile  # batch * (M*K + K*N + M*N)
    assert bytes_of["matmuls"] - bytes_of["matmuls_multicast"] == one_row - multicast
