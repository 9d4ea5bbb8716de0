"""The model family (issue #16): configs by name, what each member computes, what lies outside it,
input-size advice, a checkpoint written by Detectron2's own checkpointer, batches of more than one.

Default tier: small sizes (128x256; 128x128 for COCO, with the crop set to that size as a user would).
Slow tier: each member at its native size converted, accepted by real ttnn on a mock device and
verified on the emulator (PCC >= 0.99 per head), and a batch of 2 verified, through `pdl-convert`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from converter.choices import CONFIGS
from converter.errors import UserError
from converter.interpreter import run_graph
from converter.model import (
    DEFAULT_CONFIG,
    build_model,
    check_input_size,
    config_variants,
    example_input,
    load_config,
    with_crop_size,
)
from converter.reference import reference_outputs
from converter.trace import trace_model

# The values of Detectron2's upstream configs (projects/Panoptic-DeepLab/configs, projects/DeepLab/configs),
# read there by hand: our YAMLs must carry them.
UPSTREAM = {
    "panoptic_deeplab_R_52_os16_mg124_cityscapes": {
        "MODEL.META_ARCHITECTURE": "PanopticDeepLab",
        "MODEL.RESNETS.DEPTH": 50,
        "MODEL.RESNETS.STEM_TYPE": "deeplab",
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES": 19,
        "MODEL.SEM_SEG_HEAD.USE_DEPTHWISE_SEPARABLE_CONV": False,
        "INPUT.CROP.SIZE": (512, 1024),
        "MODEL.PANOPTIC_DEEPLAB.STUFF_AREA": 2048,
        "MODEL.PANOPTIC_DEEPLAB.NMS_KERNEL": 7,
    },
    "panoptic_deeplab_R_52_os16_mg124_dsconv_coco": {
        "MODEL.META_ARCHITECTURE": "PanopticDeepLab",
        "MODEL.RESNETS.DEPTH": 50,
        "MODEL.RESNETS.STEM_TYPE": "deeplab",
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES": 133,
        "MODEL.SEM_SEG_HEAD.USE_DEPTHWISE_SEPARABLE_CONV": True,
        "MODEL.PANOPTIC_DEEPLAB.USE_DEPTHWISE_SEPARABLE_CONV": True,
        "INPUT.CROP.SIZE": (640, 640),
        "MODEL.PANOPTIC_DEEPLAB.STUFF_AREA": 4096,
        "MODEL.PANOPTIC_DEEPLAB.NMS_KERNEL": 41,
        "MODEL.PANOPTIC_DEEPLAB.SIZE_DIVISIBILITY": 640,
        "DATASETS.TRAIN": ("coco_2017_train_panoptic",),
    },
    "deeplab_v3_R_103_os16_mg124_cityscapes": {
        "MODEL.META_ARCHITECTURE": "SemanticSegmentor",
        "MODEL.SEM_SEG_HEAD.NAME": "DeepLabV3Head",
        "MODEL.RESNETS.DEPTH": 101,
        "MODEL.RESNETS.STEM_TYPE": "deeplab",
        "MODEL.RESNETS.STEM_OUT_CHANNELS": 128,
        "MODEL.RESNETS.RES5_MULTI_GRID": (1, 2, 4),
        "MODEL.RESNETS.OUT_FEATURES": ("res5",),
        "MODEL.SEM_SEG_HEAD.IN_FEATURES": ("res5",),
        "MODEL.SEM_SEG_HEAD.COMMON_STRIDE": 16,
        "MODEL.SEM_SEG_HEAD.ASPP_DILATIONS": (6, 12, 18),
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES": 19,
        "INPUT.CROP.SIZE": (512, 1024),
    },
    "deeplab_v3_plus_R_103_os16_mg124_cityscapes": {
        "MODEL.META_ARCHITECTURE": "SemanticSegmentor",
        "MODEL.SEM_SEG_HEAD.NAME": "DeepLabV3PlusHead",
        "MODEL.RESNETS.DEPTH": 101,
        "MODEL.RESNETS.STEM_TYPE": "deeplab",
        "MODEL.RESNETS.OUT_FEATURES": ("res2", "res5"),
        "MODEL.SEM_SEG_HEAD.PROJECT_FEATURES": ("res2",),
        "MODEL.SEM_SEG_HEAD.PROJECT_CHANNELS": (48,),
        "MODEL.SEM_SEG_HEAD.COMMON_STRIDE": 4,
        "MODEL.SEM_SEG_HEAD.NUM_CLASSES": 19,
        "INPUT.CROP.SIZE": (512, 1024),
    },
}
SMALL = {name: (128, 128) if "coco" in name else (128, 256) for name in UPSTREAM}


def _get(cfg, key: str):
    for part in key.split("."):
        cfg = cfg[part]
    return tuple(cfg) if isinstance(cfg, (tuple, list)) else cfg


def pdl_convert(*args: str | Path, timeout: int = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "compiler.cli", *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def _yaml(path: Path, base: Path, body: str) -> Path:
    path.write_text(f"_BASE_: {base}\n{body}")
    return path


def test_every_embedded_config_is_a_family_member_with_the_upstream_values():
    assert set(CONFIGS) == set(UPSTREAM)
    for name, values in UPSTREAM.items():
        cfg = load_config(name)  # by name, checked at its native size
        assert name == cfg.PDL2TTNN_CONFIG_NAME
        for key, value in values.items():
            assert _get(cfg, key) == value, (name, key)
    assert load_config(DEFAULT_CONFIG.stem).dump() == load_config().dump() == load_config(DEFAULT_CONFIG).dump()


# One variant per member (a Panoptic-DeepLab model's semantic branch is a subset of its panoptic
# program, and tests/test_converter_interpreter.py traces it on its own).
@pytest.mark.parametrize(
    "name, variant",
    [
        (n, "panoptic_deeplab" if "panoptic" in n else "deeplab_v3_plus" if "plus" in n else "deeplab_v3")
        for n in UPSTREAM
    ],
)
def test_each_member_traces_to_what_detectron2_computes(name: str, variant: str):
    cfg = with_crop_size(load_config(name), SMALL[name])
    assert variant in config_variants(cfg)
    model = build_model(cfg)
    x = example_input(SMALL[name], seed=1)
    graph = trace_model(model, variant, SMALL[name])
    ours, theirs = run_graph(graph, x, taps=True), reference_outputs(model, variant, x, taps=True)
    assert set(ours) == set(theirs)
    for key in ours:
        assert ours[key].shape == theirs[key].shape, key
        assert (ours[key] - theirs[key]).abs().max().item() <= 1e-5, key


# User variants of the family, each on the base it varies (MODEL keys only).
USER_VARIANTS = {
    "DEPTH 152, standard 7x7 stem": (
        "deeplab_v3_R_103_os16_mg124_cityscapes",
        "RESNETS:\n    DEPTH: 152\n    STEM_TYPE: basic\n    STEM_OUT_CHANNELS: 64",
    ),
    "DEPTH 101 deep stem, 8 classes": (
        "panoptic_deeplab_R_52_os16_mg124_cityscapes",
        "RESNETS:\n    DEPTH: 101\n  SEM_SEG_HEAD:\n    NUM_CLASSES: 8",
    ),
    "no multi-grid, other ASPP dilations, dropout": (
        "deeplab_v3_plus_R_103_os16_mg124_cityscapes",
        "RESNETS:\n    DEPTH: 50\n    RES5_MULTI_GRID: [1, 1, 1]\n  SEM_SEG_HEAD:\n    ASPP_DILATIONS: [3, 6, 9]\n"
        "    ASPP_DROPOUT: 0.5",
    ),
    "narrower heads, SyncBN": (
        "panoptic_deeplab_R_52_os16_mg124_cityscapes",
        "RESNETS:\n    NORM: SyncBN\n  SEM_SEG_HEAD:\n    NORM: SyncBN\n    CONVS_DIM: 128\n"
        "    HEAD_CHANNELS: 64\n    ASPP_CHANNELS: 128\n  INS_EMBED_HEAD:\n    NORM: SyncBN\n"
        "    CONVS_DIM: 64\n    HEAD_CHANNELS: 16",
    ),
}


@pytest.mark.parametrize("case", list(USER_VARIANTS))
def test_user_variants_trace_to_what_detectron2_computes(case: str, tmp_path: Path):
    base, model_yaml = USER_VARIANTS[case]
    path = _yaml(
        tmp_path / "variant.yaml", CONFIGS[base], f"MODEL:\n  {model_yaml}\nINPUT:\n  CROP:\n    SIZE: (128, 256)\n"
    )
    cfg = load_config(path)
    model = build_model(cfg)
    x = example_input((128, 256), seed=2)
    for variant in config_variants(cfg)[:1]:  # the panoptic program holds the semantic branch
        ours = run_graph(trace_model(model, variant, (128, 256)), x)
        theirs = reference_outputs(model, variant, x)
        for key in theirs:
            assert (ours[key] - theirs[key]).abs().max().item() <= 1e-5, (variant, key)


def test_a_batch_traces_to_what_detectron2_computes_per_image():
    cfg = with_crop_size(load_config(), (128, 256))
    model = build_model(cfg)
    x = torch.cat([example_input((128, 256), seed=s) for s in (3, 4)])
    ours = run_graph(trace_model(model, "panoptic_deeplab", (128, 256), batch=2), x)
    for i in range(2):  # each image as Detectron2 computes it alone
        alone = reference_outputs(model, "panoptic_deeplab", x[i : i + 1])
        for key, value in alone.items():
            assert (ours[key][i : i + 1] - value).abs().max().item() <= 1e-4, (i, key)


# Outside the family: one line naming the config key (model-level checks, before anything is built).
OUTSIDE = {
    "another meta-architecture": ('MODEL:\n  META_ARCHITECTURE: "GeneralizedRCNN"\n', "MODEL.META_ARCHITECTURE"),
    "another semantic head": (
        'MODEL:\n  META_ARCHITECTURE: "SemanticSegmentor"\n  SEM_SEG_HEAD:\n    NAME: "SemSegFPNHead"\n',
        "MODEL.SEM_SEG_HEAD.NAME 'SemSegFPNHead'",
    ),
    "another backbone": ('MODEL:\n  BACKBONE:\n    NAME: "build_resnet_fpn_backbone"\n', "MODEL.BACKBONE.NAME"),
    "DEPTH 18": ("MODEL:\n  RESNETS:\n    DEPTH: 18\n", "MODEL.RESNETS.DEPTH 18"),
    "DeepLabV3Head not at the encoder stride": (
        'MODEL:\n  META_ARCHITECTURE: "SemanticSegmentor"\n  SEM_SEG_HEAD:\n    NAME: "DeepLabV3Head"\n'
        '    IN_FEATURES: ["res5"]\n    COMMON_STRIDE: 4\n',
        "MODEL.SEM_SEG_HEAD.COMMON_STRIDE 4",
    ),
}


@pytest.mark.parametrize("case", list(OUTSIDE))
def test_configs_outside_the_family_name_the_key(case: str, tmp_path: Path):
    text, expected = OUTSIDE[case]
    path = _yaml(tmp_path / "outside.yaml", DEFAULT_CONFIG, text)
    with pytest.raises(UserError, match=re.escape(expected)) as e:
        load_config(path)
    assert "\n" not in str(e.value)


def test_a_variant_the_config_has_not_is_named():
    model = build_model(with_crop_size(load_config("deeplab_v3_R_103_os16_mg124_cityscapes"), (128, 256)))
    with pytest.raises(UserError, match="has no variant 'panoptic_deeplab'; choose deeplab_v3"):
        trace_model(model, "panoptic_deeplab", (128, 256))


def _suggested(message: str) -> list[tuple[int, int]]:
    tail = message.split("sizes that work with this config: ", 1)[1].split(";")[0]
    return [(int(h), int(w)) for h, w in (s.split("x") for s in tail.split(", "))]


@pytest.mark.parametrize("name", list(UPSTREAM))
@pytest.mark.parametrize(
    "size", [(128, 256), (256, 512), (500, 1000), (512, 1024), (640, 640), (1024, 2048), (1280, 1280), (96, 96)]
)
def test_size_errors_name_sizes_that_do_work(name: str, size: tuple[int, int]):
    """No contradictory advice: every size an error suggests is accepted, and so is the size itself
    with a config whose crop is that size, when the error says so."""
    cfg = load_config(name)
    try:
        check_input_size(cfg, size)
        return
    except UserError as e:
        message = str(e)
    assert "\n" not in message and f"{size[0]}x{size[1]}" in message
    suggested = _suggested(message)
    assert suggested and size not in suggested
    for good in suggested:
        check_input_size(cfg, good)
    if "with a config whose INPUT.CROP.SIZE is" in message:
        check_input_size(with_crop_size(cfg, size), size)


def test_the_size_error_of_issue_16_is_one_consistent_line(tmp_path: Path):
    """256x512 with a 128x256-crop config, first advised and then refused after tracing before: the
    pooling window slides there (a resize by 16/9), which now runs as a resample. A size that does not
    work gets sizes that do, each of which loads."""
    path = _yaml(tmp_path / "crop.yaml", DEFAULT_CONFIG, "INPUT:\n  CROP:\n    SIZE: (128, 256)\n")
    load_config(path, input_size=(256, 512))
    with pytest.raises(UserError) as e:
        load_config(path, input_size=(136, 256))  # not a multiple of the encoder stride
    suggested = _suggested(str(e.value))
    assert suggested and all(load_config(path, input_size=s) for s in suggested)


def test_size_errors_come_before_the_model_is_built(tmp_path: Path):
    result = pdl_convert(
        "--config", "deeplab_v3_R_103_os16_mg124_cityscapes", "--input-size", "256x512", "--out", tmp_path / "out"
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "sizes that work with this config: 512x1024" in errors[0]
    assert "tracing" not in result.stderr and "weights" not in result.stderr  # nothing expensive ran first


def test_a_pth_saved_by_detectron2s_own_checkpointer_converts(tmp_path: Path):
    from detectron2.checkpoint import DetectionCheckpointer

    from converter.checkpoint import load_checkpoint

    path = _yaml(
        tmp_path / "dl3.yaml",
        CONFIGS["deeplab_v3_R_103_os16_mg124_cityscapes"],
        "MODEL:\n  RESNETS:\n    DEPTH: 50\nINPUT:\n  CROP:\n    SIZE: (128, 256)\n",
    )
    cfg = load_config(path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        model = build_model(cfg)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.01)  # not Detectron2's init: the loaded values must be these
    DetectionCheckpointer(model, save_dir=str(tmp_path)).save("model_final")
    saved = tmp_path / "model_final.pth"
    loaded = load_checkpoint(build_model(cfg), saved).state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())
    result = pdl_convert("--config", path, "--weights", saved, "--out", tmp_path / "out", "--quiet")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "deeplab_v3.py").is_file()


def _verified(result: subprocess.CompletedProcess) -> dict[str, float]:
    """PCC per 'variant[ image i of n] head' from pdl-convert --verify's output (exit status checked too)."""
    assert result.returncode == 0, result.stdout + result.stderr
    assert "real ttnn: accepted" in result.stdout
    scores = {}
    for line in result.stdout.splitlines():
        m = re.match(r"verify (.+?) on the \w+: (.+) \(floor", line)
        if m:
            for head, value in re.findall(r"(\w+) PCC ([\d.]+)", m.group(2)):
                scores[f"{m.group(1)} {head}"] = float(value)
    return scores


