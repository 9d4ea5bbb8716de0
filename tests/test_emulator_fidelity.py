"""Emulated conv2d numerics under compute_config: math-fidelity phases and Dst accumulation.

Expected values come from the phase definition (tt-isa-documentation SrcASrcB.md): activations are
SrcB (phase 0/1 read the hidden bit + top 6 mantissa bits), weights are SrcA (phase 0/2 read the hidden
bit + top 4); LoFi = phase 0, HiFi2 = 0-1, HiFi3 = 0-2, HiFi4 = 0-3.
"""

import pytest
import torch
import torch.nn.functional as F

from hardware.targets import get_target
from runtime.emulator import emulated_ttnn
from runtime.emulator.fidelity import srca_parts, srcb_parts
from tests import emulated_conv

ttnn = emulated_ttnn(get_target("blackhole-p150"))
FIDELITIES = ("LoFi", "HiFi2", "HiFi3", "HiFi4")


@pytest.fixture
def device():
    dev = ttnn.open_device(device_id=0, l1_small_size=32768)
    yield dev
    ttnn.close_device(dev)


def compute(fidelity: str, fp32_acc: bool, packer_l1_acc: bool = False):
    return ttnn.WormholeComputeKernelConfig(
        math_fidelity=getattr(ttnn.MathFidelity, fidelity), fp32_dest_acc_en=fp32_acc, packer_l1_acc=packer_l1_acc
    )


def conv(device, x, w, **kw):
    return emulated_conv.conv(ttnn, device, x, w, **kw)


def bf16(t: torch.Tensor) -> torch.Tensor:
    return t.bfloat16().float()


def test_hand_computed_1x1_phases(device):
    # activation 1 + 2^-7: its last bf16 mantissa bit is SrcB's phase-2/3 part (x_hi = 1, x_lo = 2^-7)
    # weight 1.5 + 2^-5 + 2^-7: mantissa bits 5 and 7 are SrcA's phase-1/3 part (w_hi = 1.5, w_lo = 5/128)
    x = torch.tensor(1 + 2**-7).reshape(1, 1, 1, 1)
    w = torch.tensor(1.5 + 2**-5 + 2**-7).reshape(1, 1, 1, 1)
    expected = {
        "LoFi": 1.5 * 1,  # w_hi * x_hi
        "HiFi2": (1.5 + 2**-5 + 2**-7) * 1,  # + w_lo * x_hi
        "HiFi3": (1.5 + 2**-5 + 2**-7) + 1.5 * 2**-7,  # + w_hi * x_lo
        "HiFi4": (1.5 + 2**-5 + 2**-7) * (1 + 2**-7),  # + w_lo * x_lo: the exact product
    }
    for fidelity, value in expected.items():
        got = conv(device, x, w, compute_config=compute(fidelity, fp32_acc=True))
        assert got.item() == value, fidelity
    # a bf16 Dst keeps 8 significant bits (steps of 2^-7 in [1, 2)): 1.55108642578125 rounds to 199/128
    assert conv(device, x, w, compute_config=compute("HiFi4", fp32_acc=False)).item() == 199 / 128


def test_src_parts_split_the_mantissa_as_the_phases_read_it():
    v = torch.tensor([1.5 + 2**-5 + 2**-7, -(1 + 2**-7)])
    a_hi, a_lo = srca_parts(v)
    b_hi, b_lo = srcb_parts(v)
    assert a_hi.tolist() == [1.5, -1.0] and a_lo.tolist() == [2**-5 + 2**-7, -(2**-7)]
    assert b_hi.tolist() == [1.5 + 2**-5, -1.0] and b_lo.tolist() == [2**-7, -(2**-7)]


def _random_case(seed: int, c: int = 32, o: int = 32):
    g = torch.Generator().manual_seed(seed)
    return bf16(torch.randn(1, c, 12, 12, generator=g)), bf16(torch.randn(o, c, 3, 3, generator=g))


