"""Detectron2 checkpoints: loading them, and writing seeded stand-ins (`.pkl`) for tests.

The released weights (model_final_bd324a.pkl) cannot be downloaded here, so tests use checkpoints in
the same format ({"model": {state-dict name: numpy array}, "__author__": ...}, a plain pickle) made
from seeded random weights.

A checkpoint is a file the user passes, so it is data: `pickle.load` would run whatever callable the
file names. `read_checkpoint` tells the two formats apart by content, not suffix: a model-zoo pickle is
unpickled with an allow-list of the few globals needed to rebuild numpy arrays, and nothing else; a
torch file (what Detectron2's trainer saves, `{"model": state dict of tensors, "optimizer": ...}`) goes
through `torch.load(weights_only=True)`, torch's own allow-list. Detectron2's DetectionCheckpointer is
not used because it unpickles the file again without one (and nothing here reads MODEL.WEIGHTS). Loading then does
what that checkpointer does for a model-zoo
file (arrays to tensors, non-strict `load_state_dict`), after `check_state` has checked every key and
shape (the checkpointer would only warn).
"""

from __future__ import annotations

import io
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from detectron2.config import CfgNode
from torch import nn

from converter.atomic import write_bytes
from converter.errors import UserError
from converter.model import build_model, with_crop_size
from converter.untrusted import printable, read_regular, scan_pickle

_PICKLE_PROTOCOL = 4  # fixed, so the bytes do not depend on the Python version's default
# BN statistics are calibrated at the released model's inference size: ASPP's 6/12/18-dilated convs
# see mostly zero padding at small sizes, and stats calibrated there left the heads' activations ~50x
# too large at 512x1024 (measured). One single-threaded pass here takes ~4 s.
_CALIBRATION_SIZE = (512, 1024)
# Scale of each bottleneck's last BatchNorm (its residual branch) relative to the identity path.
# Random weights with unit-gain branches make a chaotic network: bf16 rounding alone (plain torch, no
# device) drops res5's PCC to 0.79 and the heads' to ~0.8. Trained ResNets are not like that: their
# last-BN gammas are small (what "zero-gamma" initialization, Goyal et al. 2017, builds in), and
# Tenstorrent's bf8 model reaches PCC > 0.99 with real weights. Measured at 128x256, bf16 rounding of
# every activation gives center-head PCC 0.979 / 0.990 / 0.996 with gain 0.3 / 0.2 / 0.1: we take 0.1,
# a network about as well-conditioned as a trained one, so PCC tests measure the compiler, not chaos.
_RESIDUAL_BRANCH_GAIN = 0.1
_FIX = "use a Detectron2 model-zoo .pkl such as model_final_bd324a.pkl, or a .pth its trainer saved"
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since torch 1.6
_ZIP_SLACK = 1 << 24  # a torch file's records beyond the parameters: its pickle, optimizer scalars, version
_MAX_TORCH_PICKLE = 1 << 26  # a state dict's data.pkl: ~100 KB for R-52
# What a legacy (pre-1.6) torch.save file unpickles to first; torch.load reads the rest.
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
# What torch's weights-only unpickler names when it refuses a global.
_TORCH_REFUSED = re.compile(r"GLOBAL (\S+)")
# Everything a model-zoo pickle may name: numpy's array/scalar rebuilders (numpy 1.x and 2.x module
# paths), OrderedDict, and `_codecs.encode`, which protocol-2 pickles use for bytes. None of them runs
# code of the file's choosing.
_ALLOWED_GLOBALS = frozenset(
    {
        *(
            (module, name)
            for module in ("numpy.core.multiarray", "numpy._core.multiarray")
            for name in ("_reconstruct", "scalar")
        ),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("collections", "OrderedDict"),
        ("_codecs", "encode"),
    }
)


class _UnsafeGlobal(pickle.UnpicklingError):
    pass


