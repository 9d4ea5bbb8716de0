"""Config loading and model building through Detectron2."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch import nn

from converter.errors import UserError
from converter.model import DEFAULT_CONFIG, build_model, load_config, with_crop_size


def test_default_config_builds_the_released_architecture():
    cfg = load_config()
    assert cfg.MODEL.META_ARCHITECTURE == "PanopticDeepLab"
    model = build_model(cfg)
    assert not model.training
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 88
    # 59.77 M parameters: the published size of panoptic_deeplab_R_52_os16_mg124 (Cityscapes).
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == 59.77
    aspp = model.sem_seg_head.decoder["res5"]["project_conv"]
    assert tuple(aspp.pool_kernel_size) == (32, 64)
    assert model.config_name == DEFAULT_CONFIG.stem and model.input_format == "RGB"


def test_with_crop_size_changes_only_a_copy():
    cfg = load_config()
    small = with_crop_size(cfg, (128, 256))
    assert tuple(cfg.INPUT.CROP.SIZE) == (512, 1024)
    model = build_model(small)
    for head in (model.sem_seg_head, model.ins_embed_head):
        assert tuple(head.decoder["res5"]["project_conv"].pool_kernel_size) == (8, 16)


@pytest.mark.parametrize(
    "text, expected",
    [
        ('MODEL:\n  META_ARCHITECTURE: "GeneralizedRCNN"\n', "META_ARCHITECTURE"),
        ("MODEL: [unclosed\n", "cannot read config"),
        ("MODEL:\n  NO_SUCH_KEY: 1\n", "cannot read config"),
    ],
)
def test_bad_configs_are_user_errors(tmp_path: Path, text: str, expected: str):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=expected) as e:
        load_config(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_missing_config_is_a_user_error(tmp_path: Path):
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("size", [(128, 256), (500, 1000), (0, 1024)])
def test_input_size_must_fit_the_aspp_pooling_window(size):
    with pytest.raises(UserError) as e:
        load_config(input_size=size)
    assert "\n" not in str(e.value)


def test_a_sliding_aspp_pool_is_accepted_as_detectron2_runs_it():
    """At twice the crop the pooled 33x65 map resizes back to 64x128 by a non-integer scale: a `resample`
    (passes/resample.py), so the size is accepted; a size Detectron2's ASPP refuses is not."""
    assert tuple(load_config(input_size=(1024, 2048)).INPUT.CROP.SIZE) == (512, 1024)
    with pytest.raises(UserError, match="sizes that work with this config: 512x1024"):
        load_config(input_size=(256, 512))  # a res5 map of 16x32, which the 32x64 pooling window does not tile


def test_a_yaml_tag_that_would_run_code_is_refused_without_running_it(tmp_path: Path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(f"_BASE_: {DEFAULT_CONFIG}\nMODEL:\n  WEIGHTS: !!python/object/apply:os.mkdir ['{marker}']\n")
    with pytest.raises(UserError, match="YAML tag that would construct Python objects .*python/object/apply:os.mkdir"):
        load_config(path)
    assert not marker.exists()


def test_bases_must_be_local_files_and_may_be_relative(tmp_path: Path):
    url = tmp_path / "url.yaml"
    url.write_text("_BASE_: https://example.com/base.yaml\n")
    with pytest.raises(UserError, match="config https://example.com/base.yaml is a URL; download it"):
        load_config(url)
    (tmp_path / "base.yaml").write_text(DEFAULT_CONFIG.read_text())
    child = tmp_path / "sub" / "child.yaml"
    child.parent.mkdir()
    child.write_text("_BASE_: ../base.yaml\nMODEL:\n  SEM_SEG_HEAD:\n    NUM_CLASSES: 7\n")
    cfg = load_config(child)
    assert cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES == 7 and cfg.MODEL.RESNETS.DEPTH == load_config().MODEL.RESNETS.DEPTH


def test_a_yaml_tag_in_a_base_file_is_refused_without_running_it(tmp_path: Path):
    marker = tmp_path / "pwned"
    (tmp_path / "base.yaml").write_text(
        f"_BASE_: {DEFAULT_CONFIG}\nMODEL:\n  WEIGHTS: !!python/object/apply:os.mkdir ['{marker}']\n"
    )
    child = tmp_path / "child.yaml"
    child.write_text("_BASE_: base.yaml\n")
    with pytest.raises(UserError, match="YAML tag that would construct Python objects") as e:
        load_config(child)
    assert "\n" not in str(e.value) and not marker.exists()


@pytest.mark.parametrize(
    "model_yaml, expected",
    [
        (
            "RESNETS:\n    DEPTH: 18",
            "MODEL.RESNETS.DEPTH 18; Detectron2's DeepLab backbone is built for depth 50, 101, 152",
        ),
        ("SEM_SEG_HEAD:\n    NUM_CLASSES: 0", "MODEL.SEM_SEG_HEAD.NUM_CLASSES 0; it is a channel count"),
        ("INS_EMBED_HEAD:\n    HEAD_CHANNELS: -4", "MODEL.INS_EMBED_HEAD.HEAD_CHANNELS -4; it is a channel count"),
        (
            "SEM_SEG_HEAD:\n    USE_DEPTHWISE_SEPARABLE_CONV: True",
            "MODEL.SEM_SEG_HEAD.USE_DEPTHWISE_SEPARABLE_CONV True but "
            "MODEL.PANOPTIC_DEEPLAB.USE_DEPTHWISE_SEPARABLE_CONV False",
        ),
        # what the checks above stand for: any value Detectron2's constructors assert on
        (
            "RESNETS:\n    RES5_DILATION: 3",
            "Detectron2 cannot build a model from config 'bad': AssertionError res5_dilation cannot be 3. at resnet.py",
        ),
    ],
)
def test_model_values_detectron2_cannot_build_are_user_errors(tmp_path: Path, model_yaml: str, expected: str):
    path = tmp_path / "bad.yaml"
    path.write_text(f"_BASE_: {DEFAULT_CONFIG}\nMODEL:\n  {model_yaml}\n")
    with pytest.raises(UserError) as e:
        build_model(load_config(path))
    assert "\n" not in str(e.value) and expected in str(e.value)
