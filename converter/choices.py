"""The names a user picks from on the command line (variants, the default config and input size, HxW
sizes) and the taps of each variant: plain data, importable without torch or Detectron2, so the CLIs
answer --help and a bad option at once instead of after seconds of imports."""

from __future__ import annotations

from pathlib import Path

from converter.errors import UserError

VARIANTS = ("panoptic_deeplab", "deeplab_v3_plus")
# What each variant's traced core returns (deeplab_v3_plus = the semantic branch only).
VARIANT_OUTPUTS: dict[str, tuple[str, ...]] = {
    "panoptic_deeplab": ("sem_seg", "center", "offset"),
    "deeplab_v3_plus": ("sem_seg",),
}
# Per-component check points: tap name -> the Detectron2 module whose output it is.
TAP_MODULES: dict[str, str] = {
    "backbone.res2": "backbone.res2",
    "backbone.res3": "backbone.res3",
    "backbone.res5": "backbone.res5",
    "sem_seg_head.aspp": "sem_seg_head.decoder.res5.project_conv",
    "sem_seg_head.logits": "sem_seg_head.predictor",
    "ins_embed_head.aspp": "ins_embed_head.decoder.res5.project_conv",
    "ins_embed_head.center": "ins_embed_head.center_predictor",
    "ins_embed_head.offset": "ins_embed_head.offset_predictor",
}

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "panoptic_deeplab_R_52_os16_mg124_cityscapes.yaml"
DEFAULT_INPUT_SIZE = (512, 1024)


def taps_for(variant: str) -> dict[str, str]:
    check_variant(variant)
    keep = ("backbone.", "sem_seg_head.") if variant == "deeplab_v3_plus" else ("",)
    return {t: m for t, m in TAP_MODULES.items() if t.startswith(keep)}


def check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise UserError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")


def parse_size(text: str) -> tuple[int, int]:
    """'512x1024' -> (512, 1024); anything else is a user error."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise UserError(f"input size {text!r} is not HxW with positive integers; write it like 512x1024")
    return int(parts[0]), int(parts[1])
