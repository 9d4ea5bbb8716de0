"""Host emulator of a Tenstorrent device behind the real ttnn 0.81.1 API (see namespace.py), for numerics."""

from runtime.emulator.device import EmuDevice
from runtime.emulator.namespace import EMULATED, emulated_ttnn
from runtime.emulator.tensor import Tensor

__all__ = ["EMULATED", "EmuDevice", "Tensor", "emulated_ttnn"]