def _latin1(text: object, encoding: str = "latin1") -> bytes:
    """`_codecs.encode` as protocol-2 pickles call it, for bytes: a str in Latin-1, no longer than the
    str the file holds (another codec could grow it: 'hex' nested 31 times makes 4 GB of 359 bytes)."""
    if not isinstance(text, str) or encoding.lower().replace("-", "") != "latin1":
        raise _UnsafeGlobal(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _reconstruct(subtype: object, shape: object, dtype: Any) -> np.ndarray:
    """numpy's `_reconstruct` as numpy's own pickles call it: an empty ndarray that BUILD then fills
    from the file's bytes (any other shape would allocate what the file asks for)."""
    if subtype is not _NDARRAY or shape != (0,):
        raise _UnsafeGlobal(f"numpy _reconstruct of {printable(repr(shape))[:40]}")
    return np.ndarray((0,), dtype=np.dtype(dtype))


_NDARRAY = object()  # what the file gets for numpy.ndarray: an argument of _reconstruct, never called


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild dicts of numpy arrays and refuses any other global."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise _UnsafeGlobal(printable(f"{module}.{name}"))
        if name == "_reconstruct":
            return _reconstruct
        if (module, name) == ("numpy", "ndarray"):
            return _NDARRAY
        if module == "_codecs":
            return _latin1
        return super().find_class(module, name)


def _expected_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The entries a checkpoint must provide (Detectron2 tolerates a missing BN batch counter)."""
    return {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def random_state_dict(cfg: CfgNode, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded weights with realistic activations and non-trivial BatchNorm statistics.

    Every conv gets He-normal weights (so the 1x1 predictors give O(1) outputs, not Detectron2's
    1e-3 init) and BN affine params are perturbed (weight != 1, bias != 0, so BN folding is really
    exercised); BN running stats are then calibrated by one forward pass in train mode on a seeded
    random 512x1024 image (momentum=None: the stats become that batch's exactly).
    """
    calibration_cfg = with_crop_size(cfg, _CALIBRATION_SIZE)  # weights do not depend on the crop
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model: Any = build_model(calibration_cfg)  # a Detectron2 meta-architecture (attributes by config)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.Conv2d):
                    fan_in = m.weight[0].numel()
                    m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                    if m.bias is not None:
                        m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
            for bn in bns:  # before calibrating, so the stats downstream already see these params
                bn.weight.copy_(1.0 + 0.1 * torch.randn(bn.weight.shape, generator=g))
                bn.bias.copy_(0.1 * torch.randn(bn.bias.shape, generator=g))
            for name, m in model.backbone.named_modules():
                if name.endswith(".conv3") and hasattr(m, "norm"):
                    m.norm.weight.mul_(_RESIDUAL_BRANCH_GAIN)  # gamma only: a constant beta adds no chaos
            for bn in bns:
                bn.reset_running_stats()
                bn.momentum = None
                bn.train()
            # One thread: reductions then run in one fixed order, so the bytes are reproducible.
            torch.set_num_threads(1)
            try:
                image = torch.rand((3, *_CALIBRATION_SIZE), generator=g) * 255.0
                x = ((image - model.pixel_mean) / model.pixel_std)[None]
                features = model.backbone(x)
                model.sem_seg_head(features)  # eval mode but for the BNs: no targets, no dropout
                if hasattr(model, "ins_embed_head"):
                    model.ins_embed_head(features)
            finally:
                torch.set_num_threads(threads)
    return {k: v.detach().numpy().copy() for k, v in sorted(_expected_state(model).items())}


def write_random_checkpoint(cfg: CfgNode, path: Path, seed: int = 0) -> Path:
    """Write a model-zoo-format `.pkl` of `random_state_dict(cfg, seed)`; same seed, same bytes."""
    path = Path(path)
    payload = {"model": random_state_dict(cfg, seed), "__author__": f"pdl2ttnn random weights, seed {seed}"}
    write_bytes(path, pickle.dumps(payload, protocol=_PICKLE_PROTOCOL))
    return path


def unpickle_arrays(data: bytes, what: str) -> object:
    """The model-zoo pickle `data` unpickled with the allow-list, after `scan_pickle` bounded it; or a
    UserError (`what` names the file)."""
    scan_pickle(data, what)
    try:
        return _ArrayUnpickler(io.BytesIO(data), encoding="latin1").load()
    except _UnsafeGlobal as e:
        raise UserError(
            f"{what} refers to {e}, which a model-zoo checkpoint never does, so it was "
            f"not loaded (unpickling it could run code); {_FIX}"
        ) from None
    except Exception as e:  # truncated, not a pickle, a malformed array
        raise UserError(f"{what} is not a readable pickle ({type(e).__name__}); {_FIX}") from None


def _check_zip(path: Path, data: bytes, max_bytes: int | None) -> None:
    """Bound a torch zip before torch inflates it: its pickle (scanned like a model-zoo one) and its
    records' declared sizes (torch allocates what a record declares, then inflates into it), whose sum
    cannot exceed the model's parameters at 16 bytes each (fp32 weights, an optimizer's two moments)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            records = z.infolist()
            pickles = [r for r in records if r.filename.endswith("/data.pkl")]
            if len(pickles) != 1 or pickles[0].file_size > _MAX_TORCH_PICKLE:
                raise UserError(f"checkpoint {path} is not a readable torch file (no data.pkl of a state dict); {_FIX}")
            declared = sum(r.file_size for r in records)
            if max_bytes is not None and declared > max_bytes:
                raise UserError(
                    f"checkpoint {path} declares {declared} bytes of records, more than the {max_bytes} the "
                    f"config's model has parameters for; {_FIX}"
                )
            scan_pickle(z.read(pickles[0]), f"checkpoint {path}")
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:
        raise UserError(f"checkpoint {path} is not a readable torch file ({type(e).__name__}); {_FIX}") from None


def _torch_load(path: Path) -> object:
    try:
        with warnings.catch_warnings():  # a refusal is one line: torch's warnings about old formats are not
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        refused = _TORCH_REFUSED.search(str(e))
        if refused:
            raise UserError(
                f"checkpoint {path} refers to {printable(refused.group(1))}, which a checkpoint of weights never "
                f"does, so it was not loaded (unpickling it could run code); {_FIX}"
            ) from None
        raise UserError(f"checkpoint {path} is not a readable torch file (UnpicklingError); {_FIX}") from None
    except Exception as e:  # truncated zip, missing records, ...
        raise UserError(f"checkpoint {path} is not a readable torch file ({type(e).__name__}); {_FIX}") from None


def _is_numeric(v: object) -> bool:
    if isinstance(v, np.ndarray):
        return v.dtype.kind in "biuf"
    return isinstance(v, torch.Tensor) and not (v.is_complex() or v.is_quantized)


def read_checkpoint(path: Path, max_bytes: int | None = None) -> dict[str, Any]:
    """The checkpoint's dict, whose "model" maps state-dict names to numeric numpy arrays (model-zoo
    pickle) or tensors (torch file); or a UserError saying what is wrong with the file. `max_bytes`
    bounds the file and what a torch file may inflate to."""
    path = Path(path)
    raw = read_regular(path, "checkpoint", max_bytes)
    torch_file = raw.startswith(_ZIP_MAGIC)
    if torch_file:
        _check_zip(path, raw, max_bytes)
        data = _torch_load(path)
    else:
        data = unpickle_arrays(raw, f"checkpoint {path}")
    if not torch_file and isinstance(data, int) and data == _TORCH_LEGACY_MAGIC:
        torch_file, data = True, _torch_load(path)
    if not isinstance(data, dict):
        raise UserError(f"checkpoint {path} holds a {type(data).__name__}, not a dict; {_FIX}")
    # Model-zoo pickles carry "__author__"; the trainer's torch files carry "iteration" etc. instead.
    if not isinstance(data.get("model"), dict) or not (torch_file or "__author__" in data):
        keys = "'model' (a dict)" if torch_file else "'model' (a dict) and '__author__'"
        raise UserError(f"checkpoint {path} lacks the key(s) {keys}; {_FIX}")
    for k, v in data["model"].items():
        if not _is_numeric(v):
            what = (
                f"an array of dtype {v.dtype}" if isinstance(v, (np.ndarray, torch.Tensor)) else f"a {type(v).__name__}"
            )
            raise UserError(f"checkpoint {path}: entry {printable(repr(k))} is {what}, not a numeric array; {_FIX}")
    return data


def check_state(model: nn.Module, state: dict[str, Any], path: Path) -> None:
    """UserError naming the first mismatches if `state` does not fit `model` key for key, shape for shape."""
    expected = _expected_state(model)
    problems = [f"missing {k}" for k in expected if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in expected and not k.endswith("num_batches_tracked")]
    for k, v in expected.items():
        if k in state and tuple(np.shape(state[k])) != tuple(v.shape):
            problems.append(f"{k} has shape {tuple(np.shape(state[k]))}, model expects {tuple(v.shape)}")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise UserError(
            f"checkpoint {path} does not match the config: {'; '.join(problems[:3])}{more}; "
            "use the checkpoint trained with this config, or the config it was trained with"
        )


def load_checkpoint(model: nn.Module, path: Path) -> nn.Module:
    """Load a checkpoint into `model`, as Detectron2's DetectionCheckpointer would (see the top)."""
    path = Path(path)
    params = sum(v.numel() for v in _expected_state(model).values())
    state = read_checkpoint(path, max_bytes=16 * params + _ZIP_SLACK)["model"]
    check_state(model, state, path)
    model.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()}, strict=False)
    return model
