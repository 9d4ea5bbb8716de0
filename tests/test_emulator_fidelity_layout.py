"""Conv numerics do not depend on how the activations are strided in host memory.

The emulator keeps activations NHWC-strided (as ttnn stores them) instead of copying them to
contiguous NCHW; the fidelity split and every rounded (bf16 Dst) conv must give the same bits either way.
"""

import itertools

import pytest
import torch
import torch.nn.functional as F

from runtime.emulator import dtypes
from runtime.emulator.fidelity import MathConfig, conv2d_values, fidelity_operands, round_bf16

FIDELITIES = ("LoFi", "HiFi2", "HiFi3", "HiFi4")


def _nhwc_strided(seed: int, c: int, h: int, w: int, pad: int, bf16: bool) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, h, w, c, generator=g) * 3
    x = x.bfloat16().float() if bf16 else x
    out = F.pad(x.permute(0, 3, 1, 2), (pad, pad, pad, pad))
    assert not out.is_contiguous()  # the case under test: NHWC memory seen as NCHW
    return out


@pytest.mark.parametrize("fidelity", FIDELITIES)
def test_fidelity_operands_equal_for_strided_and_contiguous_activations(fidelity):
    x = _nhwc_strided(0, 24, 9, 11, 1, bf16=True)
    w = torch.randn(8, 12, 3, 3, generator=torch.Generator().manual_seed(1)).bfloat16().float()
    xs, ws = fidelity_operands(x, w, fidelity, groups=2)
    xc, wc = fidelity_operands(x.contiguous(), w, fidelity, groups=2)
    assert torch.equal(xs, xc) and torch.equal(ws, wc)
    if fidelity != "HiFi4":  # the split really dropped activation bits
        assert not torch.equal(xs[:, :24] if fidelity == "HiFi3" else xs, x)


def _bf8_interm(t: torch.Tensor) -> torch.Tensor:
    return dtypes.round_bfloat8_b(t.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


CASES = [(64, 32, 3, 1, 1, 1), (32, 48, 1, 1, 2, 1), (40, 40, 3, 2, 1, 4), (96, 64, 3, 6, 1, 1)]


@pytest.mark.parametrize("fidelity", FIDELITIES)
@pytest.mark.parametrize("case", CASES)
def test_rounded_conv_paths_are_bit_identical_for_strided_and_contiguous_activations(fidelity, case):
    c, o, k, dil, stride, groups = case
    g = torch.Generator().manual_seed(2)
    for (fp32_acc, interm), operands_bf16 in itertools.product(
        [(False, None), (False, round_bf16), (False, _bf8_interm), (True, round_bf16), (True, _bf8_interm)],
        [True, False],
    ):
        x = _nhwc_strided(3, c, 13, 17, dil, bf16=operands_bf16)
        w = torch.randn(o, c // groups, k, k, generator=g)
        w = w.bfloat16().float() if operands_bf16 else w
        b = torch.randn(o, generator=g).bfloat16().float()
        kw = dict(
            stride=(stride, stride),
            dilation=(dil, dil),
            groups=groups,
            math=MathConfig(fidelity, fp32_acc, False),
            operands_bf16=operands_bf16,
            interm_round=interm,
        )
        strided = conv2d_values(x, w, b, **kw)
        assert torch.equal(strided, conv2d_values(x.contiguous(), w, b, **kw)), (fp32_acc, interm, operands_bf16)


@pytest.mark.parametrize("fidelity", FIDELITIES)
def test_fp32_dst_conv_differs_only_by_float32_summation_order(fidelity):
    x = _nhwc_strided(4, 96, 13, 17, 6, bf16=True)
    w = torch.randn(64, 96, 3, 3, generator=torch.Generator().manual_seed(5)).bfloat16().float()
    kw = dict(
        stride=(1, 1),
        dilation=(6, 6),
        groups=1,
        math=MathConfig(fidelity, True, True),
        operands_bf16=True,
        interm_round=None,
    )
    strided, contiguous = conv2d_values(x, w, None, **kw), conv2d_values(x.contiguous(), w, None, **kw)
    torch.testing.assert_close(strided, contiguous, rtol=1e-5, atol=1e-4)
