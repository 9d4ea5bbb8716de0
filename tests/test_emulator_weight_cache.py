"""The emulator caches rounded conv weights on the host values; the cache must never serve stale values."""

import torch

from hardware.targets import get_target
from runtime.emulator import emulated_ttnn
from tests.emulated_conv import conv

ttnn = emulated_ttnn(get_target("blackhole-p150"))


def _conv(device, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return conv(ttnn, device, x, w, padding=1, weights_dtype=ttnn.bfloat8_b)


def test_weights_edited_in_place_are_rounded_again():
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(1, 32, 8, 8, generator=g), torch.randn(16, 32, 3, 3, generator=g)
    device = ttnn.open_device(device_id=0, l1_small_size=32768)
    try:
        before = _conv(device, x, w)
        assert torch.equal(_conv(device, x, w), before)  # same values: same result (served from the cache)
        w.mul_(-3.0)
        after = _conv(device, x, w)
        assert torch.equal(after, _conv(device, x, w.clone()))  # as if the edited weights were new
        assert not torch.equal(after, before)
    finally:
        ttnn.close_device(device)
