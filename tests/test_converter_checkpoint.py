"""Seeded model-zoo checkpoints, and loading them without letting the file run code."""

from __future__ import annotations

import collections
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from converter.checkpoint import load_checkpoint, write_random_checkpoint
from converter.errors import UserError
from converter.model import build_model, load_config


def _file_state(path: Path) -> dict[str, np.ndarray]:
    with path.open("rb") as f:
        data = pickle.load(f)
    assert set(data) == {"model", "__author__"}
    return data["model"]


def test_checkpointer_loads_exactly_the_written_weights(small_model, checkpoint_path):
    written = _file_state(checkpoint_path)
    state = small_model.state_dict()
    assert set(written) == {k for k in state if not k.endswith("num_batches_tracked")}
    for k, v in written.items():
        assert isinstance(v, np.ndarray) and v.dtype == np.float32
        assert torch.equal(state[k], torch.from_numpy(v)), k


def test_same_seed_same_bytes(checkpoint_path, tmp_path):
    again = write_random_checkpoint(load_config(), tmp_path / "again.pkl", seed=0)
    assert again.read_bytes() == checkpoint_path.read_bytes()
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temp file


def test_batchnorm_statistics_and_affine_are_non_trivial(checkpoint_path):
    state = _file_state(checkpoint_path)
    means = [v for k, v in state.items() if k.endswith("running_mean")]
    variances = [v for k, v in state.items() if k.endswith("running_var")]
    weights = [v for k, v in state.items() if k.endswith("norm.weight")]
    biases = [v for k, v in state.items() if k.endswith("norm.bias")]
    assert len(means) == len(variances) == len(weights) == len(biases) == 83
    assert all(np.abs(m).mean() > 1e-2 for m in means)
    assert all(np.abs(v - 1).mean() > 1e-2 and (v > 0).all() for v in variances)
    assert all(np.abs(w - 1).mean() > 1e-2 for w in weights)
    assert all(np.abs(b).mean() > 1e-2 for b in biases)


def _write_pickle(path: Path, obj) -> Path:
    path.write_bytes(pickle.dumps(obj))
    return path


def _saved(path: Path, obj: object) -> Path:
    torch.save(obj, path)
    return path


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda p: p, "not found"),
        (lambda p: (p.write_bytes(b"\x00garbage, not a pickle" * 10), p)[1], "not a readable pickle"),
        (lambda p: (p.write_bytes(pickle.dumps({"model": {}})[:20]), p)[1], "not a readable pickle"),
        (lambda p: _write_pickle(p, [1, 2, 3]), "not a dict"),
        (lambda p: _write_pickle(p, {"weights": {}, "__author__": "x"}), "'model'"),
    ],
)
def test_unusable_files_are_user_errors(small_cfg, tmp_path, make, expected):
    path = make(tmp_path / "ckpt.pkl")
    with pytest.raises(UserError, match=expected) as e:
        load_checkpoint(build_model(small_cfg), path)
    assert "\n" not in str(e.value) and "ckpt.pkl" in str(e.value)


def test_mismatched_keys_and_shapes_are_named(small_cfg, checkpoint_path, tmp_path):
    state = dict(_file_state(checkpoint_path))
    del state["backbone.stem.conv1.weight"]
    state["sem_seg_head.predictor.weight"] = np.zeros((7, 256, 1, 1), np.float32)
    state["extra.layer.weight"] = np.zeros(3, np.float32)
    path = _write_pickle(tmp_path / "mismatch.pkl", {"model": state, "__author__": "test"})
    with pytest.raises(UserError) as e:
        load_checkpoint(build_model(small_cfg), path)
    message = str(e.value)
    assert "\n" not in message
    for key in ("backbone.stem.conv1.weight", "sem_seg_head.predictor.weight", "extra.layer.weight"):
        assert key in message


