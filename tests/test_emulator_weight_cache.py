"""The emulator caches rounded conv weights on the host values; the cache must never serve stale values."""

import torch

from passes.targets import get_target
from runtime.emulator import emulated_ttnn

ttnn = emulated_ttnn(get_target("blackhole-p150"))


def _conv(device, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    n, c, h, wd = x.shape
    xt = ttnn.from_torch(x.permute(0, 2, 3, 1).reshape(1, 1, n * h * wd, c), dtype=ttnn.bfloat16, device=device)
    out = ttnn.conv2d(input_tensor=xt, weight_tensor=ttnn.from_torch(w, dtype=ttnn.float32), device=device,
                      in_channels=c, out_channels=w.shape[0], batch_size=n, input_height=h, input_width=wd,
                      kernel_size=(3, 3), padding=(1, 1), conv_config=ttnn.Conv2dConfig(weights_dtype=ttnn.bfloat8_b))
    return ttnn.to_torch(out).float()


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
