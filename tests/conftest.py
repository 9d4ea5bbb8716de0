"""Session-wide fixtures for the front end, reused by the pass, codegen and runtime tests.

Small models are built with `with_crop_size(cfg, SMALL_SIZE)`: ASPP image pooling is then global at
128x256, as it is at 512x1024 for the released config (see converter/model.py). The checkpoint is
written once per session from the *unchanged* config (weights do not depend on the crop size).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from torch import nn

from converter.checkpoint import load_checkpoint, write_random_checkpoint
from converter.ir import Graph
from converter.model import DEFAULT_CONFIG, VARIANTS, build_model, load_config, with_crop_size

SMALL_SIZE = (128, 256)
TRAINED_MINUTES = 8  # the tests' trained checkpoint: 160 steps (runtime/training.py), once per machine


@pytest.fixture(scope="session")
def checkpoint_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded (seed 0) model-zoo-format .pkl for our Cityscapes R-52 config (~240 MB, ~10 s)."""
    return write_random_checkpoint(load_config(), tmp_path_factory.mktemp("ckpt") / "random_seed0.pkl")


@pytest.fixture(scope="session")
def trained_checkpoint_path() -> Path:
    """Panoptic-DeepLab trained on the street scenes (issue #26), from the user cache; a fresh machine
    trains it first (~8 minutes on 2 idle cores)."""
    from runtime.training import trained_checkpoint

    return trained_checkpoint(TRAINED_MINUTES)


@pytest.fixture(scope="session")
def small_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's config file for 128x256: inherits the embedded one (`_BASE_`), sets INPUT.CROP.SIZE."""
    path = tmp_path_factory.mktemp("cfg") / "cityscapes_128x256.yaml"
    path.write_text(f"_BASE_: {DEFAULT_CONFIG}\nINPUT:\n  CROP:\n    SIZE: (128, 256)\n")
    return path


@pytest.fixture(scope="session")
def small_cfg():
    """Our Cityscapes config with its training crop set to 128x256 (global ASPP pooling there)."""
    return with_crop_size(load_config(), SMALL_SIZE)


@pytest.fixture(scope="session")
def small_model(small_cfg, checkpoint_path: Path) -> nn.Module:
    """Detectron2's model at 128x256 with the session checkpoint loaded. Do not modify it."""
    return load_checkpoint(build_model(small_cfg), checkpoint_path)


@pytest.fixture(scope="session")
def small_graphs(small_model: nn.Module) -> dict[str, Graph]:
    """The traced 128x256 IR graph of each variant."""
    from converter.trace import trace_model

    return {v: trace_model(small_model, v, SMALL_SIZE) for v in VARIANTS}


@pytest.fixture(params=VARIANTS)
def variant(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def small_graph(small_graphs: dict[str, Graph], variant: str) -> Graph:
    return small_graphs[variant]
