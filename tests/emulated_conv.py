"""An NCHW conv through the emulated ttnn.conv2d, for the emulator's numerics tests."""

import torch


def conv(
    ttnn,
    device,
    x: torch.Tensor,
    w: torch.Tensor,
    *,
    padding=0,
    compute_config=None,
    out_dtype=None,
    weights_dtype=None,
    activation=None,
) -> torch.Tensor:
    """bf16 activations x [N,C,H,W] (in L1) convolved with float32 host weights w; NCHW float32 out.
    Defaults: float32 output, bfloat16 weights."""
    n, c, h, wd = x.shape
    xt = ttnn.from_torch(
        x.permute(0, 2, 3, 1).reshape(1, 1, n * h * wd, c),
        dtype=ttnn.bfloat16,
        device=device,
        memory_config=ttnn.L1_MEMORY_CONFIG,
    )
    cfg = ttnn.Conv2dConfig(weights_dtype=weights_dtype or ttnn.bfloat16, activation=activation)
    out, (oh, ow) = ttnn.conv2d(
        input_tensor=xt,
        weight_tensor=ttnn.from_torch(w, dtype=ttnn.float32),
        device=device,
        in_channels=c,
        out_channels=w.shape[0],
        batch_size=n,
        input_height=h,
        input_width=wd,
        kernel_size=tuple(w.shape[2:]),
        padding=(padding, padding),
        dtype=out_dtype or ttnn.float32,
        conv_config=cfg,
        compute_config=compute_config,
        return_output_dim=True,
    )
    return ttnn.to_torch(out).float().reshape(n, oh, ow, -1).permute(0, 3, 1, 2)
