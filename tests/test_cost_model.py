"""cost_model: behaviour that follows from the model's definition, on small hand-built ops."""

import dataclasses

import pytest

from converter.ir import Graph, Node, TensorInfo
from hardware.targets import get_target
from passes import cost_model as cm
from passes.plan import (
    DRAM_INTERLEAVED,
    Buffer,
    ConvConfig,
    DeviceDtype,
    MathFidelity,
    MemoryLayout,
    OpPlan,
    Placement,
    SliceType,
)

BH20 = get_target("blackhole-20")
DRAM = DRAM_INTERLEAVED


def hs(cores: int) -> Placement:
    return Placement(Buffer.L1, MemoryLayout.HEIGHT_SHARDED, (cores, 1), cores, (32, 64))


def conv_node(cin=64, cout=64, hw=(64, 64), k=3) -> Node:
    attrs = dict(
        in_channels=cin,
        out_channels=cout,
        kernel_size=(k, k),
        stride=(1, 1),
        padding=(k // 2, k // 2),
        dilation=(1, 1),
        groups=1,
        activation="relu",
    )
    return Node("c", "conv2d", ("x",), TensorInfo((1, cout) + hw), "c", attrs)


def conv_plan(cores=20, weights="bfloat8_b", fidelity="LoFi", out: Placement | None = None, slices=0) -> OpPlan:
    conv = ConvConfig(
        MemoryLayout.HEIGHT_SHARDED,
        SliceType.DRAM_SLICE_WIDTH if slices else SliceType.L1_FULL,
        slices,
        0,
        1,
        True,
        False,
        "test",
        grid=(cores, 1),
        num_cores=cores,
    )
    return OpPlan(
        DeviceDtype.BFLOAT16, DeviceDtype(weights), MathFidelity(fidelity), False, conv=conv, output=out or hs(cores)
    )


def cost(node: Node, plan: OpPlan, src: Placement | None = None, cin: int | None = None) -> cm.OpCost:
    shape = (1, cin or node.attrs["in_channels"]) + node.out.shape[2:]
    assert plan.conv is not None
    return cm.op_cost(node, plan, BH20, [cm.Operand(shape, "bfloat16", src or hs(plan.conv.num_cores))])


def test_tensor_bytes_pads_to_tiles_and_counts_bf8_exponents():
    # 1x19x5x7: 35 rows -> 64, 19 channels -> 32: 2x1 tiles.
    assert cm.tensor_bytes((1, 19, 5, 7), "bfloat16") == 2 * 2048
    assert cm.tensor_bytes((1, 19, 5, 7), "bfloat8_b") == 2 * 1088


def test_conv_compute_by_hand():
    # 1x1 conv 64->64 on 32x32, 4 cores, LoFi: 1024 rows = 32 tiles / 4 = 8 per core, 2 output
    # channel tiles, 2 reduction tiles -> 32 tile matmuls x 16 cycles at 1.35 GHz, / efficiency.
    node = conv_node(hw=(32, 32), k=1)
    c = cost(node, conv_plan(cores=4))
    assert c.compute_us == pytest.approx(32 * 16 / cm.MATMUL_EFFICIENCY / 1350)
    assert c.flops == 2 * 32 * 32 * 64 * 64


def test_more_flops_more_time():
    small, big = conv_node(cout=64), conv_node(cout=256)
    assert cost(big, conv_plan()).total_us > cost(small, conv_plan()).total_us
    assert cost(big, conv_plan()).compute_us > cost(small, conv_plan()).compute_us


def test_bf8_weights_faster_than_bf16_at_equal_fidelity():
    node = conv_node(cin=256, cout=256, hw=(32, 64))
    for fidelity in ("LoFi", "HiFi2", "HiFi4"):
        bf8 = cost(node, conv_plan(weights="bfloat8_b", fidelity=fidelity))
        bf16 = cost(node, conv_plan(weights="bfloat16", fidelity=fidelity))
        assert bf8.dram_bytes < bf16.dram_bytes
        assert bf8.total_us < bf16.total_us


def test_hifi4_slower_than_lofi():
    node = conv_node()
    lofi, hifi2, hifi4 = (cost(node, conv_plan(fidelity=f)) for f in ("LoFi", "HiFi2", "HiFi4"))
    assert hifi4.compute_us == pytest.approx(4 * lofi.compute_us)
    assert lofi.total_us < hifi2.total_us < hifi4.total_us


def test_dram_tensors_cost_more_than_l1():
    node = conv_node()
    in_l1 = cost(node, conv_plan())
    in_dram = cost(node, conv_plan(), src=DRAM)
    out_dram = cost(node, conv_plan(out=DRAM))
    assert in_dram.dram_bytes > in_l1.dram_bytes and in_dram.total_us > in_l1.total_us
    assert out_dram.dram_bytes > in_l1.dram_bytes and out_dram.total_us > in_l1.total_us


def test_more_cores_less_compute():
    node = conv_node(hw=(128, 128))
    few, many = cost(node, conv_plan(cores=8)), cost(node, conv_plan(cores=32))
    assert many.compute_us < few.compute_us
    assert many.total_us < few.total_us


def test_dram_slicing_rereads_weights_and_adds_device_ops():
    node = conv_node(hw=(128, 128))
    whole = cost(node, conv_plan(), src=DRAM)
    sliced = cost(node, conv_plan(slices=4, out=DRAM), src=DRAM)
    assert sliced.device_ops > whole.device_ops
    assert sliced.total_us > whole.total_us


def test_reshard_is_costed_as_an_extra_device_op():
    node = conv_node()
    plain = conv_plan()
    moved = dataclasses.replace(plain, reshard_inputs=(("x", hs(20)),))
    a = cost(node, plain, src=DRAM)
    b = cost(node, moved, src=DRAM)
    assert a.reshard_us == 0
    assert b.reshard_us == pytest.approx(cm.reshard_cost((1, 64, 64, 64), "bfloat16", DRAM, hs(20), BH20).total_us)
    assert b.device_ops == 3  # the move, the halo, the conv
    assert b.dram_bytes == a.dram_bytes  # the image is read from DRAM once either way


def test_elementwise_ops_scale_with_size_and_placement():
    def add(hw, out):
        node = Node("a", "add", ("x", "y"), TensorInfo((1, 64) + hw), "a", {"activation": None})
        plan = OpPlan("bfloat16", None, "HiFi4", False, output=out)
        src = cm.Operand((1, 64) + hw, "bfloat16", out)
        return cm.op_cost(node, plan, BH20, [src, src])

    assert add((64, 64), hs(20)).total_us > add((32, 32), hs(20)).total_us
    assert add((64, 64), DRAM).total_us > add((64, 64), hs(20)).total_us


def test_evaluate_sums_ops_and_reports_l1_share():
    x = Node("x", "input", (), TensorInfo((1, 64, 64, 64)), "")
    c1 = dataclasses.replace(conv_node(), name="c1", inputs=("x",), plan=conv_plan(out=hs(20)))
    c2 = dataclasses.replace(conv_node(), name="c2", inputs=("c1",), plan=conv_plan(out=DRAM))
    out = Node("output.sem_seg", "output", ("c2",), c2.out, "")
    g = Graph((x, c1, c2, out), {"sem_seg": "output.sem_seg"})
    pc = cm.evaluate(g, BH20)
    assert [r.name for r in pc.rows] == ["c1", "c2"]
    assert pc.total_ms == pytest.approx(sum(r.cost.total_us for r in pc.rows) / 1e3)
    assert pc.l1_share == pytest.approx(0.5)  # two equal-size activations, one in L1
    # the image arrives in DRAM, so c1 reads it from there; c2 writes its output there
    image = cm.tensor_bytes((1, 64, 64, 64), "bfloat16")
    assert pc.rows[0].cost.dram_bytes > image
    assert pc.rows[1].cost.dram_bytes > image


def test_unplanned_node_is_a_compiler_bug():
    x = Node("x", "input", (), TensorInfo((1, 64, 64, 64)), "")
    c = dataclasses.replace(conv_node(), inputs=("x",))
    with pytest.raises(ValueError, match="no plan"):
        cm.evaluate(Graph((x, c), {}), BH20)


def test_block_sharding_splits_work_but_every_core_reduces_over_all_channels():
    # 1x1 conv 128->128 on 32x32 (32 row tiles, 4 channel tiles). Height sharding on 16 cores:
    # 2 row tiles x 4 output tiles x 4 reduction tiles per core. Block sharding on 4x4: 8 row tiles
    # x 1 output tile x all 4 reduction tiles. Same 32 tile matmuls per core: no FLOPs vanish.
    node = conv_node(cin=128, cout=128, hw=(32, 32), k=1)
    height = conv_plan(cores=16)
    block = dataclasses.replace(
        height, conv=dataclasses.replace(height.conv, shard_layout="BLOCK_SHARDED", grid=(4, 4), num_cores=16)
    )
    expected = 32 * 16 / cm.MATMUL_EFFICIENCY / 1350
    assert cost(node, height).compute_us == pytest.approx(expected)
    assert cost(node, block, src=DRAM).compute_us == pytest.approx(expected)


def test_physical_floor_by_hand():
    # One 3x3 conv 64->64 on 64x64 (out_channels 64, 9*64 = 576 reduction), LoFi bfloat8_b weights, then
    # HiFi4: FLOPs 2*64*64*64*576 at 20 cores x 4096 FLOPs/cycle (LoFi; /4 at HiFi4) x 1.35 GHz.
    # DRAM: image and output 4096 rows x 64 channels (bfloat16), weights 64 x 576 (bfloat8_b:
    # 1088 B per tile), at Blackhole's 512 GB/s.
    x = Node("x", "input", (), TensorInfo((1, 64, 64, 64)), "")
    out = Node("output.sem_seg", "output", ("c",), TensorInfo((1, 64, 64, 64)), "")
    flops = 2 * 64 * 64 * 64 * 576
    dram = (2 * 64 * 4096 * 2 + 2 * 18 * 1088) / 512e9 * 1e3
    for fidelity, phases in (("LoFi", 1), ("HiFi4", 4)):
        c = dataclasses.replace(conv_node(), inputs=("x",), plan=conv_plan(fidelity=fidelity))
        floor = cm.physical_floor(Graph((x, c, out), {"sem_seg": "output.sem_seg"}), BH20)
        assert floor.compute_ms == pytest.approx(flops / (20 * 4096 / phases * 1.35e9) * 1e3)
        assert floor.dram_ms == pytest.approx(dram)
        assert floor.ms == max(floor.compute_ms, floor.dram_ms)
