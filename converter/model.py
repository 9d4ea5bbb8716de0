"""Detectron2 config and model: the only place that turns a YAML file into a Panoptic-DeepLab module.

Everything goes through Detectron2's own `get_cfg` + `add_deeplab_config` +
`add_panoptic_deeplab_config` + `build_model`, so the model we compile is the model Detectron2 runs.

ASPP image pooling is `AvgPool2d(INPUT.CROP.SIZE / 16, stride 1)` (DeepLabV3PlusHead): a global mean
only when the input equals the training crop (512x1024 for our config). `with_crop_size` is the one,
explicit way to build a model whose pooling is global at another size (tests use it at 128x256);
nothing here changes a user's config behind their back.
"""

from __future__ import annotations

import traceback
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
    DEFAULT_CONFIG,
    DEFAULT_INPUT_SIZE,
    TAP_MODULES,
    VARIANT_OUTPUTS,
    VARIANTS,
    check_variant,
    parse_size,
    taps_for,
)
from converter.errors import UserError  # noqa: E402


class _LocalConfig(CfgNode):
    """Detectron2's CfgNode, except that its YAML files (the config and its `_BASE_` chain) must be
    local: Detectron2's own opener also fetches http(s):// and detectron2:// URLs."""

    @classmethod
    def _open_cfg(cls, filename: str):
        if "://" in filename:
            raise UserError(f"config {filename} is a URL; download it and pass (or name as _BASE_) the local file")
        return open(filename, encoding="utf-8")


def load_config(path: Path | None = None, input_size: tuple[int, int] = DEFAULT_INPUT_SIZE) -> CfgNode:
    """Read a Panoptic-DeepLab YAML (None = our Cityscapes R-52 config) and check `input_size` fits it."""
    path = Path(path) if path is not None else DEFAULT_CONFIG
    if not path.is_file():
        raise UserError(f"config file {path} not found; pass a Detectron2 Panoptic-DeepLab .yaml "
                        f"(or omit --config for {DEFAULT_CONFIG.name})")
    cfg = get_cfg()
    add_panoptic_deeplab_config(cfg)  # also adds the DeepLab keys
    cfg = _LocalConfig(cfg)
    try:
        # A config is data: Detectron2 defaults to yaml.unsafe_load, which runs python/object tags.
        cfg.merge_from_file(str(path), allow_unsafe=False)
    except UserError:
        raise
    except yaml.constructor.ConstructorError as e:
        raise UserError(f"config {path} has a YAML tag that would construct Python objects ({e.problem}); "
                        "pdl2ttnn reads configs as plain data: remove the tag") from None
    except Exception as e:  # yaml errors, unknown keys, type mismatches: all "unreadable"
        reason = " ".join(str(e).split())
        raise UserError(f"cannot read config {path}: {type(e).__name__}: {reason}; "
                        "fix the YAML (keys must be Detectron2/Panoptic-DeepLab config keys)") from None
    if cfg.MODEL.META_ARCHITECTURE != "PanopticDeepLab":
        raise UserError(f"config {path} has MODEL.META_ARCHITECTURE {cfg.MODEL.META_ARCHITECTURE!r}; "
                        "pdl2ttnn compiles only 'PanopticDeepLab' configs")
    check_model_keys(cfg, path)
    cfg.MODEL.DEVICE = "cpu"
    check_input_size(cfg, input_size)
    # Carried so traced graphs can say which config they came from (see build_model).
    cfg.PDL2TTNN_CONFIG_NAME = path.stem
    return cfg


# Channel counts Detectron2 builds layers of without checking them (0 fails only in the forward pass).
_CHANNEL_KEYS = ("SEM_SEG_HEAD.NUM_CLASSES", "SEM_SEG_HEAD.CONVS_DIM", "SEM_SEG_HEAD.HEAD_CHANNELS",
                 "SEM_SEG_HEAD.ASPP_CHANNELS", "INS_EMBED_HEAD.CONVS_DIM", "INS_EMBED_HEAD.HEAD_CHANNELS",
                 "INS_EMBED_HEAD.ASPP_CHANNELS", "RESNETS.STEM_OUT_CHANNELS", "RESNETS.RES2_OUT_CHANNELS")
_DEPTHS = (50, 101, 152)  # the block counts Detectron2's DeepLab ResNet knows


