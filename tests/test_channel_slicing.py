"""A conv that fits L1 in no sharding or DRAM slicing runs as partial convs over input-channel groups
(passes/conv_sharding.py), rendered as conv2d_by_channels (templates/module.py.j2) with each group's
weights (runtime/weights.py). The cases are the ones that need it on the 20-core Blackhole grid: the
Cityscapes ASPP's 2048->256 3x3 dilation-18 conv at 64x128 (the released config at 1024x2048), whose
partial results are summed, and the COCO model's depthwise dilation-18 ASPP conv over 2048 channels at
40x40 (640x640), whose parts are whole groups, concatenated."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from converter.interpreter import run_graph
from converter.ir import Graph
from hardware.targets import get_target
from passes.conv_sharding import channel_groups, legal_configs
from passes.pipeline import plan_graph
from passes.plan import conv_of, plan_of
from passes.shards import ConvShape
from runtime.run import load_module, run_module
from runtime.ttnn_mock import check_module
from runtime.weights import host_weights
from templates.render import render_module
from tests.pass_graphs import GraphBuilder

TARGET = get_target("blackhole-20")
ASPP = "sem_seg_head.decoder.res5.project_conv.convs.3"
# case -> (input hw, output channels, conv groups)
CASES = {"summed": ((64, 128), 256, 1), "depthwise": ((40, 40), 2048, 2048)}


def _aspp(case: str, channels: int = 2048) -> Graph:
    hw, out_channels, groups = CASES[case]
    out_channels, groups = min(out_channels, channels), min(groups, channels)
    b = GraphBuilder((1, channels, *hw))
    y = b.conv(ASPP, "input", out_channels, k=3, dilation=18, groups=groups, activation="relu")
    out = b._add("output.sem_seg", "output", [y], (1, out_channels, *hw), source=ASPP)  # as the front end ends a head
    return b.graph({"sem_seg": out})


@pytest.fixture(scope="module", params=list(CASES))
def case(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def planned(case: str) -> Graph:
    return plan_graph(_aspp(case), TARGET)


@pytest.fixture(scope="module")
def generated(planned: Graph, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gen") / "aspp.py"
    path.write_text(render_module(planned, TARGET))
    return path


def test_the_whole_conv_fits_nowhere_so_the_planner_takes_channel_groups(case: str, planned: Graph):
    node = planned.node(ASPP)
    chosen = conv_of(node)
    assert chosen.channel_slices > 1
    notes = plan_of(node).notes  # the plan report says why
    assert any("input-channel groups" in note for note in notes), notes
    s = ConvShape.of(node, (1, 2048, *CASES[case][0]))
    assert legal_configs(node, s, "bfloat16", TARGET, TARGET.l1_budget(), parts=1)[0] == []  # whole: nowhere
    assert chosen.channel_slices in channel_groups(s)
    # a conv that fits whole is never sliced
    small = plan_graph(_aspp(case, 256), TARGET).node(ASPP)
    assert conv_of(small).channel_slices == 1


def test_weights_are_split_by_input_channel_group(case: str, planned: Graph):
    weights = host_weights(planned)
    node = planned.node(ASPP)
    k, grouped = conv_of(node).channel_slices, node.attrs["groups"] > 1
    parts = [weights[f"{ASPP}.{g}.weight"].data.float() for g in range(k)]
    # the prepared host copy is bfloat16 or float32 rounded for LoFi: compare loosely
    whole = torch.cat(parts, dim=0 if grouped else 1)
    torch.testing.assert_close(whole, node.params["weight"].float(), rtol=0.01, atol=0.01)
    assert f"{ASPP}.weight" not in weights
    biases = [name for name in weights if name.endswith(".bias")]
    # summed: the bias once, in group 0; depthwise: each group its own channels' biases
    assert biases == ([f"{ASPP}.{g}.bias" for g in range(k)] if grouped else [f"{ASPP}.0.bias"])


def test_generated_code_joins_the_partial_convs_and_applies_relu_once(case: str, generated: Path):
    text = generated.read_text()
    assert re.search(r'= self\.conv2d_by_channels\(f?"[^"]*convs\.3", x\)', text)
    row = text[text.index(f'"{ASPP}": dict(') :].split("\n    ),\n", 1)[0]
    k = int(re.search(r"channel_slices=(\d+)", row).group(1))  # type: ignore[union-attr]
    if case == "summed":  # each part over 2048/k channels into all 256 outputs, the relu on the sum
        assert f"in_channels={2048 // k}, out_channels=256" in row and 'join="sum"' in row
        assert "sum_activations=[ttnn.UnaryWithParam(ttnn.UnaryOpType.RELU)]" in row
        assert "activation=" not in row.replace("sum_activations", "")
    else:  # each part whole groups with their own outputs and relu, concatenated
        assert f"in_channels={2048 // k}, out_channels={2048 // k}" in row and f"groups={2048 // k}" in row
        assert 'join="concat"' in row and "sum_activations=[]" in row
        assert "activation=ttnn.UnaryWithParam(ttnn.UnaryOpType.RELU)" in row


def test_real_ttnn_accepts_it_on_a_mock_device(generated: Path):
    verdict = check_module(generated, TARGET)
    assert verdict.accepted, verdict.verdict()


def test_emulated_module_equals_the_fp32_conv(case: str, planned: Graph, generated: Path):
    image = torch.randn((1, 2048, *CASES[case][0]), generator=torch.Generator().manual_seed(3))
    got = run_module(load_module(generated), host_weights(planned), image, backend="emulator").outputs["sem_seg"]
    want = run_graph(_aspp(case), image)["sem_seg"]
    pcc = torch.corrcoef(torch.stack([got.flatten().double(), want.flatten().double()]))[0, 1].item()
    assert got.shape == want.shape and pcc > 0.999, pcc
    assert got.min() >= 0  # the relu ran
