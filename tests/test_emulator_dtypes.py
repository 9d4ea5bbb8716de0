"""Emulated number formats equal the real ttnn host conversions (mock cluster)."""

import torch

from runtime.emulator.dtypes import round_bfloat8_b, round_to
from runtime.ttnn_host import import_ttnn

ttnn = import_ttnn()


def real_roundtrip(t: torch.Tensor, dtype) -> torch.Tensor:
    return ttnn.to_torch(ttnn.from_torch(t, dtype=dtype, layout=ttnn.TILE_LAYOUT)).float()


def test_bfloat8_b_equals_real_conversion_bit_for_bit():
    g = torch.Generator().manual_seed(0)
    wide = torch.randn(3, 40, 50, generator=g) * torch.exp2(torch.randint(-20, 20, (3, 40, 50), generator=g).float())
    ties = torch.tensor([[1.0, 1.0 + 2**-7, 1.0 + 3 * 2**-8, 255.9, 1e-30, -0.0, 0.0, -3.5] + [0.5] * 24] * 32)
    # a tie only after the shift has dropped a low bit: tt-metal rounds it to even (1.0), exact RNE would not
    ties[0, 16:18] = torch.tensor([2.0, 1.0 + 2**-6 + 2**-23])
    for t in (torch.randn(64, 96, generator=g), wide, ties):
        assert torch.equal(round_bfloat8_b(t), real_roundtrip(t, ttnn.bfloat8_b))


def test_bfloat8_b_of_bf16_strided_and_tiny_inputs_equals_real_conversion():
    """The emulator rounds stored activations (bfloat16 values, NHWC views of NCHW results) and groups
    of tiny values (2^(150 - E) above float32's range: scaled in two halves), denormals flushed."""
    g = torch.Generator().manual_seed(2)
    tiny = torch.randn(32, 48, generator=g) * 1e-33
    tiny[0, :16] = torch.tensor([1e-39, -1e-40] * 8)  # a group of denormals only
    tiny[1, 3] = 1e-39  # a denormal beside normal values
    strided = torch.randn(1, 48, 32, 32, generator=g).permute(0, 2, 3, 1)
    for t in (torch.randn(64, 96, generator=g).to(torch.bfloat16), strided, tiny):
        assert torch.equal(round_bfloat8_b(t), real_roundtrip(t, ttnn.bfloat8_b))


def test_bfloat16_equals_real_conversion():
    t = torch.randn(33, 70, generator=torch.Generator().manual_seed(1)) * 1000
    assert torch.equal(round_to(t, ttnn.bfloat16), real_roundtrip(t, ttnn.bfloat16))
