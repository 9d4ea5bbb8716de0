"""Data parallel on an emulated mesh (runtime/mesh.py, runtime/emulator/mesh.py): a batch of N images on
N chips gives each image's single-chip result exactly; the queues' ordering and ownership rule hold."""

from __future__ import annotations

import pytest
import torch

from converter.errors import UserError
from hardware.targets import get_target
from runtime.emulator import emulated_ttnn
from runtime.run import load_module, run_module
from runtime.weights import host_weights
from templates.render import render_module
from tests.codegen_graphs import tiny_graph


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    graph = tiny_graph()
    path = tmp_path_factory.mktemp("gen") / "tiny_net.py"
    path.write_text(render_module(graph, "blackhole-20"))
    images = torch.rand((8, 3, 64, 128), generator=torch.Generator().manual_seed(3)) * 255
    weights = host_weights(graph)
    single = [run_module(load_module(path), weights, images[i : i + 1], backend="emulator") for i in range(8)]
    return path, weights, images, single


@pytest.mark.parametrize(
    "mesh, two_queues, trace", [((1, 2), False, False), ((2, 4), False, False), ((1, 4), True, True)]
)
def test_a_batch_on_n_chips_is_each_images_single_chip_result(tiny, mesh, two_queues, trace) -> None:
    path, weights, images, single = tiny
    n = mesh[0] * mesh[1]
    result = run_module(
        load_module(path), weights, images[:n], backend="emulator", mesh=mesh, two_queues=two_queues, trace=trace
    )
    for head, got in result.outputs.items():
        assert got.shape[0] == n
        for i in range(n):
            assert torch.equal(got[i : i + 1], single[i].outputs[head]), (head, i)


def test_the_batch_must_fill_the_mesh(tiny) -> None:
    path, weights, images, _ = tiny
    with pytest.raises(UserError, match=r"runs on 2 chip\(s\), a batch of \(2, 3, 64, 128\)"):
        run_module(load_module(path), weights, images[:3], backend="emulator", mesh=(1, 2))


def test_each_chip_holds_its_share_of_the_batch() -> None:
    ttnn = emulated_ttnn(get_target("t3k"))
    mesh = ttnn.open_mesh_device(ttnn.MeshShape(2, 4))
    data = torch.arange(8 * 64, dtype=torch.float32).reshape(8, 1, 2, 32)
    x = ttnn.from_torch(data, dtype=ttnn.float32, device=mesh, mesh_mapper=ttnn.ShardTensorToMesh(mesh, dim=0))
    shards = ttnn.get_device_tensors(x)
    assert [s.device() for s in shards] == mesh.chips and len({id(c) for c in mesh.chips}) == 8
    for i, s in enumerate(shards):
        assert torch.equal(ttnn.to_torch(s), data[i : i + 1])
    with pytest.raises(RuntimeError, match="needs a mesh_composer"):
        ttnn.to_torch(x)
    assert torch.equal(ttnn.to_torch(x, mesh_composer=ttnn.ConcatMeshToTensor(mesh, dim=0)), data)
    w = ttnn.from_torch(data[:1], dtype=ttnn.float32, mesh_mapper=ttnn.ReplicateTensorToMesh(mesh))
    y = ttnn.add(x, ttnn.to_device(w, mesh))  # every chip adds its own replica
    assert torch.equal(ttnn.to_torch(y, mesh_composer=ttnn.ConcatMeshToTensor(mesh, dim=0)), data + data[:1])


def _two_queue_device():
    ttnn = emulated_ttnn(get_target("n300"))
    mesh = ttnn.open_mesh_device(ttnn.MeshShape(1, 2), num_command_queues=2)
    host = ttnn.from_torch(
        torch.ones(2, 1, 32, 32), dtype=ttnn.bfloat16, mesh_mapper=ttnn.ShardTensorToMesh(mesh, dim=0)
    )
    return ttnn, mesh, host


def test_a_program_on_queue_1_after_queue_0_needs_an_event() -> None:
    """ttnn's ownership rule (measured on the real ttnn, MESH.md): after programs on queue 0 a program
    on queue 1 fails, even after synchronize_device, until queue 1 waits for an event of queue 0."""
    ttnn, mesh, host = _two_queue_device()
    x = ttnn.to_device(host, mesh)
    ttnn.relu(x)
    ttnn.synchronize_device(mesh)
    with ttnn.command_queue(1), pytest.raises(RuntimeError, match="in use by cq 0. Can't enqueue program from cq 1"):
        ttnn.relu(x)
    ttnn.wait_for_event(1, ttnn.record_event(mesh, 0))
    with ttnn.command_queue(1):
        ttnn.relu(x)


def test_a_write_on_queue_1_is_read_on_queue_0_only_after_its_event() -> None:
    ttnn, mesh, host = _two_queue_device()
    staging, x = ttnn.to_device(host, mesh), ttnn.to_device(host, mesh)
    op_event = ttnn.record_event(mesh, 0)
    ttnn.wait_for_event(1, op_event)
    ttnn.copy_host_to_device_tensor(host, staging, cq_id=1)
    with pytest.raises(RuntimeError, match="reads a buffer written on cq 1 without waiting"):
        ttnn.copy(staging, x)  # queue 0 did not wait for the write
    ttnn.wait_for_event(0, ttnn.record_event(mesh, 1))
    ttnn.copy(staging, x)
    with pytest.raises(RuntimeError, match="overwrites a buffer cq 0 still uses"):
        ttnn.copy_host_to_device_tensor(host, staging, cq_id=1)  # queue 1 did not wait for the copy
    ttnn.wait_for_event(1, ttnn.record_event(mesh, 0))
    ttnn.copy_host_to_device_tensor(host, staging, cq_id=1)


def test_a_single_queue_device_has_no_queue_1() -> None:
    ttnn, _, host = _two_queue_device()
    mesh = ttnn.open_mesh_device(ttnn.MeshShape(1, 2))
    with pytest.raises(RuntimeError, match="command queue 1 does not exist"):
        ttnn.to_device(host, mesh, queue_id=1)