class _MakesDirectory:
    """Unpickling this calls os.mkdir: what a hostile checkpoint would do with os.system."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (str(self.path),)


@pytest.mark.parametrize("where", ["top level", "inside model"])
def test_a_pickle_that_would_run_code_is_refused_without_running_it(small_cfg, tmp_path, where):
    marker = tmp_path / "pwned"
    payload = _MakesDirectory(marker)
    obj = payload if where == "top level" else {"model": {"w": payload}, "__author__": "x"}
    path = _write_pickle(tmp_path / "evil.pkl", obj)
    with pytest.raises(UserError, match=r"refers to posix\.mkdir, which a model-zoo checkpoint never does") as e:
        load_checkpoint(build_model(small_cfg), path)
    assert "\n" not in str(e.value)
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # the plain unpickler would have run it
    assert marker.is_dir()


def test_non_numeric_entries_are_refused(small_cfg, tmp_path):
    path = _write_pickle(tmp_path / "obj.pkl", {"model": {"w": np.array([1, "x"], dtype=object)}, "__author__": "x"})
    with pytest.raises(UserError, match="entry 'w' is an array of dtype object, not a numeric array"):
        load_checkpoint(build_model(small_cfg), path)


def test_protocol_2_ordered_dict_checkpoints_load(small_cfg, checkpoint_path, tmp_path):
    # Older model-zoo files: protocol 2 (bytes via _codecs.encode), an OrderedDict of arrays.
    state = collections.OrderedDict(_file_state(checkpoint_path))
    path = tmp_path / "p2.pkl"
    path.write_bytes(pickle.dumps({"model": state, "__author__": "old"}, protocol=2))
    model = load_checkpoint(build_model(small_cfg), path)
    assert torch.equal(
        model.state_dict()["backbone.stem.conv1.weight"], torch.from_numpy(state["backbone.stem.conv1.weight"])
    )


def _trainer_checkpoint(state: dict[str, np.ndarray], path: Path, zipped: bool = True, **extra) -> Path:
    """What Detectron2's trainer saves: torch.save of {"model": tensors, "iteration": ..., ...}."""
    torch.save(
        {"model": {k: torch.from_numpy(v) for k, v in state.items()}, "iteration": 89999, **extra},
        path,
        _use_new_zipfile_serialization=zipped,
    )
    return path


@pytest.mark.parametrize(
    "name, zipped", [("model_final.pth", True), ("named_like_a_pickle.pkl", True), ("before_torch_1_6.pth", False)]
)
def test_torch_checkpoints_load_by_content_whatever_their_suffix(small_cfg, checkpoint_path, tmp_path, name, zipped):
    state = _file_state(checkpoint_path)
    path = _trainer_checkpoint(
        state, tmp_path / name, zipped, optimizer={"state": {0: {"momentum_buffer": torch.ones(2)}}}
    )
    model = load_checkpoint(build_model(small_cfg), path)
    assert torch.equal(
        model.state_dict()["backbone.stem.conv1.weight"], torch.from_numpy(state["backbone.stem.conv1.weight"])
    )
    # and a model-zoo pickle named .pth is read as the pickle it is
    renamed = tmp_path / "zoo.pth"
    renamed.write_bytes(checkpoint_path.read_bytes())
    load_checkpoint(build_model(small_cfg), renamed)


@pytest.mark.parametrize("where", ["top level", "inside model"])
def test_a_torch_file_that_would_run_code_is_refused_without_running_it(small_cfg, tmp_path, where):
    marker = tmp_path / "pwned"
    payload = _MakesDirectory(marker)
    obj = payload if where == "top level" else {"model": {"w": torch.zeros(2)}, "optimizer": payload}
    path = tmp_path / "evil.pth"
    torch.save(obj, path)
    with pytest.raises(UserError, match=r"refers to posix\.mkdir, which a checkpoint of weights never does") as e:
        load_checkpoint(build_model(small_cfg), path)
    assert "\n" not in str(e.value)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the unrestricted loader would have run it
    assert marker.is_dir()


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda p: (p.write_bytes(b"PK\x03\x04 a truncated zip"), p)[1], "not a readable torch file"),
        (lambda p: _saved(p, [torch.zeros(1)]), "holds a list, not a dict"),
        (
            lambda p: _saved(p, {"model": {"w": torch.zeros(2, dtype=torch.complex64)}}),
            "entry 'w' is an array of dtype torch.complex64, not a numeric array",
        ),
        (lambda p: _saved(p, {"state_dict": {}}), "lacks the key(s) 'model' (a dict)"),
    ],
)
def test_unusable_torch_files_are_user_errors(small_cfg, tmp_path, make, expected):
    path = make(tmp_path / "ckpt.pth")
    with pytest.raises(UserError, match=re.escape(expected)) as e:
        load_checkpoint(build_model(small_cfg), path)
    assert "\n" not in str(e.value) and "ckpt.pth" in str(e.value)


def test_right_shapes_with_a_non_numeric_dtype_are_refused(small_cfg, checkpoint_path, tmp_path):
    state = dict(_file_state(checkpoint_path))
    state["backbone.stem.conv1.weight"] = state["backbone.stem.conv1.weight"].astype(str)  # same shape
    path = _write_pickle(tmp_path / "strings.pkl", {"model": state, "__author__": "x"})
    with pytest.raises(UserError, match=r"entry 'backbone\.stem\.conv1\.weight' is an array of dtype <U"):
        load_checkpoint(build_model(small_cfg), path)
