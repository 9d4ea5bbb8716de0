"""Detectron2 config and model: the only place that turns a YAML file into a model of the family
(Panoptic-DeepLab; Detectron2's DeepLab project's SemanticSegmentor with DeepLabV3 / DeepLabV3+ heads).

Everything goes through Detectron2's own `get_cfg` + `add_deeplab_config` +
`add_panoptic_deeplab_config` + `build_model`, so the model we compile is the model Detectron2 runs.

ASPP image pooling is `AvgPool2d(INPUT.CROP.SIZE / 16, stride 1)` (DeepLabV3PlusHead): a global mean
only when the input equals the training crop (512x1024 for our config). `with_crop_size` is the one,
explicit way to build a model whose pooling is global at another size (tests use it at 128x256);
nothing here changes a user's config behind their back.
"""

from __future__ import annotations

import io
import logging
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import yaml
from torch import nn

import converter.detectron2_compat as _compat

_compat.install()

from detectron2.config import CfgNode, get_cfg  # noqa: E402
from detectron2.modeling import build_model as _d2_build_model  # noqa: E402
from detectron2.projects.panoptic_deeplab import add_panoptic_deeplab_config  # noqa: E402

from converter.choices import (  # noqa: E402,F401  (re-exported: the model's names, by their old home)
    ALL_VARIANTS,
    ARCHITECTURE_VARIANTS,
    CONFIGS,
    DEFAULT_CONFIG,
    DEFAULT_INPUT_SIZE,
    MAX_SIDE,
    TAP_MODULES,
    VARIANT_OUTPUTS,
    VARIANTS,
    check_variant,
    config_path,
    parse_size,
    taps_for,
)
from converter.errors import UserError  # noqa: E402
from converter.untrusted import check_yaml, printable, read_text  # noqa: E402


class _LocalConfig(CfgNode):
    """Detectron2's CfgNode, except that its YAML files (the config and its `_BASE_` chain) must be
    local: Detectron2's own opener also fetches http(s):// and detectron2:// URLs."""

    @classmethod
    def _open_cfg(cls, filename: str):
        if "://" in filename:
            raise UserError(
                f"config {printable(filename)} is a URL; download it and pass (or name as _BASE_) the local file"
            )
        # a regular file only (a FIFO would block the open), its YAML bounded (converter/untrusted.py)
        text = read_text(Path(filename), "config")
        check_yaml(text, f"config {printable(filename)}")
        return io.StringIO(text)


def load_config(path: str | Path | None = None, input_size: tuple[int, int] | None = None) -> CfgNode:
    """Read a config of the family (a name of `CONFIGS`, a YAML path, None = our Cityscapes R-52 config)
    and check that it is one pdl2ttnn compiles and that `input_size` (None: its native size) works with it."""
    path = config_path(path)
    cfg = get_cfg()
    add_panoptic_deeplab_config(cfg)  # also adds the DeepLab keys
    cfg = _LocalConfig(cfg)
    try:
        # A config is data: Detectron2 defaults to yaml.unsafe_load, which runs python/object tags.
        with _quiet_logger("detectron2.config.compat"):  # its "has no VERSION" line: a config without one is fine
            cfg.merge_from_file(str(path), allow_unsafe=False)
    except UserError:
        raise
    except yaml.constructor.ConstructorError as e:
        raise UserError(
            f"config {path} has a YAML tag that would construct Python objects ({e.problem}); "
            "pdl2ttnn reads configs as plain data: remove the tag"
        ) from None
    except Exception as e:  # yaml errors, unknown keys, type mismatches: all "unreadable"
        reason = printable(" ".join(str(e).split()))[:300]
        raise UserError(
            f"cannot read config {path}: {type(e).__name__}: {reason}; "
            "fix the YAML (keys must be Detectron2/Panoptic-DeepLab config keys)"
        ) from None
    config_variants(cfg, path)
    check_model_keys(cfg, path)
    cfg.MODEL.DEVICE = "cpu"
    # Carried so traced graphs can say which config they came from (see build_model).
    cfg.PDL2TTNN_CONFIG_NAME = path.stem
    check_input_size(cfg, input_size or native_input_size(cfg))
    return cfg


@contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def native_input_size(cfg: CfgNode) -> tuple[int, int]:
    """The size the config's model is built for: its training crop (ASPP pooling is global there), or
    512x1024 for a config without one."""
    return tuple(cfg.INPUT.CROP.SIZE) if cfg.INPUT.CROP.ENABLED else DEFAULT_INPUT_SIZE