def test_error_decreases_with_fidelity_and_hifi4_is_the_rounded_operand_conv(device):
    x, w = _random_case(0)
    exact = F.conv2d(x.double(), w.double(), padding=1)
    errors = {}
    for fidelity in FIDELITIES:
        got = conv(device, x, w, padding=1, compute_config=compute(fidelity, fp32_acc=True))
        errors[fidelity] = (got.double() - exact).abs().mean().item()
        if fidelity == "HiFi4":
            assert torch.allclose(got, F.conv2d(x, w, padding=1), rtol=0, atol=1e-5)
    assert errors["LoFi"] > errors["HiFi2"] > errors["HiFi3"] > errors["HiFi4"], errors
    assert errors["HiFi4"] < 1e-5


def test_lofi_error_matches_the_bits_it_keeps(device):
    # LoFi multiplies w truncated to 5 significant bits (relative error < 2^-4) by x truncated to 7
    # (< 2^-6): each product loses less than 2^-4 + 2^-6 + 2^-10 of its magnitude, towards zero.
    g = torch.Generator().manual_seed(3)
    x = bf16(torch.rand(1, 64, 8, 8, generator=g) + 0.5)  # positive: every product truncates the same way
    w = bf16(torch.rand(16, 64, 1, 1, generator=g) + 0.5)
    exact = F.conv2d(x.double(), w.double())
    got = conv(device, x, w, compute_config=compute("LoFi", fp32_acc=True)).double()
    rel = (exact - got) / exact
    assert (rel >= 0).all() and (rel < 2**-4 + 2**-6 + 2**-10).all()
    # dropping 3 of w's 7 mantissa bits and 1 of x's loses ~2^-5.5 on average for uniform mantissas
    assert 2**-7 < rel.mean().item() < 2**-4


def test_bf16_dest_accumulation_rounds_and_loses_accuracy(device):
    x, w = _random_case(1, c=128)
    exact = F.conv2d(x.double(), w.double(), padding=1)
    fp32 = conv(device, x, w, padding=1, compute_config=compute("HiFi4", fp32_acc=True))
    b16 = conv(device, x, w, padding=1, compute_config=compute("HiFi4", fp32_acc=False))
    assert torch.equal(b16, bf16(b16))  # the Dst held bf16, the float32 output adds nothing
    assert not torch.equal(fp32, bf16(fp32))
    err = lambda t: (t.double() - exact).abs().mean().item()  # noqa: E731
    # rounding a sum of 3 kernel rows to bf16 (8 bits) per row vs one float32 sum
    assert err(b16) > 10 * err(fp32)
    assert err(b16) < 2**-7 * exact.abs().mean().item()


def test_intermediate_partials_use_the_output_format_without_packer_l1_acc(device):
    x, w = _random_case(2, c=64)
    kw = dict(padding=1, out_dtype=ttnn.bfloat16)
    l1_acc = conv(device, x, w, compute_config=compute("HiFi4", fp32_acc=True, packer_l1_acc=True), **kw)
    no_l1_acc = conv(device, x, w, compute_config=compute("HiFi4", fp32_acc=True, packer_l1_acc=False), **kw)
    single = bf16(F.conv2d(x, w, padding=1))  # fp32 partials: one rounding at the end
    assert torch.equal(l1_acc, single)
    assert not torch.equal(no_l1_acc, single)  # partials were packed as bf16 after each kernel row


def test_default_and_invalid_compute_config(device):
    x, w = _random_case(4, c=16)
    # no compute_config: ttnn's conv default is HiFi4 without fp32 accumulation for bf16 operands
    default = conv(device, x, w, padding=1)
    assert torch.equal(default, conv(device, x, w, padding=1, compute_config=compute("HiFi4", fp32_acc=False)))
    with pytest.raises(RuntimeError, match="math_fidelity"):
        conv(device, x, w, padding=1, compute_config=ttnn.WormholeComputeKernelConfig())


def test_lofi_with_bfloat8_b_weights_differs_from_hifi2(device):
    # bfloat8_b keeps up to 7 significant bits per value; LoFi reads 5 of them, so weights lose bits
    x, w = _random_case(5)
    runs = {
        f: conv(device, x, w, padding=1, weights_dtype=ttnn.bfloat8_b, compute_config=compute(f, fp32_acc=True))
        for f in ("LoFi", "HiFi2")
    }
    assert not torch.equal(runs["LoFi"], runs["HiFi2"])
