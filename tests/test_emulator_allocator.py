"""Device memory: lock-step banks, top-down L1 first fit, fragmentation, OOM and CB clash messages,
use after deallocate, and a sharded program that fits one target's L1 but not another's."""

import pytest
import torch

from passes.targets import get_target
from runtime.emulator import DeviceMemoryError, emulated_ttnn
from runtime.emulator.allocator import BankManager

ttnn = emulated_ttnn(get_target("blackhole-20"))
T20 = get_target("blackhole-20")
TOP = T20.l1_bytes_per_core  # no l1_small: L1 buffers start right below the top of L1


def l1_tile_tensor(device, rows: int, cols: int = 32):
    return ttnn.from_torch(torch.zeros(1, 1, rows, cols), dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT,
                           device=device, memory_config=ttnn.L1_MEMORY_CONFIG)


def test_interleaved_pages_spread_round_robin_over_lockstep_banks():
    device = ttnn.open_device(device_id=0)
    # 21 bf16 tiles over 20 banks: every bank reserves ceil(21/20) = 2 pages of 2048 B, in lock-step
    a = l1_tile_tensor(device, 21 * 32)
    assert (a._buffer.address, a._buffer.bytes_per_bank) == (TOP - 4096, 4096)
    b = l1_tile_tensor(device, 20 * 32)  # exactly one page per bank, allocated top-down below a
    assert b._buffer.address == TOP - 4096 - 2048
    assert device.memory.l1_in_use() == 6144


def test_sharded_buffer_reserves_its_range_on_every_bank():
    device = ttnn.open_device(device_id=0)
    grid = ttnn.CoreRangeSet([ttnn.CoreRange(ttnn.CoreCoord(0, 0), ttnn.CoreCoord(1, 0))])  # 2 of 20 cores
    mc = ttnn.MemoryConfig(ttnn.TensorMemoryLayout.HEIGHT_SHARDED, ttnn.BufferType.L1,
                           ttnn.ShardSpec(grid, [64, 32], ttnn.ShardOrientation.ROW_MAJOR))
    s = ttnn.from_torch(torch.zeros(1, 1, 128, 32), dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device,
                        memory_config=mc)
    assert s._buffer.bytes_per_bank == 2 * 2048
    follower = l1_tile_tensor(device, 20 * 32)  # lands below the shard range on all banks
    assert follower._buffer.address == s._buffer.address - 2048


def test_fragmentation_blocks_a_buffer_that_total_free_space_could_hold():
    bank = BankManager("L1", num_banks=1, lo=0, hi=4096, alignment=16, top_down=True)
    a, b, c = (bank.allocate(1024, 1024) for _ in range(3))
    assert (a, b, c) == (3072, 2048, 1024)  # top-down first fit
    bank.release(a)
    bank.release(c)  # 3 KiB free, but split by b into 2 KiB + 1 KiB
    with pytest.raises(DeviceMemoryError) as err:
        bank.allocate(2560, 2560)
    assert "free: 3072 B, largest free block: 2048 B" in str(err.value)
    assert bank.allocate(2048, 2048) == 0


def test_out_of_memory_message_is_ttnn_shaped():
    device = ttnn.open_device(device_id=0, l1_small_size=32768)
    too_big = 20 * (T20.l1_unreserved_per_core // 2048 + 1) * 32  # one tile more per bank than fits
    with pytest.raises(DeviceMemoryError, match=r"Out of Memory: Not enough space to allocate \d+ B L1 buffer across "
                                                r"20 banks, where each bank needs to store \d+ B, but bank size is "
                                                rf"{T20.l1_unreserved_per_core - 32768} B"):
        l1_tile_tensor(device, too_big)


def test_use_after_deallocate_is_an_error_and_frees_the_range():
    device = ttnn.open_device(device_id=0)
    a = l1_tile_tensor(device, 64)
    ttnn.deallocate(a)
    assert device.memory.l1_in_use() == 0 and not a.is_allocated()
    with pytest.raises(RuntimeError, match="deallocated"):
        ttnn.relu(a)
    with pytest.raises(RuntimeError, match="deallocated"):
        ttnn.to_torch(a)


def test_circular_buffers_clash_with_l1_buffers():
    device = ttnn.open_device(device_id=0)
    l1_tile_tensor(device, 20 * 32 * 600)  # 600 tiles per bank = 1.2 MB from the top
    lowest = device.memory.lowest_l1_address()
    with pytest.raises(DeviceMemoryError, match="clash with L1 buffers .* L1 buffer allocated at "
                                                rf"{lowest} and static circular buffer region ends at"):
        with device.program("big_cb_op", cb_bytes=lowest - device.memory.unreserved_base + 16):
            pass
    with device.program("small_cb_op", cb_bytes=1024):
        pass
    assert device.op_log[-1].cb_bytes == 1024 and device.peak_l1_per_core() >= 600 * 2048 + 1024


def residual_program(ttnn_ns) -> int:
    """A hand-written TTNN program: two height-sharded activations over the whole compute grid and a
    residual add with fused ReLU; returns the peak L1 per core."""
    device = ttnn_ns.open_device(device_id=0, l1_small_size=32768)
    grid = device.compute_with_storage_grid_size()
    cores = grid.x * grid.y
    rows, channels = 20 * 1024, 256
    rows_per_core = -(-rows // (32 * cores)) * 32
    spec = ttnn_ns.ShardSpec(ttnn_ns.num_cores_to_corerangeset(-(-rows // rows_per_core), grid, True),
                             [rows_per_core, channels], ttnn_ns.ShardOrientation.ROW_MAJOR)
    mc = ttnn_ns.MemoryConfig(ttnn_ns.TensorMemoryLayout.HEIGHT_SHARDED, ttnn_ns.BufferType.L1, spec)
    x = torch.ones(1, 1, rows, channels)
    a = ttnn_ns.from_torch(x, dtype=ttnn_ns.bfloat16, layout=ttnn_ns.TILE_LAYOUT, device=device, memory_config=mc)
    b = ttnn_ns.from_torch(x, dtype=ttnn_ns.bfloat16, layout=ttnn_ns.TILE_LAYOUT, device=device, memory_config=mc)
    out = ttnn_ns.add(a, b, activations=[ttnn_ns.UnaryWithParam(ttnn_ns.UnaryOpType.RELU)])
    assert float(ttnn_ns.to_torch(out).float().mean()) == 2.0
    return device.peak_l1_per_core()


def test_sharded_program_too_big_for_blackhole20_fits_on_p150():
    # 20 cores: 3 tensors x 1024 rows x 256 ch x 2 B = 1.5 MiB per core > 1.46 MiB of L1
    with pytest.raises(DeviceMemoryError, match="Out of Memory: Not enough space to allocate .* L1 buffer"):
        residual_program(ttnn)
    # 130 cores: 160 rows per core, 80 KiB per tensor
    peak = residual_program(emulated_ttnn(get_target("blackhole-p150")))
    assert peak == 3 * 160 * 256 * 2
