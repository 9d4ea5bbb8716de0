"""A conv that fits L1 in no sharding or DRAM slicing runs as partial convs over input-channel groups
(passes/conv_sharding.py), rendered as conv2d_by_channels (templates/module.py.j2) with each group's
weights (runtime/weights.py). The case is the one that needs it: the Cityscapes ASPP's 2048->256 3x3
dilation-18 conv at 64x128 (the released config at 1024x2048) on the 20-core Blackhole grid."""

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


def _aspp(channels: int = 2048) -> Graph:
    b = GraphBuilder((1, channels, 64, 128))
    y = b.conv(ASPP, "input", 256, k=3, dilation=18, activation="relu")
    out = b._add("output.sem_seg", "output", [y], (1, 256, 64, 128), source=ASPP)  # as the front end ends a head
    return b.graph({"sem_seg": out})


@pytest.fixture(scope="module")
def planned() -> Graph:
    return plan_graph(_aspp(), TARGET)


@pytest.fixture(scope="module")
def generated(planned: Graph, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gen") / "aspp.py"
    path.write_text(render_module(planned, TARGET))
    return path


def test_the_whole_conv_fits_nowhere_so_the_planner_takes_channel_groups(planned: Graph):
    node = planned.node(ASPP)
    chosen = conv_of(node)
    assert chosen.channel_slices > 1
    notes = plan_of(node).notes  # the plan report says why
    assert any("input-channel groups" in note for note in notes), notes
    s = ConvShape.of(node, (1, 2048, 64, 128))
    assert legal_configs(node, s, "bfloat16", TARGET, TARGET.l1_budget(), parts=1)[0] == []  # whole: nowhere
    assert chosen.channel_slices in channel_groups(s)
    # a conv that fits whole is never sliced
    small = plan_graph(_aspp(256), TARGET).node(ASPP)
    assert conv_of(small).channel_slices == 1


def test_weights_are_split_by_input_channel_group_with_the_bias_in_group_0(planned: Graph):
    weights = host_weights(planned)
    whole = planned.node(ASPP).params["weight"]
    k = conv_of(planned.node(ASPP)).channel_slices
    groups = [weights[f"{ASPP}.{g}.weight"].data.float() for g in range(k)]
    assert [tuple(w.shape) for w in groups] == [(256, 2048 // k, 3, 3)] * k
    torch.testing.assert_close(torch.cat(groups, dim=1), whole.float(), rtol=0.01, atol=0.01)  # bfloat8_b/16 host copy
    assert f"{ASPP}.0.bias" in weights and f"{ASPP}.1.bias" not in weights and f"{ASPP}.weight" not in weights


def test_generated_code_sums_the_partial_convs_and_applies_relu_once(generated: Path):
    text = generated.read_text()
    assert re.search(r'= self\.conv2d_by_channels\(f?"[^"]*convs\.3", x\)', text)
    row = text[text.index(f'"{ASPP}": dict(') :].split("\n    ),\n", 1)[0]
    # each partial conv over 512 channels without the relu; the relu on the sum
    assert "in_channels=512" in row and "channel_slices=4" in row
    assert "sum_activations=[ttnn.UnaryWithParam(ttnn.UnaryOpType.RELU)]" in row
    assert "activation=" not in row.replace("sum_activations", "")


def test_real_ttnn_accepts_it_on_a_mock_device(generated: Path):
    verdict = check_module(generated, TARGET)
    assert verdict.accepted, verdict.verdict()


def test_emulated_module_equals_the_fp32_conv(planned: Graph, generated: Path):
    image = torch.randn((1, 2048, 64, 128), generator=torch.Generator().manual_seed(3))
    got = run_module(load_module(generated), host_weights(planned), image, backend="emulator").outputs["sem_seg"]
    want = run_graph(_aspp(), image)["sem_seg"]
    pcc = torch.corrcoef(torch.stack([got.flatten().double(), want.flatten().double()]))[0, 1].item()
    assert got.shape == want.shape and pcc > 0.999, pcc
    assert got.min() >= 0  # the relu ran on the sum
