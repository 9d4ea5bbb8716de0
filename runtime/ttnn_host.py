"""The one place that imports the real `ttnn` package.

Without a Tenstorrent device, ttnn's host-side work (tile layout, bfloat8_b packing, HAL queries)
still needs a cluster description, and fails with "No chips detected" without one. Before the first
import we point ttnn at a mock cluster descriptor shipped with the project, unless a device is
present (then nothing is mocked) or the user has already chosen a descriptor.
"""

from __future__ import annotations

import os
import sys
from importlib.resources import files
from types import ModuleType

MOCK_ENV = "TT_METAL_MOCK_CLUSTER_DESC_PATH"
DEVICE_NODE = "/dev/tenstorrent"


def tt_device_present() -> bool:
    return os.path.isdir(DEVICE_NODE) and bool(os.listdir(DEVICE_NODE))


def mock_cluster_path() -> str:
    return str(files("runtime") / "mock_cluster" / "blackhole-p150.yaml")


def import_ttnn() -> ModuleType:
    """Import ttnn, in host (mock cluster) mode when no TT device is attached."""
    if "ttnn" not in sys.modules:
        if not tt_device_present():
            os.environ.setdefault(MOCK_ENV, mock_cluster_path())
        # ttnn logs its whole config on import and tt-metal logs every (mocked) driver step at info
        # level; keep user output readable unless the user asked for those logs.
        os.environ.setdefault("LOGURU_LEVEL", "WARNING")
        os.environ.setdefault("TT_LOGGER_LEVEL", "error")
    import ttnn

    return ttnn
