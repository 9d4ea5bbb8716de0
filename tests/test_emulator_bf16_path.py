"""Convs with a bf16 Dst and bf16 operands run in torch bfloat16 end to end; that must not change a bit."""

import torch

from hardware.targets import get_target
from runtime.emulator import emulated_ttnn
from runtime.emulator.fidelity import srcb_hi
from tests.emulated_conv import conv

ttnn = emulated_ttnn(get_target("blackhole-p150"))


def test_srcb_hi_of_every_bfloat16_value_equals_the_float32_masking():
    every = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16).view(torch.bfloat16)
    from_bf16 = srcb_hi(every).to(torch.float32)
    from_f32 = srcb_hi(every.to(torch.float32))
    assert from_bf16.dtype == torch.float32 and torch.equal(from_bf16.view(torch.int32), from_f32.view(torch.int32))
    assert not torch.equal(from_f32, every.to(torch.float32))  # the mask drops the last mantissa bit


def _conv(device, x: torch.Tensor, w: torch.Tensor, relu: bool, out_dtype) -> torch.Tensor:
    return conv(
        ttnn,
        device,
        x,
        w,
        padding=1,
        out_dtype=out_dtype,
        weights_dtype=ttnn.bfloat8_b,
        activation=ttnn.UnaryWithParam(ttnn.UnaryOpType.RELU) if relu else None,
        compute_config=ttnn.WormholeComputeKernelConfig(math_fidelity=ttnn.MathFidelity.HiFi2, fp32_dest_acc_en=False),
    )


def test_fused_relu_equals_relu_of_the_stored_conv_output():
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(1, 48, 10, 12, generator=g), torch.randn(32, 48, 3, 3, generator=g)
    device = ttnn.open_device(device_id=0, l1_small_size=32768)
    try:
        for out_dtype in (ttnn.bfloat16, ttnn.float32):
            plain = _conv(device, x, w, relu=False, out_dtype=out_dtype)
            assert (plain < 0).any()
            assert torch.equal(_conv(device, x, w, relu=True, out_dtype=out_dtype), torch.relu(plain))
    finally:
        ttnn.close_device(device)
