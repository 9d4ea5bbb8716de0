"""Backend choice and binding a generated module to the emulator."""

import types

import pytest

from converter.errors import UserError
from hardware.targets import get_target
from runtime import backend
from runtime.ttnn_host import tt_device_present


def test_forced_emulator_by_argument_and_environment(monkeypatch):
    assert backend.choose_backend("emulator") == "emulator"
    monkeypatch.setenv(backend.ENV, "emulator")
    assert backend.choose_backend() == "emulator"


@pytest.mark.skipif(tt_device_present(), reason="a Tenstorrent device is attached here")
def test_forcing_device_without_one_is_a_user_error(monkeypatch):
    with pytest.raises(UserError, match="no Tenstorrent device"):
        backend.choose_backend("device")
    monkeypatch.setenv(backend.ENV, "device")
    with pytest.raises(UserError, match="no Tenstorrent device"):
        backend.choose_backend()
    monkeypatch.delenv(backend.ENV)
    assert backend.choose_backend() == "emulator"


def test_unknown_backend_is_a_user_error():
    with pytest.raises(UserError, match="unknown backend 'gpu'"):
        backend.choose_backend("gpu")


def test_bind_points_the_generated_module_at_the_emulated_ttnn():
    module = types.ModuleType("generated")
    exec(
        "import ttnn\ndef grid():\n    d = ttnn.open_device(device_id=0, l1_small_size=8192)\n"
        "    return d.compute_with_storage_grid_size()\n",
        module.__dict__,
    )
    backend.bind(module, backend.ttnn_module("emulator", get_target("blackhole-20")))
    g = module.grid()
    assert (g.x, g.y) == (5, 4)
