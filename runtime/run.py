"""Run a generated module on a batch: load it, open the device (or mesh), build the model, run, read back.

The generated module only imports `ttnn`; the backend decides which ttnn that is (a real device, or
the host emulator for the module's TARGET). Inputs and outputs at this boundary are torch NCHW
float32; on each chip they are [1, 1, N*H*W, C] as the module's INPUT_* / OUTPUTS say (runtime/mesh.py
maps a batch onto the chips).
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import torch

from converter.atomic import check_complete
from converter.errors import UserError
from hardware.targets import get_target
from runtime import backend as backends
from runtime.mesh import Pipeline, close_mesh, open_mesh
from runtime.ttnn_host import import_ttnn
from runtime.weights import HostTensor


@dataclass
class RunResult:
    outputs: dict[str, torch.Tensor]  # head -> NCHW float32
    taps: dict[str, torch.Tensor] = field(default_factory=dict)  # tap -> NCHW float32
    backend: str = ""
    seconds: dict[str, float] = field(default_factory=dict)  # open, build, first run, replay


def load_module(path: Path) -> ModuleType:
    """Import a generated module from a file under a name unique to its path and content."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"generated module {path} does not exist: run pdl-convert first")
    check_complete(path.parent, "the generated module's directory")
    import_ttnn()  # the module's own `import ttnn` must find ttnn already set up for this host
    text = path.read_bytes()
    name = f"pdl2ttnn_generated_{path.stem}_{hashlib.sha256(str(path.resolve()).encode() + text).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def model_class(module: ModuleType) -> type:
    """The generated network class (the module defines exactly one class)."""
    classes = [v for v in vars(module).values() if isinstance(v, type) and v.__module__ == module.__name__]
    if len(classes) != 1:
        raise ValueError(f"{module.__name__}: expected one model class, found {len(classes)}")
    return classes[0]


class Session:
    """A generated module ready to run batch after batch: its device (or mesh) open, its model built
    there (runtime/mesh.py's Pipeline). Close it (or use it as a context manager) to close the device.

    `backend` forces "device" or "emulator"; None lets `runtime.backend.choose_backend` decide. `mesh`
    (rows, cols) of chips runs the module data parallel, default: its target's mesh; `two_queues`
    writes inputs on command queue 1; `trace` replays the forward from the second batch on."""

    def __init__(
        self,
        module: ModuleType,
        weights: dict[str, HostTensor],
        *,
        backend: str | None = None,
        mesh: tuple[int, int] | None = None,
        two_queues: bool = False,
        trace: bool = False,
    ):
        self.backend = backends.choose_backend(backend)
        target = get_target(module.TARGET)
        self.mesh = target.mesh if mesh is None else mesh
        self.ttnn = backends.ttnn_module(self.backend, target)
        backends.bind(module, self.ttnn)
        start = time.perf_counter()
        self.device = open_mesh(self.ttnn, module, self.mesh, 2 if two_queues else 1)
        self.seconds = {"open": time.perf_counter() - start}
        try:
            start = time.perf_counter()
            self.pipeline = Pipeline(self.ttnn, module, self.device, weights, two_queues=two_queues, trace=trace)
            self.seconds["build"] = time.perf_counter() - start
        except BaseException:
            close_mesh(self.ttnn, self.device, self.mesh)
            raise

    @property
    def batch_size(self) -> int:
        return self.pipeline.batch_size

    def __call__(self, images: torch.Tensor, taps: dict | None = None) -> dict[str, torch.Tensor]:
        return self.pipeline(images, taps)

    def read_taps(self, tensors: dict) -> dict[str, torch.Tensor]:
        """A forward's tap tensors (`taps=` of __call__) read back as NCHW float32, by tap name."""
        module = self.pipeline.module
        return {k: self.pipeline.to_nchw(t, module.TAPS[k][1]) for k, t in sorted(tensors.items())}

    def close(self) -> None:
        self.pipeline.close()
        close_mesh(self.ttnn, self.device, self.mesh)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_module(
    module: ModuleType,
    weights: dict[str, HostTensor],
    image: torch.Tensor,
    *,
    backend: str | None = None,
    taps: bool = False,
    trace: bool = False,
    mesh: tuple[int, int] | None = None,
    two_queues: bool = False,
) -> RunResult:
    """Run `module` once on `image` (Bx3xHxW, RGB 0-255 floats: the module's batch times the chips of
    `mesh`) with the host `weights`; see `Session` for the options.

    With `trace`, the forward is also captured once and replayed, and the replay's outputs are
    returned (they must equal the eager ones; the caller can compare).
    """
    with Session(module, weights, backend=backend, mesh=mesh, two_queues=two_queues, trace=trace) as session:
        seconds = dict(session.seconds)
        start = time.perf_counter()
        tap_tensors: dict | None = {} if taps else None
        result = RunResult(session(image, taps=tap_tensors), backend=session.backend)
        if tap_tensors is not None:
            result.taps = session.read_taps(tap_tensors)
        seconds["first_run"] = time.perf_counter() - start
        if trace:  # the first run compiled the programs; this one captures the forward and replays it
            result.outputs = session(image)
            seconds["replay"] = time.perf_counter() - start - seconds["first_run"]
        result.seconds = seconds
        return result
