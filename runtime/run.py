"""Run a generated module on one image: load it, open the device, build the model, run, read back.

The generated module only imports `ttnn`; the backend decides which ttnn that is (a real device, or
the host emulator for the module's TARGET). Inputs and outputs at this boundary are torch NCHW
float32; on the device they are [1, 1, N*H*W, C] as the module's INPUT_* / OUTPUTS say.
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

from converter.errors import UserError
from passes.targets import get_target
from runtime import backend as backends
from runtime.ttnn_host import import_ttnn
from runtime.weights import HostTensor, to_ttnn


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


def to_nchw(ttnn: ModuleType, tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """A device tensor [1, 1, N*H*W, C] (or [N, H, W, C]) -> torch NCHW float32 of `shape`."""
    n, c, h, w = shape
    data = ttnn.to_torch(tensor).to(torch.float32)
    return data.reshape(n, h, w, -1)[..., :c].permute(0, 3, 1, 2).contiguous()


def to_device_input(ttnn: ModuleType, module: ModuleType, image: torch.Tensor, device):
    if tuple(image.shape) != tuple(module.INPUT_SHAPE):
        raise UserError(
            f"input is {tuple(image.shape)} but the module was generated for "
            f"{tuple(module.INPUT_SHAPE)}: resize the image or regenerate with that --input-size"
        )
    n, c, h, w = image.shape
    flat = image.to(torch.float32).permute(0, 2, 3, 1).reshape(1, 1, n * h * w, c)
    return ttnn.from_torch(
        flat,
        dtype=module.INPUT_DTYPE,
        layout=module.INPUT_LAYOUT,
        device=device,
        memory_config=module.INPUT_MEMORY_CONFIG,
    )


def run_module(
    module: ModuleType,
    weights: dict[str, HostTensor],
    image: torch.Tensor,
    *,
    backend: str | None = None,
    taps: bool = False,
    trace: bool = False,
) -> RunResult:
    """Run `module` on `image` (1x3xHxW, RGB 0-255 floats) with the host `weights`.

    `backend` forces "device" or "emulator"; None lets `runtime.backend.choose_backend` decide.

    With `trace`, the forward is also captured once and replayed, and the replay's outputs are
    returned (they must equal the eager ones; the caller can compare).
    """
    chosen = backends.choose_backend(backend)
    ttnn = backends.ttnn_module(chosen, get_target(module.TARGET))
    backends.bind(module, ttnn)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    device = ttnn.open_device(device_id=0, **module.DEVICE_PARAMS)
    try:
        seconds["open"] = time.perf_counter() - start
        start = time.perf_counter()
        model = model_class(module)(device, to_ttnn(weights, ttnn))
        seconds["build"] = time.perf_counter() - start
        start = time.perf_counter()
        x = to_device_input(ttnn, module, image, device)
        tap_tensors: dict | None = {} if taps else None
        out = model.forward(x, taps=tap_tensors)
        result = RunResult({h: to_nchw(ttnn, t, module.OUTPUTS[h]) for h, t in out.items()}, backend=chosen)
        if tap_tensors is not None:
            result.taps = {k: to_nchw(ttnn, t, module.TAPS[k][1]) for k, t in sorted(tap_tensors.items())}
        seconds["first_run"] = time.perf_counter() - start
        if trace:
            result.outputs = _traced_outputs(ttnn, module, model, image, device)
            seconds["replay"] = time.perf_counter() - start - seconds["first_run"]
        result.seconds = seconds
        return result
    finally:
        ttnn.close_device(device)


def _traced_outputs(
    ttnn: ModuleType, module: ModuleType, model, image: torch.Tensor, device
) -> dict[str, torch.Tensor]:
    """Capture one forward as a trace, write the input again, replay it, read the outputs."""
    x = to_device_input(ttnn, module, image, device)
    host = ttnn.from_device(x)
    trace_id = ttnn.begin_trace_capture(device, cq_id=0)
    out = model.forward(x)
    ttnn.end_trace_capture(device, trace_id, cq_id=0)
    ttnn.copy_host_to_device_tensor(host, x)
    ttnn.execute_trace(device, trace_id, cq_id=0, blocking=True)
    outputs = {h: to_nchw(ttnn, t, module.OUTPUTS[h]) for h, t in out.items()}
    ttnn.release_trace(device, trace_id)
    return outputs