def check_model_keys(cfg: CfgNode, path: Path) -> None:
    """The MODEL values Detectron2 would reject with a bare assert, a KeyError or a failing forward."""
    depth = cfg.MODEL.RESNETS.DEPTH
    if depth not in _DEPTHS:
        raise UserError(f"config {path} has MODEL.RESNETS.DEPTH {depth}; Detectron2's DeepLab backbone is built "
                        f"for depth {', '.join(map(str, _DEPTHS))} only: use one of them")
    for key in _CHANNEL_KEYS:
        value = cfg.MODEL
        for part in key.split("."):
            value = value[part]
        if not (isinstance(value, int) and value >= 1):
            raise UserError(f"config {path} has MODEL.{key} {value!r}; it is a channel count: use a positive integer")
    sem, pdl = (cfg.MODEL.SEM_SEG_HEAD.USE_DEPTHWISE_SEPARABLE_CONV,
                cfg.MODEL.PANOPTIC_DEEPLAB.USE_DEPTHWISE_SEPARABLE_CONV)
    if sem != pdl:  # PanopticDeepLab asserts it: the instance head follows PANOPTIC_DEEPLAB's flag
        raise UserError(f"config {path} has MODEL.SEM_SEG_HEAD.USE_DEPTHWISE_SEPARABLE_CONV {sem} but "
                        f"MODEL.PANOPTIC_DEEPLAB.USE_DEPTHWISE_SEPARABLE_CONV {pdl}; Detectron2 needs both the same: "
                        "set both")


def aspp_pool_kernel(cfg: CfgNode) -> tuple[int, int] | None:
    """The ASPP image-pooling window Detectron2 builds from this config (None = adaptive/global)."""
    if not cfg.INPUT.CROP.ENABLED:
        return None
    crop_h, crop_w = cfg.INPUT.CROP.SIZE
    stride = encoder_stride(cfg)
    return crop_h // stride, crop_w // stride


def encoder_stride(cfg: CfgNode) -> int:
    """Stride of the deepest feature the heads read (16 for output stride 16: res5 is dilated)."""
    strides = {"res2": 4, "res3": 8}
    strides["res4"] = strides["res3"] * (2 if cfg.MODEL.RESNETS.RES4_DILATION == 1 else 1)
    strides["res5"] = strides["res4"] * (2 if cfg.MODEL.RESNETS.RES5_DILATION == 1 else 1)
    return max(strides[f] for f in cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES)


def check_input_size(cfg: CfgNode, input_size: tuple[int, int]) -> None:
    """Input sizes whose res5 map the config's ASPP pooling window does not tile are rejected."""
    if len(input_size) != 2 or not all(isinstance(s, int) and s > 0 for s in input_size):
        raise UserError(f"input size {input_size!r} is not two positive integers; use e.g. 512x1024")
    kernel = aspp_pool_kernel(cfg)
    if kernel is None:
        return
    stride = encoder_stride(cfg)
    deepest = tuple(-(-s // stride) for s in input_size)  # each stride-2 layer rounds up
    if deepest[0] % kernel[0] or deepest[1] % kernel[1]:
        crop = tuple(cfg.INPUT.CROP.SIZE)
        raise UserError(f"input size {input_size[0]}x{input_size[1]} does not fit the config's ASPP "
                        f"pooling window {kernel[0]}x{kernel[1]} (INPUT.CROP.SIZE {crop[0]}x{crop[1]} / {stride}); "
                        f"use an input size that is a multiple of {crop[0]}x{crop[1]}")


def with_crop_size(cfg: CfgNode, input_size: tuple[int, int]) -> CfgNode:
    """A copy of `cfg` whose training crop is `input_size`, so ASPP pooling is global at that size.

    This changes what the model computes at any other size; it exists for small test inputs (the
    weights do not depend on the crop, so a checkpoint of the original config still loads).
    """
    out = cfg.clone()
    out.INPUT.CROP.SIZE = tuple(input_size)
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
        raise UserError(f"Detectron2 cannot build a model from config {cfg.get('PDL2TTNN_CONFIG_NAME', '')!r}: "
                        f"{type(e).__name__} {' '.join(str(e).split())} at {Path(frame.filename).name}:{frame.lineno} "
                        f"({frame.line}); fix that config value") from None
    model.eval()
    # Detectron2's meta-architectures name their input channel order `input_format`; this one does not.
    model.input_format = cfg.INPUT.FORMAT
    model.config_name = cfg.get("PDL2TTNN_CONFIG_NAME", "")
    return model


def example_input(input_size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """A seeded 1x3xHxW image in the model's input format (0-255 floats)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand((1, 3, *input_size), generator=g) * 255.0
