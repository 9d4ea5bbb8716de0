"""The names a user picks from on the command line (variants, the embedded configs, the default config
and input size, HxW sizes) and the taps of each variant: plain data, importable without torch or Detectron2, so the CLIs
answer --help and a bad option at once instead of after seconds of imports."""

from __future__ import annotations

from pathlib import Path

from converter.errors import UserError

# deeplab_v3_plus: a DeepLabV3+ semantic model, or the semantic branch of a Panoptic-DeepLab model (its
# PanopticDeepLabSemSegHead is a DeepLabV3PlusHead); deeplab_v3: DeepLabV3Head, no decoder.
ALL_VARIANTS = ("panoptic_deeplab", "deeplab_v3_plus", "deeplab_v3")
# The variants each (MODEL.META_ARCHITECTURE, MODEL.SEM_SEG_HEAD.NAME) of the family builds.
ARCHITECTURE_VARIANTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("PanopticDeepLab", "PanopticDeepLabSemSegHead"): ("panoptic_deeplab", "deeplab_v3_plus"),
    ("SemanticSegmentor", "DeepLabV3PlusHead"): ("deeplab_v3_plus",),
    ("SemanticSegmentor", "DeepLabV3Head"): ("deeplab_v3",),
}
VARIANTS = ARCHITECTURE_VARIANTS["PanopticDeepLab", "PanopticDeepLabSemSegHead"]  # the default config's
# What each variant's traced core returns.
VARIANT_OUTPUTS: dict[str, tuple[str, ...]] = {
    "panoptic_deeplab": ("sem_seg", "center", "offset"),
    "deeplab_v3_plus": ("sem_seg",),
    "deeplab_v3": ("sem_seg",),
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


# DeepLabV3Head has no decoder: its ASPP and predictor sit directly under the head.
_DEEPLAB_V3_TAPS = {"sem_seg_head.aspp": "sem_seg_head.aspp", "sem_seg_head.logits": "sem_seg_head.predictor"}

CONFIG_DIR = Path(__file__).parent / "configs"
# The model family, by name (the file stem of our config with the upstream values).
CONFIGS: dict[str, Path] = {p.stem: p for p in sorted(CONFIG_DIR.glob("*.yaml"))}
DEFAULT_CONFIG = CONFIG_DIR / "panoptic_deeplab_R_52_os16_mg124_cityscapes.yaml"
DEFAULT_INPUT_SIZE = (512, 1024)
# The longest input side parsed: 8x a Cityscapes frame's (2048), so the search for working sizes near a
# refused one stays short; whether a size fits a chip is hardware/targets.py's check_fits_dram.
MAX_SIDE = 16384
CONFIG_HELP = (
    "a config of the family by name (" + ", ".join(CONFIGS) + "; default "
    f"{DEFAULT_CONFIG.stem}) or the path of a Detectron2 Panoptic-DeepLab / DeepLab .yaml"
)


def config_path(text: str | Path | None) -> Path:
    """--config's value: the name of an embedded config, or a path (None = the default config)."""
    if text is None:
        return DEFAULT_CONFIG
    if str(text) in CONFIGS:
        return CONFIGS[str(text)]
    path = Path(text)
    if not path.is_file():
        what = "is not a file" if path.exists() else "not found"
        raise UserError(f"--config {text} {what}; pass an existing .yaml or one of {', '.join(CONFIGS)}")
    return path


def taps_for(variant: str) -> dict[str, str]:
    check_variant(variant)
    if variant == "panoptic_deeplab":
        return dict(TAP_MODULES)
    taps = {t: m for t, m in TAP_MODULES.items() if t.startswith(("backbone.", "sem_seg_head."))}
    return {**taps, **_DEEPLAB_V3_TAPS} if variant == "deeplab_v3" else taps


def check_variant(variant: str) -> None:
    if variant not in ALL_VARIANTS:
        raise UserError(f"unknown variant {variant!r}; choose one of {', '.join(ALL_VARIANTS)}")


def parse_size(text: str) -> tuple[int, int]:
    """'512x1024' -> (512, 1024); anything else is a user error."""
    parts = text.lower().split("x")
    # ASCII digits only ('²' is a digit to isdigit, not to int), few enough for int() to take
    if len(parts) != 2 or not all(
        p.strip().isascii() and p.strip().isdigit() and len(p) < 12 and int(p) > 0 for p in parts
    ):
        raise UserError(f"input size {text!r} is not HxW with positive integers; write it like 512x1024")
    if any(int(p) > MAX_SIDE for p in parts):
        raise UserError(
            f"input size {text} has a side over {MAX_SIDE} pixels, more than a chip can run; use a smaller size"
        )
    return int(parts[0]), int(parts[1])
