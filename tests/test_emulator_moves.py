"""Data moves skip re-rounding only when the values already hold the output dtype."""

import torch

from hardware.targets import get_target
from runtime.emulator import emulated_ttnn
from runtime.emulator.dtypes import round_bfloat8_b

ttnn = emulated_ttnn(get_target("blackhole-p150"))


def test_moves_round_to_a_new_dtype_and_keep_values_otherwise():
    x = torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(0)) * 100
    device = ttnn.open_device(device_id=0, l1_small_size=32768)
    try:
        f32 = ttnn.from_torch(x, dtype=ttnn.float32, layout=ttnn.TILE_LAYOUT, device=device)
        bf16 = ttnn.to_memory_config(f32, ttnn.L1_MEMORY_CONFIG, dtype=ttnn.bfloat16)
        assert torch.equal(ttnn.to_torch(bf16).float(), x.bfloat16().float())
        bf8 = ttnn.to_memory_config(bf16, ttnn.DRAM_MEMORY_CONFIG, dtype=ttnn.bfloat8_b)
        assert torch.equal(ttnn.to_torch(bf8).float(), round_bfloat8_b(x.bfloat16().float()))
        assert not torch.equal(ttnn.to_torch(bf8).float(), x.bfloat16().float())
        moved = ttnn.reallocate(ttnn.to_memory_config(bf16, ttnn.DRAM_MEMORY_CONFIG))
        assert moved.dtype == ttnn.bfloat16 and torch.equal(ttnn.to_torch(moved).float(), x.bfloat16().float())
    finally:
        ttnn.close_device(device)
