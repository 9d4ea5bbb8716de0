"""What Detectron2 itself computes for an input: the ground truth the IR and all passes answer to.

Runs the model's own `forward` on `[{"image": ...}]` (normalization, padding, backbone, both heads,
exactly as Detectron2 does) with Detectron2's `benchmark_network_speed` switch on, so it returns
before the host-side panoptic post-processing; the head outputs and the taps are captured with
forward hooks on Detectron2's own modules.
"""

from __future__ import annotations

from typing import Any  # a Detectron2 meta-architecture: attributes set by its config

import torch

from converter.model import VARIANT_OUTPUTS, taps_for


def _first_tensor(out: torch.Tensor | tuple[torch.Tensor, ...] | list[torch.Tensor]) -> torch.Tensor:
    return out[0] if isinstance(out, (tuple, list)) else out


@torch.no_grad()
def reference_outputs(model: Any, variant: str, x: torch.Tensor, taps: bool = False) -> dict[str, torch.Tensor]:
    """Head outputs by name (and tap outputs if `taps`) of Detectron2's forward on an Nx3xHxW batch."""
    captured: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())

    def keep(key: str, pick):
        return lambda _m, _inp, out: captured.__setitem__(key, pick(out))

    hooks = [modules["sem_seg_head"].register_forward_hook(keep("sem_seg", _first_tensor))]
    if variant == "panoptic_deeplab":
        ins = modules["ins_embed_head"]
        hooks.append(ins.register_forward_hook(keep("center", lambda out: out[0])))
        hooks.append(ins.register_forward_hook(keep("offset", lambda out: out[1])))
    if taps:
        for tap, path in taps_for(variant).items():
            hooks.append(modules[path].register_forward_hook(keep(tap, _first_tensor)))
    was_training = model.training
    # PanopticDeepLab's switch to skip the host-side fusion; SemanticSegmentor has none (its
    # post-processing at the input size is a copy).
    benchmark = getattr(model, "benchmark_network_speed", None)
    model.eval()
    if benchmark is not None:
        model.benchmark_network_speed = True
    try:
        model([{"image": image.to(torch.float32)} for image in x])
    finally:
        if benchmark is not None:
            model.benchmark_network_speed = benchmark
        model.train(was_training)
        for h in hooks:
            h.remove()
    names = list(VARIANT_OUTPUTS[variant]) + (list(taps_for(variant)) if taps else [])
    return {k: captured[k] for k in names}
