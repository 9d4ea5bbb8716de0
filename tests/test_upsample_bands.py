"""The generated modules' banded bilinear upsample, run on the emulator, equals torch's bilinear
upsample of the whole tensor: the one-row overlap between bands is what bilinear interpolation reads
across each cut (without it the rows next to each cut are wrong by O(1) on random data)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from hardware.targets import get_target
from runtime.backend import bind
from runtime.emulator import emulated_ttnn
from runtime.run import load_module, model_class

GENERATED = Path(__file__).resolve().parent.parent / "generated" / "panoptic_deeplab.py"


@pytest.mark.parametrize("bands,scale", [(2, (2, 2)), (4, (4, 4)), (8, (4, 4))])
def test_bands_equal_one_upsample(bands: int, scale: tuple[int, int]) -> None:
    module = load_module(GENERATED)
    assert hasattr(model_class(module), "upsample_bands"), "the committed default plan no longer uses bands"
    ttnn = emulated_ttnn(get_target(module.TARGET))
    bind(module, ttnn)
    device = ttnn.open_device(device_id=0, **module.DEVICE_PARAMS)
    try:
        h, w, c = 16, 24, 32
        x = torch.randn(1, h, w, c, generator=torch.Generator().manual_seed(0))
        flat = ttnn.from_torch(
            x.reshape(1, 1, h * w, c),
            dtype=ttnn.bfloat16,
            layout=ttnn.ROW_MAJOR_LAYOUT,
            device=device,
            memory_config=ttnn.DRAM_MEMORY_CONFIG,
        )
        cls: Any = model_class(module)
        model = cls.__new__(cls)  # upsample_bands needs no weights
        out = model.upsample_bands(flat, (1, h, w, c), scale, bands, memory_config=ttnn.DRAM_MEMORY_CONFIG)
        got = ttnn.to_torch(out).reshape(1, h * scale[0], w * scale[1], c)
        nchw = x.to(torch.bfloat16).float().permute(0, 3, 1, 2)
        want = torch.nn.functional.interpolate(nchw, scale_factor=scale, mode="bilinear", align_corners=False)
        torch.testing.assert_close(got.float(), want.permute(0, 2, 3, 1), atol=0.02, rtol=0.01)
    finally:
        ttnn.close_device(device)
