"""Running a generated module on the emulator: loading, input/output conversion, taps, trace replay."""

from __future__ import annotations

import pytest
import torch

from converter.errors import UserError
from converter.interpreter import run_graph
from runtime.run import load_module, run_module
from runtime.weights import host_weights
from templates.render import render_module
from tests.codegen_graphs import tiny_graph


def pcc(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.corrcoef(torch.stack([a.flatten().double(), b.flatten().double()]))[0, 1].item()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    graph = tiny_graph()
    path = tmp_path_factory.mktemp("gen") / "tiny_net.py"
    path.write_text(render_module(graph, "blackhole-20"))
    image = torch.rand((1, 3, 64, 128), generator=torch.Generator().manual_seed(0)) * 255
    return graph, path, image


def test_outputs_and_taps_match_the_fp32_graph(tiny) -> None:
    graph, path, image = tiny
    result = run_module(load_module(path), host_weights(graph), image, backend="emulator", taps=True)
    ref = run_graph(graph, image, taps=True)
    assert result.backend == "emulator"
    assert set(result.outputs) == {"sem_seg", "offset"} and set(result.taps) == {"res2"}
    assert result.outputs["sem_seg"].shape == (1, 4, 64, 128)  # the module's 32 device channels, read back as 4
    for name, got in {**result.outputs, **result.taps}.items():
        want = ref[name][:, : got.shape[1]]  # the planned graph's widened predictor: zeros past the 4 classes
        assert got.shape == want.shape and got.dtype == torch.float32
        assert pcc(got, want) > 0.999, name


def test_trace_replay_gives_the_eager_outputs(tiny) -> None:
    graph, path, image = tiny
    eager = run_module(load_module(path), host_weights(graph), image, backend="emulator")
    traced = run_module(load_module(path), host_weights(graph), image, backend="emulator", trace=True)
    for head in eager.outputs:
        assert torch.equal(traced.outputs[head], eager.outputs[head])


def test_each_load_is_a_separate_module(tiny, tmp_path) -> None:
    _, path, _ = tiny
    copy = tmp_path / path.name
    copy.write_text(path.read_text())
    a, b = load_module(path), load_module(copy)
    assert a.__name__ != b.__name__ and a.CONV2D is not b.CONV2D


def test_user_mistakes_are_one_line_errors(tiny, tmp_path) -> None:
    graph, path, image = tiny
    with pytest.raises(UserError, match="does not exist"):
        load_module(tmp_path / "missing.py")
    with pytest.raises(UserError, match=r"generated for \(1, 3, 64, 128\)"):
        run_module(load_module(path), host_weights(graph), image[:, :, :32], backend="emulator")