def config_variants(cfg: CfgNode, path: Path | str = "") -> tuple[str, ...]:
    """The variants a config of the family builds; a UserError naming the key for any other model."""
    path = path or cfg.get("PDL2TTNN_CONFIG_NAME", "")
    arch, head = cfg.MODEL.META_ARCHITECTURE, cfg.MODEL.SEM_SEG_HEAD.NAME
    if arch not in {a for a, _ in ARCHITECTURE_VARIANTS}:
        raise UserError(
            f"config {path} has MODEL.META_ARCHITECTURE {arch!r}; pdl2ttnn compiles 'PanopticDeepLab' "
            "and 'SemanticSegmentor' (Detectron2's DeepLab project) configs only"
        )
    if (arch, head) not in ARCHITECTURE_VARIANTS:
        heads = [h for a, h in ARCHITECTURE_VARIANTS if a == arch]
        raise UserError(
            f"config {path} has MODEL.SEM_SEG_HEAD.NAME {head!r}; with {arch} pdl2ttnn compiles "
            f"{' or '.join(map(repr, heads))} only"
        )
    if arch == "PanopticDeepLab" and cfg.MODEL.INS_EMBED_HEAD.NAME != "PanopticDeepLabInsEmbedHead":
        raise UserError(
            f"config {path} has MODEL.INS_EMBED_HEAD.NAME {cfg.MODEL.INS_EMBED_HEAD.NAME!r}; pdl2ttnn "
            "compiles 'PanopticDeepLabInsEmbedHead' only"
        )
    if cfg.MODEL.BACKBONE.NAME != "build_resnet_deeplab_backbone":
        raise UserError(
            f"config {path} has MODEL.BACKBONE.NAME {cfg.MODEL.BACKBONE.NAME!r}; pdl2ttnn compiles "
            "Detectron2's DeepLab ResNet ('build_resnet_deeplab_backbone') only"
        )
    return ARCHITECTURE_VARIANTS[arch, head]


def check_config_variant(cfg: CfgNode, variant: str) -> None:
    """A UserError if `cfg`'s model has no `variant` (e.g. panoptic_deeplab of a DeepLabV3 config)."""
    check_variant(variant)
    have = config_variants(cfg)
    if variant not in have:
        raise UserError(
            f"config {cfg.get('PDL2TTNN_CONFIG_NAME', '')} ({cfg.MODEL.META_ARCHITECTURE} with "
            f"{cfg.MODEL.SEM_SEG_HEAD.NAME}) has no variant {variant!r}; choose {' or '.join(have)}"
        )


# Channel counts Detectron2 builds layers of without checking them (0 fails only in the forward pass).
_CHANNEL_KEYS = (
    "SEM_SEG_HEAD.NUM_CLASSES",
    "SEM_SEG_HEAD.CONVS_DIM",
    "SEM_SEG_HEAD.HEAD_CHANNELS",
    "SEM_SEG_HEAD.ASPP_CHANNELS",
    "INS_EMBED_HEAD.CONVS_DIM",
    "INS_EMBED_HEAD.HEAD_CHANNELS",
    "INS_EMBED_HEAD.ASPP_CHANNELS",
    "RESNETS.STEM_OUT_CHANNELS",
    "RESNETS.RES2_OUT_CHANNELS",
)
_DEPTHS = (50, 101, 152)  # the block counts Detectron2's DeepLab ResNet knows
# Above this a single conv's fp32 weights (C x C x 3 x 3) pass 2.4 GB and its activations no chip's L1
# plan: a typo (NUM_CLASSES 1e9 asks for a 1 TB predictor), refused before anything is allocated.
MAX_CHANNELS = 8192
_FEATURES = ("res2", "res3", "res4", "res5")