# Each member at its native size (the Cityscapes Panoptic-DeepLab default is tests/test_generated_model.py's),
# on the default target, the 20-core Blackhole grid (COCO's depthwise dilation-18 ASPP conv over 2048
# channels at 40x40 fits it as partial convs over input-channel groups).
NATIVE = {
    "deeplab_v3_R_103_os16_mg124_cityscapes": "blackhole-20",
    "deeplab_v3_plus_R_103_os16_mg124_cityscapes": "blackhole-20",
    "panoptic_deeplab_R_52_os16_mg124_dsconv_coco": "blackhole-20",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(NATIVE))
def test_each_member_at_its_native_size_passes_real_ttnn_and_verifies(name: str, tmp_path: Path):
    # one variant per member: a Panoptic-DeepLab model's semantic branch is a subset of its full program
    variant = config_variants(load_config(name))[0]
    result = pdl_convert(
        "--config", name, "--variant", variant, "--target", NATIVE[name], "--verify", "--out", tmp_path / "out"
    )
    scores = _verified(result)
    heads = ("sem_seg", "center", "offset") if variant == "panoptic_deeplab" else ("sem_seg",)
    assert set(scores) == {f"{variant} {h}" for h in heads} and all(s >= 0.99 for s in scores.values()), scores


@pytest.mark.slow
def test_a_batch_of_two_passes_real_ttnn_and_verifies(tmp_path: Path):
    path = _yaml(tmp_path / "crop.yaml", DEFAULT_CONFIG, "INPUT:\n  CROP:\n    SIZE: (128, 256)\n")
    result = pdl_convert(
        "--config", path, "--batch-size", "2", "--variant", "panoptic_deeplab", "--verify", "--out", tmp_path / "out"
    )
    scores = _verified(result)
    assert set(scores) == {
        f"panoptic_deeplab image {i} of 2 {h}" for i in (1, 2) for h in ("sem_seg", "center", "offset")
    }
    assert all(s >= 0.99 for s in scores.values()), scores
    assert "INPUT_SHAPE = (2, 3, 128, 256)" in (tmp_path / "out" / "panoptic_deeplab.py").read_text()


def test_pdl_demo_takes_a_config_by_name(tmp_path: Path):
    """COCO's 133 classes, drawn in COCO's colours, at a small size (its crop set to it)."""
    out = tmp_path / "demo"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "runtime.demo",
            ":scenes",
            out,
            "--random-weights",
            "--config",
            "panoptic_deeplab_R_52_os16_mg124_dsconv_coco",
            "--input-size",
            "128x128",
            "--pytorch-only",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    assert "config panoptic_deeplab_R_52_os16_mg124_dsconv_coco, variant panoptic_deeplab" in result.stdout
    assert (out / "pytorch_output" / "scene_0_panoptic.jpg").is_file() and (out / "summary.json").is_file()
