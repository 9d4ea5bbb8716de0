"""The generated model at 512x1024 (and the released config at Cityscapes' native 1024x2048, where the
ASPP pooling slides and its resize back has a non-integer scale) against Detectron2 fp32, per head
and per component (taps).

Runs on the emulator here; with `-m device` on a machine with a Tenstorrent device, the same checks
run on the device. Floor: PCC 0.99 for every head and tap. Every program is first run through real
ttnn on a mock device of its target (legality, allocator, circular-buffer clashes): it must accept it.
"""

from __future__ import annotations

import pytest
import torch

from converter.reference import reference_outputs
from converter.trace import trace_model
from hardware.targets import get_target
from passes.pipeline import plan_graph
from runtime.images import to_model_input
from runtime.run import load_module, run_module
from runtime.scenes import street_scene
from runtime.ttnn_host import tt_device_present
from runtime.ttnn_mock import check_module
from runtime.weights import host_weights
from templates.render import render_module

SIZE = (512, 1024)
PCC_FLOOR = 0.99


def pcc(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.corrcoef(torch.stack([a.flatten().double(), b.flatten().double()]))[0, 1].item()


@pytest.fixture(scope="module")
def full_model(checkpoint_path):
    from converter.checkpoint import load_checkpoint
    from converter.model import build_model, load_config

    return load_checkpoint(build_model(load_config()), checkpoint_path)


def _check(full_model, tmp_path, variant: str, target: str, backend: str, size=SIZE) -> None:
    graph = plan_graph(trace_model(full_model, variant, size), get_target(target))
    path = tmp_path / f"{variant}.py"
    path.write_text(render_module(graph, target))
    verdict = check_module(path, target)  # real ttnn on a mock device: legality, allocator, CB clashes
    assert verdict.accepted, verdict.verdict()
    image = to_model_input(street_scene(size[1], size[0], seed=1))
    result = run_module(load_module(path), host_weights(graph), image, backend=backend, taps=True)
    ref = reference_outputs(full_model, variant, image, taps=True)
    scores = {k: pcc(v, ref[k]) for k, v in {**result.outputs, **result.taps}.items()}
    assert set(result.outputs) | set(result.taps) == set(ref)
    assert all(s >= PCC_FLOOR for s in scores.values()), scores


@pytest.mark.slow
@pytest.mark.parametrize("target", ["blackhole-20", "blackhole-p150", "wormhole-n150"])
@pytest.mark.parametrize("variant", ["panoptic_deeplab", "deeplab_v3_plus"])
def test_on_the_emulator(full_model, tmp_path, variant: str, target: str) -> None:
    _check(full_model, tmp_path, variant, target, "emulator")


@pytest.mark.slow
@pytest.mark.parametrize(
    "target",
    [
        "blackhole-20",  # the ASPP's dilation-18 convs as partial convs over input-channel groups
        "blackhole-p150",  # config tensors in DRAM (as the hand-written model): L1_SMALL no longer fills
        "wormhole-n150",
    ],
)
def test_released_config_at_1024x2048_on_the_emulator(full_model, tmp_path, target: str) -> None:
    _check(full_model, tmp_path, "panoptic_deeplab", target, "emulator", (1024, 2048))


@pytest.mark.device
@pytest.mark.skipif(not tt_device_present(), reason="no Tenstorrent device on this machine (/dev/tenstorrent)")
@pytest.mark.parametrize("variant", ["panoptic_deeplab", "deeplab_v3_plus"])
def test_on_a_device(full_model, tmp_path, variant: str) -> None:
    _check(full_model, tmp_path, variant, "blackhole-20", "device")
