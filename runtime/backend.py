"""Where a generated TTNN program runs: a real Tenstorrent device, or the host emulator.

    backend = choose_backend()                       # "device" or "emulator"
    ttnn_like = ttnn_module(backend, get_target(name))
    bind(generated_module, ttnn_like)                # the module's global `ttnn` is now ttnn_like

The environment variable PDL2TTNN_BACKEND (emulator|device) or the `preference` argument forces a
choice; the argument wins over the variable.
"""

from __future__ import annotations

import os
from types import ModuleType

from converter.errors import UserError
from hardware.targets import Target
from runtime.ttnn_host import import_ttnn, tt_device_present

ENV = "PDL2TTNN_BACKEND"
BACKENDS = ("device", "emulator")


def _device_opens() -> bool:
    """True when ttnn can open device 0 (only tried where a device node exists)."""
    if not tt_device_present():
        return False
    ttnn = import_ttnn()
    try:
        device = ttnn.open_device(device_id=0)
    except Exception:  # any failure to open means: not usable here
        return False
    ttnn.close_device(device)
    return True


def choose_backend(preference: str | None = None) -> str:
    choice = preference or os.environ.get(ENV) or None
    if choice is not None and choice not in BACKENDS:
        raise UserError(f"unknown backend {choice!r}: use 'device' or 'emulator' (argument or {ENV})")
    if choice == "emulator":
        return "emulator"
    if choice == "device":
        if not _device_opens():
            raise UserError(
                f"backend 'device' was forced but no Tenstorrent device can be opened here: "
                f"use the emulator ({ENV}=emulator) or run on a machine with a device"
            )
        return "device"
    return "device" if _device_opens() else "emulator"


def ttnn_module(backend: str, target: Target) -> ModuleType:
    """The real ttnn for "device", or an emulated ttnn for `target` for "emulator"."""
    if backend == "device":
        return import_ttnn()
    if backend == "emulator":
        from runtime.emulator import emulated_ttnn

        return emulated_ttnn(target)
    raise UserError(f"unknown backend {backend!r}: use 'device' or 'emulator'")


def bind(module: ModuleType, ttnn_like: ModuleType) -> ModuleType:
    """Point a loaded generated module's global `ttnn` at `ttnn_like`; returns the module."""
    setattr(module, "ttnn", ttnn_like)  # noqa: B010 (a generated module's global, unknown to the type checker)
    return module
