"""Adding an op is one descriptor: sigmoid, described here and nowhere else in the compiler, goes from
a torch model through the front end, every pass, code generation, the emulator and real ttnn.

The descriptor says what sigmoid is (no attributes, torch.sigmoid's semantics, lifted from
aten.sigmoid, an elementwise op on one tensor that keeps its input's dtype, priced as SFPU work,
written as `ttnn.sigmoid`); the passes and templates only read those traits. The emulator emulates
ttnn's API, so it serves `ttnn.sigmoid` itself (runtime/emulator/ops_eltwise.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from converter.errors import UserError
from converter.interpreter import run_graph
from converter.ir import Graph
from converter.ops import REGISTRY, Call, Dtype, Layout, Lowering, Memory, OpKind, Work, register, unregister
from converter.trace import lift_program
from hardware.targets import get_target
from passes import l1_sim, memory_plan
from passes.pipeline import plan_graph
from passes.plan import plan_of
from runtime.run import load_module, run_module
from runtime.ttnn_mock import check_module
from runtime.weights import host_weights
from templates import render
from templates.render import render_module

TARGET = "blackhole-20"

SIGMOID = OpKind(
    "sigmoid",
    attrs=(),
    reference=lambda n, x: x.sigmoid(),
    memory=Memory.UNARY,
    lowering=Lowering.CALL,
    call=Call("ttnn.sigmoid"),
    dtype=Dtype.INPUT,
    reads=Layout.TILE,
    work=lambda n, _: Work(sfpu=n.out.numel, flops=4 * n.out.numel),
    channelwise=True,
    aten_unary=("sigmoid.default",),
)


class Gate(nn.Module):
    """conv -> sigmoid -> 1x1 conv: a gate between two convs, at a size real ttnn checks in seconds."""

    def __init__(self) -> None:
        super().__init__()
        with torch.random.fork_rng():  # the default initialization, seeded
            torch.manual_seed(0)
            self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
            self.conv2 = nn.Conv2d(32, 32, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.conv2(torch.sigmoid(self.conv1(x))),)


@pytest.fixture(scope="module")
def sigmoid_op() -> Iterator[OpKind]:
    register(SIGMOID)
    yield SIGMOID
    unregister(SIGMOID.name)


@pytest.fixture(scope="module")
def gate() -> Gate:
    return Gate().eval()


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.randn((1, 3, 32, 64), generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def traced(sigmoid_op: OpKind, gate: Gate, image: torch.Tensor) -> Graph:
    nodes, outputs, _ = lift_program(torch.export.export(gate, (torch.zeros_like(image),)), ("sem_seg",))
    return Graph(tuple(nodes), outputs, {"variant": "gate"})


@pytest.fixture(scope="module")
def generated(traced: Graph, tmp_path_factory) -> tuple[Graph, Path]:
    planned = plan_graph(traced, get_target(TARGET))
    path = tmp_path_factory.mktemp("gen") / "gate.py"
    path.write_text(render_module(planned, TARGET))
    return planned, path


def test_every_recipe_a_descriptor_can_name_has_its_implementation() -> None:
    # a descriptor names recipes, the passes and templates implement each once: none may be missing
    device_ops = set(Memory) - {Memory.INPUT, Memory.OUTPUT}
    assert set(memory_plan._MODES) == device_ops and set(l1_sim._STEPS) == device_ops
    assert set(render._LOWER) == set(Lowering) - {Lowering.INPUT, Lowering.OUTPUT, Lowering.CONV, Lowering.NONE}
    for kind in REGISTRY.values():
        assert (kind.reference is None) == (kind.memory is Memory.INPUT), kind.name


def test_without_its_descriptor_the_front_end_rejects_sigmoid(sigmoid_op: OpKind, gate: Gate, image) -> None:
    unregister(sigmoid_op.name)
    try:
        assert "sigmoid" not in REGISTRY  # the compiler itself does not know the op
        with pytest.raises(UserError, match="unsupported operation aten.sigmoid.default"):
            lift_program(torch.export.export(gate, (torch.zeros_like(image),)), ("sem_seg",))
    finally:
        register(sigmoid_op)


def test_front_end_lifts_torch_sigmoid_and_the_reference_is_torch(traced: Graph, gate: Gate, image) -> None:
    assert [n.op for n in traced] == ["input", "conv2d", "sigmoid", "conv2d", "output"]
    with torch.no_grad():
        want = gate(image)[0]
    torch.testing.assert_close(run_graph(traced, image)["sem_seg"], want, rtol=1e-5, atol=1e-5)


def test_passes_plan_it_from_its_traits(generated: tuple[Graph, Path]) -> None:
    planned, _ = generated
    (sig,) = [n for n in planned if n.op == "sigmoid"]
    conv = planned.node(sig.inputs[0])
    plan = plan_of(sig)
    assert plan.output is not None and plan.layout == "TILE"
    # in place of its input (the first memory mode of an elementwise op on one tensor)
    assert plan.output.buffer == plan_of(conv).output.buffer  # type: ignore[union-attr]


def test_generated_code_calls_ttnn_sigmoid(generated: tuple[Graph, Path]) -> None:
    _, path = generated
    calls = [line.strip() for line in path.read_text().splitlines() if "ttnn.sigmoid(" in line]
    # one call (on its method's input, conv1's output), without a dtype (it writes its input's dtype),
    # into its planned memory
    assert calls == ['sigmoid = ttnn.sigmoid(x, memory_config=OUTPUT_MEMORY["sigmoid"])  # model (top level)'], calls


def test_emulated_module_matches_torch(generated: tuple[Graph, Path], gate: Gate, image) -> None:
    planned, path = generated
    got = run_module(load_module(path), host_weights(planned), image, backend="emulator").outputs["sem_seg"]
    with torch.no_grad():
        want = gate(image)[0]
    pcc = torch.corrcoef(torch.stack([got.flatten().double(), want.flatten().double()]))[0, 1].item()
    assert got.shape == want.shape and pcc > 0.999, pcc


def test_real_ttnn_accepts_the_module_on_a_mock_device(generated: tuple[Graph, Path]) -> None:
    _, path = generated
    verdict = check_module(path, TARGET)
    assert verdict.accepted, verdict.verdict()
