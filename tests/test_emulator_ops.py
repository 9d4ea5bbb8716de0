"""Emulated ttnn ops against plain torch (small shapes), and the checks the real ops make."""

import pytest
import torch
import torch.nn.functional as F

from hardware.targets import get_target
from runtime.emulator import emulated_ttnn

ttnn = emulated_ttnn(get_target("blackhole-p150"))


@pytest.fixture
def device():
    dev = ttnn.open_device(device_id=0, l1_small_size=32768, trace_region_size=1 << 20)
    yield dev
    ttnn.close_device(dev)


def nhwc_flat(x: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.permute(0, 2, 3, 1).reshape(1, 1, n * h * w, c)


def nchw(t, n: int, h: int, w: int) -> torch.Tensor:
    y = ttnn.to_torch(t).float()
    return y.reshape(n, h, w, -1).permute(0, 3, 1, 2)


def run_conv(device, x, w, b, *, stride=1, padding=0, dilation=1, groups=1, cfg=None, dtype=ttnn.float32, **kw):
    n, c, h, wd = x.shape
    xt = ttnn.from_torch(nhwc_flat(x), dtype=dtype, device=device, memory_config=ttnn.L1_MEMORY_CONFIG)
    out, (oh, ow) = ttnn.conv2d(
        input_tensor=xt,
        weight_tensor=ttnn.from_torch(w, dtype=ttnn.float32),
        bias_tensor=ttnn.from_torch(b.reshape(1, 1, 1, -1), dtype=ttnn.float32),
        device=device,
        in_channels=c,
        out_channels=w.shape[0],
        batch_size=n,
        input_height=h,
        input_width=wd,
        kernel_size=tuple(w.shape[2:]),
        stride=(stride, stride),
        padding=(padding, padding),
        dilation=(dilation, dilation),
        groups=groups,
        conv_config=cfg or ttnn.Conv2dConfig(weights_dtype=ttnn.float32),
        return_output_dim=True,
        **kw,
    )
    return nchw(out, n, oh, ow), out


@pytest.mark.parametrize(
    "case",
    [
        dict(cin=16, cout=32, k=3, stride=1, padding=18, dilation=18, groups=1),  # ASPP-style dilation 18
        dict(cin=32, cout=32, k=3, stride=1, padding=1, dilation=1, groups=4),  # grouped
        dict(cin=8, cout=64, k=3, stride=2, padding=1, dilation=1, groups=1),  # stride 2
        dict(cin=3, cout=19, k=1, stride=1, padding=0, dilation=1, groups=1),  # channels not tile aligned
    ],
)
def test_conv2d_matches_torch_in_float32(device, case):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, case["cin"], 40, 48, generator=g)
    w = torch.randn(case["cout"], case["cin"] // case["groups"], case["k"], case["k"], generator=g)
    b = torch.randn(case["cout"], generator=g)
    got, out = run_conv(
        device,
        x,
        w,
        b,
        stride=case["stride"],
        padding=case["padding"],
        dilation=case["dilation"],
        groups=case["groups"],
    )
    ref = F.conv2d(x, w, b, case["stride"], case["padding"], case["dilation"], case["groups"])
    assert got.shape == ref.shape
    assert torch.allclose(got, ref, atol=1e-3, rtol=1e-4)
    assert list(out.shape)[:3] == [1, 1, ref.shape[2] * ref.shape[3]]


def test_conv2d_rounds_to_bfloat16_and_fuses_relu(device):
    g = torch.Generator().manual_seed(1)
    x, w, b = (
        torch.randn(1, 8, 16, 16, generator=g),
        torch.randn(16, 8, 3, 3, generator=g),
        torch.randn(16, generator=g),
    )
    cfg = ttnn.Conv2dConfig(weights_dtype=ttnn.bfloat16, activation=ttnn.UnaryWithParam(ttnn.UnaryOpType.RELU))
    got, out = run_conv(device, x, w, b, padding=1, cfg=cfg, dtype=ttnn.bfloat16)
    ref = torch.relu(F.conv2d(x.bfloat16().float(), w.bfloat16().float(), b.bfloat16().float(), padding=1))
    assert out.dtype == ttnn.bfloat16
    assert torch.equal(got, got.bfloat16().float())  # values are bf16-representable
    assert (got >= 0).all() and torch.allclose(got, ref, atol=0.1, rtol=0.02)


def test_conv2d_is_keyword_only_and_validates(device):
    x = ttnn.from_torch(torch.zeros(1, 1, 64, 8), dtype=ttnn.bfloat16, device=device)
    w = ttnn.from_torch(torch.zeros(8, 8, 3, 3))
    with pytest.raises(TypeError):
        ttnn.conv2d(x, w, device, 8, 8, 1, 8, 8, (3, 3))
    common = dict(
        input_tensor=x,
        weight_tensor=w,
        device=device,
        in_channels=8,
        out_channels=8,
        batch_size=1,
        input_height=8,
        input_width=8,
        kernel_size=(3, 3),
        padding=(1, 1),
    )
    with pytest.raises(RuntimeError, match="act_block_h_override \\(33\\) must be a multiple of 32"):
        ttnn.conv2d(**common, conv_config=ttnn.Conv2dConfig(act_block_h_override=33))


def test_a_1x1_stride_1_conv_runs_as_a_matmul_and_writes_tile(device):
    x = ttnn.from_torch(
        torch.randn(1, 1, 64, 32), dtype=ttnn.bfloat16, device=device, memory_config=ttnn.L1_MEMORY_CONFIG
    )
    row_major = ttnn.Conv2dConfig(weights_dtype=ttnn.bfloat16, output_layout=ttnn.ROW_MAJOR_LAYOUT)
    common = dict(
        input_tensor=x,
        device=device,
        in_channels=32,
        out_channels=32,
        batch_size=1,
        input_height=8,
        input_width=8,
        conv_config=row_major,
    )
    one = ttnn.conv2d(**common, weight_tensor=ttnn.from_torch(torch.randn(32, 32, 1, 1)), kernel_size=(1, 1))
    three = ttnn.conv2d(
        **common, weight_tensor=ttnn.from_torch(torch.randn(32, 32, 3, 3)), kernel_size=(3, 3), padding=(1, 1)
    )
    assert (one.layout, three.layout) == (ttnn.TILE_LAYOUT, ttnn.ROW_MAJOR_LAYOUT)


def test_pools_match_torch(device):
    x = torch.randn(1, 32, 20, 24, generator=torch.Generator().manual_seed(2))
    xt = ttnn.from_torch(nhwc_flat(x), dtype=ttnn.float32, device=device)
    mp = ttnn.max_pool2d(xt, 1, 20, 24, 32, [3, 3], [2, 2], [1, 1], [1, 1], dtype=ttnn.float32)
    assert torch.equal(nchw(mp, 1, 10, 12), F.max_pool2d(x, 3, 2, 1))
    ap = ttnn.avg_pool2d(xt, 1, 20, 24, 32, [2, 2], [2, 2], [0, 0], dtype=ttnn.float32)
    assert torch.allclose(nchw(ap, 1, 10, 12), F.avg_pool2d(x, 2, 2), atol=1e-6)
    g = ttnn.global_avg_pool2d(ttnn.reshape(xt, (1, 20, 24, 32)), dtype=ttnn.float32)
    assert list(g.shape) == [1, 1, 1, 32] and g.layout == ttnn.TILE_LAYOUT
    assert torch.allclose(ttnn.to_torch(g).reshape(-1), x.mean(dim=(2, 3)).reshape(-1), atol=1e-5)


def height_sharded(device, rows: int, channels: int, cores: int):
    grid = ttnn.num_cores_to_corerangeset(cores, device.compute_with_storage_grid_size(), True)
    spec = ttnn.ShardSpec(grid, [-(-rows // cores), channels], ttnn.ShardOrientation.ROW_MAJOR)
    return ttnn.MemoryConfig(ttnn.TensorMemoryLayout.HEIGHT_SHARDED, ttnn.BufferType.L1, spec)


def test_upsample_nearest_and_bilinear(device):
    x = torch.randn(1, 32, 16, 32, generator=torch.Generator().manual_seed(3))
    nhwc = x.permute(0, 2, 3, 1)
    xt = ttnn.from_torch(nhwc, dtype=ttnn.bfloat16, device=device)
    near = ttnn.upsample(xt, 2)
    assert torch.equal(
        ttnn.to_torch(near).float().permute(0, 3, 1, 2),
        F.interpolate(x.bfloat16().float(), scale_factor=2, mode="nearest"),
    )
    with pytest.raises(RuntimeError, match="Bilinear upsample requires sharded input tensor"):
        ttnn.upsample(xt, 2, mode="bilinear")
    sharded = ttnn.to_memory_config(xt, height_sharded(device, 16 * 32, 32, 16))
    with pytest.raises(RuntimeError, match="integer scale factors"):
        ttnn.upsample(sharded, 1.5, mode="bilinear")
    bil = ttnn.upsample(sharded, 4, mode="bilinear")
    ref = F.interpolate(x.bfloat16().float(), scale_factor=4, mode="bilinear", align_corners=False)
    assert torch.allclose(ttnn.to_torch(bil).float().permute(0, 3, 1, 2), ref, atol=0.05)
    assert bil.memory_config().shard_spec.shape == [32 * 16, 32]
    with pytest.raises(RuntimeError, match="sharded output"):
        ttnn.upsample(sharded, 2, mode="bilinear", memory_config=ttnn.DRAM_MEMORY_CONFIG)
    narrow = ttnn.to_memory_config(
        ttnn.from_torch(nhwc[..., :8], dtype=ttnn.bfloat16, device=device), height_sharded(device, 16 * 32, 8, 16)
    )
    with pytest.raises(RuntimeError, match="in_channels % 32 == 0"):
        ttnn.upsample(narrow, 2, mode="bilinear")


def test_use_after_deallocate_is_an_error_also_through_views(device):
    a = ttnn.from_torch(torch.zeros(1, 1, 64, 32), dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device)
    view = ttnn.reshape(a, (1, 2, 32, 32))
    ttnn.deallocate(a)
    assert not a.is_allocated() and not view.is_allocated()
    with pytest.raises(RuntimeError, match="deallocated"):
        ttnn.relu(view)
    with pytest.raises(RuntimeError, match="deallocated"):
        ttnn.to_torch(a)
    b = ttnn.from_torch(torch.ones(1, 1, 32, 32), dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device)
    moved = ttnn.reallocate(b)  # the input is gone, its values live on in the new tensor
    assert not b.is_allocated() and torch.equal(ttnn.to_torch(moved).float(), torch.ones(1, 1, 32, 32))


def test_add_multiply_relu_concat(device):
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(1, 1, 64, 32, generator=g), torch.randn(1, 1, 64, 32, generator=g)
    ta = ttnn.from_torch(a, dtype=ttnn.float32, layout=ttnn.TILE_LAYOUT, device=device)
    tb = ttnn.from_torch(b, dtype=ttnn.float32, layout=ttnn.TILE_LAYOUT, device=device)
    s = ttnn.add(ta, tb, activations=[ttnn.UnaryWithParam(ttnn.UnaryOpType.RELU)])
    assert torch.equal(ttnn.to_torch(s), torch.relu(a + b))
    with pytest.raises(TypeError):
        ttnn.add(ta, tb, activations=["relu"])
    with pytest.raises(TypeError, match="must be a list"):  # real ttnn's binding refuses None too
        ttnn.add(ta, tb, activations=None)
    assert torch.equal(ttnn.to_torch(ttnn.multiply(ta, tb)), a * b)
    assert torch.equal(ttnn.to_torch(ttnn.relu(ta)), torch.relu(a))
    c = ttnn.concat([ta, tb], dim=-1)
    assert torch.equal(ttnn.to_torch(c), torch.cat([a, b], dim=-1))


def test_layouts_reshape_permute_and_host_moves(device):
    t = torch.randn(2, 3, 40, 33, generator=torch.Generator().manual_seed(5))
    host = ttnn.from_torch(t, dtype=ttnn.bfloat8_b, layout=ttnn.TILE_LAYOUT)
    assert list(host.padded_shape) == [2, 3, 64, 64] and host.storage_type() == ttnn.StorageType.HOST
    with pytest.raises(RuntimeError, match="Layout must be Layout::TILE for bfloat8_b"):
        ttnn.from_torch(t, dtype=ttnn.bfloat8_b)
    dev = ttnn.to_device(ttnn.from_torch(t, dtype=ttnn.float32), device)
    assert torch.equal(ttnn.to_torch(ttnn.permute(dev, (0, 2, 3, 1))), t.permute(0, 2, 3, 1))
    assert torch.equal(ttnn.to_torch(ttnn.reshape(dev, (6, 40, 33))), t.reshape(6, 40, 33))
    assert torch.equal(ttnn.to_torch(ttnn.from_device(ttnn.to_layout(dev, ttnn.TILE_LAYOUT))), t)


def test_slice_takes_a_box_and_checks_its_bounds(device):
    t = torch.randn(1, 1, 96, 64, generator=torch.Generator().manual_seed(6))
    x = ttnn.from_torch(t, dtype=ttnn.float32, layout=ttnn.TILE_LAYOUT, device=device)
    band = ttnn.slice(x, [0, 0, 32, 0], [1, 1, 96, 64])
    assert torch.equal(ttnn.to_torch(band), t[:, :, 32:96])
    sharded = ttnn.to_memory_config(x, height_sharded(device, 96, 64, 3))
    kept = ttnn.slice(sharded, [0, 0, 0, 0], [1, 1, 64, 64], memory_config=ttnn.DRAM_MEMORY_CONFIG)
    assert torch.equal(ttnn.to_torch(kept), t[:, :, :64]) and not kept.is_sharded()
    with pytest.raises(RuntimeError, match="out of range"):
        ttnn.slice(x, [0, 0, 0, 0], [1, 1, 97, 64])
    bf8 = ttnn.from_torch(t, dtype=ttnn.bfloat8_b, layout=ttnn.TILE_LAYOUT, device=device)
    with pytest.raises(RuntimeError, match="strided slicing is not supported for bfloat8_b"):
        ttnn.slice(bf8, [0, 0, 0, 0], [1, 1, 96, 64], [1, 1, 2, 1])


def test_trace_replays_recorded_ops_on_the_same_buffers(device):
    x0, x1 = torch.randn(1, 1, 32, 32), torch.randn(1, 1, 32, 32)
    inp = ttnn.from_torch(x0, dtype=ttnn.float32, layout=ttnn.TILE_LAYOUT, device=device)
    tid = ttnn.begin_trace_capture(device, cq_id=0)
    out = ttnn.relu(ttnn.add(inp, inp))
    ttnn.end_trace_capture(device, tid, cq_id=0)
    ttnn.copy_host_to_device_tensor(ttnn.from_torch(x1, dtype=ttnn.float32, layout=ttnn.TILE_LAYOUT), inp)
    ttnn.execute_trace(device, tid, cq_id=0, blocking=True)
    assert torch.equal(ttnn.to_torch(out), torch.relu(2 * x1))
    ttnn.release_trace(device, tid)
    no_trace = ttnn.open_device(device_id=0, l1_small_size=1024)
    with pytest.raises(RuntimeError, match="trace region"):
        ttnn.begin_trace_capture(no_trace)


def test_unemulated_real_ops_are_refused_but_config_classes_forward():
    with pytest.raises(AttributeError, match="not emulated"):
        ttnn.softmax  # noqa: B018
    assert ttnn.Conv2dConfig().act_block_w_div == 1
    assert ttnn.TILE_LAYOUT.name == "TILE"


def test_a_loop_that_drops_its_l1_tensors_never_runs_out(device):
    """Tensors Python drops cost the emulator nothing (it models no memory: real ttnn on a mock device
    judges L1): 200 rounds of L1 tensors (1 MiB per core, with the relu's output) never deallocated by hand;
    they used to hit a false out-of-memory within a few rounds."""
    rows = 20 * 512  # 512 rows of 512 bf16 channels per core on the 20-core grid: 512 KiB per core
    for _ in range(200):
        t = ttnn.from_torch(
            torch.zeros(1, 1, rows, 512),
            dtype=ttnn.bfloat16,
            layout=ttnn.TILE_LAYOUT,
            device=device,
            memory_config=ttnn.L1_MEMORY_CONFIG,
        )
        y = ttnn.relu(t)
        del t, y