def check_model_keys(cfg: CfgNode, path: Path) -> None:
    """The MODEL values Detectron2 would reject with a bare assert, a KeyError or a failing forward."""
    depth = cfg.MODEL.RESNETS.DEPTH
    if depth not in _DEPTHS:
        raise UserError(
            f"config {path} has MODEL.RESNETS.DEPTH {depth}; Detectron2's DeepLab backbone is built "
            f"for depth {', '.join(map(str, _DEPTHS))} only: use one of them"
        )
    for key in _CHANNEL_KEYS:
        value = cfg.MODEL
        for part in key.split("."):
            value = value[part]
        if not (isinstance(value, int) and 1 <= value <= MAX_CHANNELS):
            raise UserError(
                f"config {path} has MODEL.{key} {_short(value)}; it is a channel count: use an integer "
                f"from 1 to {MAX_CHANNELS}"
            )
    for key in ("PIXEL_MEAN", "PIXEL_STD"):
        value = cfg.MODEL[key]
        if not (len(value) == 3 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
            raise UserError(f"config {path} has MODEL.{key} {_short(value)}; use three numbers, one per RGB channel")
    features = cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES
    if not features or not set(features) <= set(_FEATURES):
        raise UserError(
            f"config {path} has MODEL.SEM_SEG_HEAD.IN_FEATURES {_short(features)}; use features of "
            f"{', '.join(_FEATURES)} (the ResNet's stages)"
        )
    crop = cfg.INPUT.CROP.SIZE
    if cfg.INPUT.CROP.ENABLED and not (
        len(crop) == 2 and all(isinstance(s, int) and not isinstance(s, bool) and 0 < s <= MAX_SIDE for s in crop)
    ):
        raise UserError(
            f"config {path} has INPUT.CROP.SIZE {_short(crop)}; it is the training crop (H, W): "
            f"use two positive integers of at most {MAX_SIDE}, e.g. (512, 1024)"
        )
    sem, pdl = (
        cfg.MODEL.SEM_SEG_HEAD.USE_DEPTHWISE_SEPARABLE_CONV,
        cfg.MODEL.PANOPTIC_DEEPLAB.USE_DEPTHWISE_SEPARABLE_CONV,
    )
    if cfg.MODEL.META_ARCHITECTURE == "PanopticDeepLab" and sem != pdl:
        # PanopticDeepLab asserts it: the instance head follows PANOPTIC_DEEPLAB's flag
        raise UserError(
            f"config {path} has MODEL.SEM_SEG_HEAD.USE_DEPTHWISE_SEPARABLE_CONV {sem} but "
            f"MODEL.PANOPTIC_DEEPLAB.USE_DEPTHWISE_SEPARABLE_CONV {pdl}; Detectron2 needs both the same: "
            "set both"
        )
    if cfg.MODEL.SEM_SEG_HEAD.NAME == "DeepLabV3Head" and encoder_stride(cfg) != cfg.MODEL.SEM_SEG_HEAD.COMMON_STRIDE:
        raise UserError(
            f"config {path} has MODEL.SEM_SEG_HEAD.COMMON_STRIDE {cfg.MODEL.SEM_SEG_HEAD.COMMON_STRIDE}; "
            f"DeepLabV3Head upsamples res5 by it to the input size, so it must be the encoder stride "
            f"{encoder_stride(cfg)}: set it to that"
        )


def _short(value: object) -> str:
    """A config value quoted in a message: escaped, and cut short (a list may hold thousands)."""
    text = printable(repr(value))
    return text if len(text) <= 60 else text[:57] + "..."


def aspp_pool_kernel(cfg: CfgNode) -> tuple[int, int] | None:
    """The ASPP image-pooling window Detectron2 builds from this config (None = adaptive/global)."""
    if not cfg.INPUT.CROP.ENABLED:
        return None
    crop_h, crop_w = cfg.INPUT.CROP.SIZE
    # DeepLabV3Head divides the crop by its COMMON_STRIDE, DeepLabV3PlusHead by the encoder stride
    # (check_model_keys makes them equal).
    stride = encoder_stride(cfg)
    return crop_h // stride, crop_w // stride


def encoder_stride(cfg: CfgNode) -> int:
    """Stride of the deepest feature the heads read (16 for output stride 16: res5 is dilated)."""
    strides = {"res2": 4, "res3": 8}
    strides["res4"] = strides["res3"] * (2 if cfg.MODEL.RESNETS.RES4_DILATION == 1 else 1)
    strides["res5"] = strides["res4"] * (2 if cfg.MODEL.RESNETS.RES5_DILATION == 1 else 1)
    return max(strides[f] for f in cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES)


def _size_divisibility(cfg: CfgNode) -> int:
    """What Detectron2 pads the input to a multiple of (PanopticDeepLab only; the ResNet asks for none)."""
    return cfg.MODEL.PANOPTIC_DEEPLAB.SIZE_DIVISIBILITY if cfg.MODEL.META_ARCHITECTURE == "PanopticDeepLab" else 0


def _axis_problem(cfg: CfgNode, axis: int, s: int) -> str | None:
    """Why input length `s` along `axis` (0 = H, 1 = W) does not work with `cfg` today, or None.
    Every input-size rule is here (the axes are independent), so errors and suggestions agree."""
    stride = encoder_stride(cfg)
    if s % stride:
        return f"{s} is not a multiple of the encoder stride {stride} (the decoder upsamples by whole factors)"
    divisibility = _size_divisibility(cfg)
    if divisibility > 0 and s % divisibility:
        return (
            f"{s} is not a multiple of MODEL.PANOPTIC_DEEPLAB.SIZE_DIVISIBILITY {divisibility} "
            "(Detectron2 pads the input to it; the generated program does not)"
        )
    kernel = aspp_pool_kernel(cfg)
    if kernel is None:
        return None
    k, deepest = kernel[axis], s // stride
    crop = cfg.INPUT.CROP.SIZE[axis]
    if deepest % k:
        return (
            f"{s} gives a res5 map of {deepest}, which the ASPP pooling window {k} (INPUT.CROP.SIZE {crop} "
            f"/ {stride}) does not tile (Detectron2's ASPP refuses it)"
        )
    return None  # a sliding pooling window and its resize back run as a `resample` (passes/resample.py)


def _working_lengths(cfg: CfgNode, axis: int, near: int, count: int = 2) -> list[int]:
    """Up to `count` input lengths along `axis` that work with `cfg`, nearest to `near` first."""
    step = encoder_stride(cfg)
    top = 4 * max(near, cfg.INPUT.CROP.SIZE[axis] if cfg.INPUT.CROP.ENABLED else 0, step)
    ok = [s for s in range(step, top + 1, step) if _axis_problem(cfg, axis, s) is None]
    return sorted(ok, key=lambda s: (abs(s - near), s))[:count]


def check_input_size(cfg: CfgNode, input_size: tuple[int, int]) -> None:
    """A UserError naming the rule an input size breaks and the sizes that would work with `cfg`."""
    if len(input_size) != 2 or not all(isinstance(s, int) and s > 0 for s in input_size):
        raise UserError(f"input size {input_size!r} is not two positive integers; use e.g. 512x1024")
    problems = [p for axis, s in enumerate(input_size) if (p := _axis_problem(cfg, axis, s)) is not None]
    if not problems:
        return
    h, w = input_size
    hs, ws = (
        _working_lengths(cfg, axis, s) if problem is not None else [s]
        for axis, s, problem in ((0, h, _axis_problem(cfg, 0, h)), (1, w, _axis_problem(cfg, 1, w)))
    )
    sizes = sorted((f"{a}x{b}" for a in hs for b in ws), key=lambda t: tuple(map(int, t.split("x"))))
    advice = f"sizes that work with this config: {', '.join(sizes)}" if sizes else "no size works with this config"
    if cfg.INPUT.CROP.ENABLED and tuple(cfg.INPUT.CROP.SIZE) != (h, w):
        other = cfg.clone()
        other.INPUT.CROP.SIZE = (h, w)  # ASPP pooling is then global at this size
        if all(_axis_problem(other, axis, s) is None for axis, s in enumerate(input_size)):
            advice += f"; or {h}x{w} with a config whose INPUT.CROP.SIZE is ({h}, {w})"
    raise UserError(
        f"input size {h}x{w} does not work with config {cfg.get('PDL2TTNN_CONFIG_NAME', '')}: "
        f"{'; '.join(problems)}; {advice}"
    )


def with_crop_size(cfg: CfgNode, input_size: tuple[int, int]) -> CfgNode:
    """A copy of `cfg` whose training crop is `input_size`, so ASPP pooling is global at that size.

    This changes what the model computes at any other size; it exists for small test inputs (the
    weights do not depend on the crop, so a checkpoint of the original config still loads). A size
    that is not a multiple of MODEL.PANOPTIC_DEEPLAB.SIZE_DIVISIBILITY also turns that padding off.
    """
    out = cfg.clone()
    out.INPUT.CROP.SIZE = tuple(input_size)
    divisibility = _size_divisibility(out)
    if divisibility > 0 and any(s % divisibility for s in input_size):
        out.MODEL.PANOPTIC_DEEPLAB.SIZE_DIVISIBILITY = -1  # no padding either: the model runs at exactly this size
    check_input_size(out, input_size)
    return out


def build_model(cfg: CfgNode) -> nn.Module:
    """Detectron2's model for `cfg`, in eval mode on the CPU (weights: Detectron2's random init)."""
    cfg = cfg.clone()
    cfg.MODEL.DEVICE = "cpu"
    try:
        model = _d2_build_model(cfg)
    except (AssertionError, KeyError, ValueError, IndexError, TypeError) as e:
        # Detectron2 checks configs with bare asserts and dict lookups: name the line that refused it.
        frame = traceback.extract_tb(e.__traceback__)[-1]
        raise UserError(
            f"Detectron2 cannot build a model from config {cfg.get('PDL2TTNN_CONFIG_NAME', '')!r}: "
            f"{type(e).__name__} {' '.join(str(e).split())} at {Path(frame.filename).name}:{frame.lineno} "
            f"({frame.line}); fix that config value"
        ) from None
    model.eval()
    # Detectron2's meta-architectures name their input channel order `input_format`; this one does not.
    model.input_format = cfg.INPUT.FORMAT
    model.config_name = cfg.get("PDL2TTNN_CONFIG_NAME", "")
    model.variants = config_variants(cfg)
    return model


def example_input(input_size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """A seeded 1x3xHxW image in the model's input format (0-255 floats)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand((1, 3, *input_size), generator=g) * 255.0
