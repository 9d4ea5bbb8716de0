"""A trained checkpoint made here (issue #26): Panoptic-DeepLab trained on the street scenes.

The released model_final_bd324a.pkl cannot be downloaded here, and seeded random weights do not
behave like a trained model (their center heatmap is above threshold on most pixels, so panoptic
quality against fp32 is ill-conditioned). So we train one: the released config's architecture
(Panoptic-DeepLab R-52, Cityscapes, 19 classes) from Detectron2's own seeded initialisation, on
`runtime.scenes.street_panoptic` scenes with their exact ground truth, with Detectron2's own target
generator (center heatmaps, offsets, loss weights; the config's INPUT values) and the model's own
losses (its forward in training mode), Adam with Detectron2's poly schedule, on the CPU.

Deterministic: the scenes of step i are fixed seeds, the initialisation is seeded, the run takes a
fixed number of steps (`--minutes` is a budget converted at STEPS_PER_MINUTE, measured on this
project's 2-core machine, so a slower machine takes longer but makes the same bytes) on a fixed
number of threads, with torch's deterministic algorithms.
BatchNorm: trained in train mode; its running statistics are then recomputed over CALIBRATION_BATCHES
batches with the final weights (cumulative average), so the eval-mode forward sees the statistics
of the weights it runs with, not a moving average over weights that kept changing.

Held-out scenes (seeds below TRAIN_SEED_BASE, never trained on) measure what it learned: mIoU and PQ
of Detectron2's fp32 forward against the ground truth, and the share of pixels whose center heatmap
is above the fusion threshold.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import os
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import converter.detectron2_compat as compat

compat.install()
from detectron2.projects.panoptic_deeplab.target_generator import PanopticDeepLabTargetGenerator  # noqa: E402

from converter.atomic import write_bytes  # noqa: E402
from converter.model import build_model, load_config, with_crop_size  # noqa: E402
from converter.reference import reference_outputs  # noqa: E402
from runtime.images import to_model_input  # noqa: E402
from runtime.postprocess import VOID, FusionParams, fuse  # noqa: E402
from runtime.quality import panoptic_quality  # noqa: E402
from runtime.scenes import CLASSES, street_panoptic  # noqa: E402

TRAIN_SIZE = (128, 256)  # the architecture does not depend on the input size; this is what 2 cores allow
BATCH = 2
THREADS = 2
LEARNING_RATE = 1e-3  # Detectron2's Panoptic-DeepLab recipe: Adam, poly schedule (power 0.9), warmup
POLY_POWER = 0.9
WARMUP_STEPS = 10
STEPS_PER_MINUTE = 20  # ~3 s per step of BATCH scenes at TRAIN_SIZE on 2 idle cores (11 s at load 6)
CALIBRATION_BATCHES = 8
TRAIN_SEED_BASE = 1_000_000  # training scenes use seeds from here up; held-out scenes lie below
INIT_SEED = 0
NUM_CLASSES = 19  # the model's (Cityscapes'); the scenes use CLASSES of them
_PICKLE_PROTOCOL = 4
RECIPE = 1  # the training code's and the scenes' version, for the cache (_recipe_digest)


def steps_for(minutes: float) -> int:
    return max(1, round(minutes * STEPS_PER_MINUTE))


def training_config(size: tuple[int, int] = TRAIN_SIZE):
    """Our Cityscapes R-52 config with its crop at the training size (ASPP pooling global there, as it
    is at 512x1024 for the released config; the weights do not depend on it)."""
    return with_crop_size(load_config(), size)


def _target_generator(cfg) -> PanopticDeepLabTargetGenerator:
    fusion = FusionParams.from_config(cfg)
    return PanopticDeepLabTargetGenerator(
        ignore_label=cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
        thing_ids=set(fusion.thing_ids),
        sigma=cfg.INPUT.GAUSSIAN_SIGMA,
        ignore_stuff_in_offset=cfg.INPUT.IGNORE_STUFF_IN_OFFSET,
        small_instance_area=cfg.INPUT.SMALL_INSTANCE_AREA,
        small_instance_weight=cfg.INPUT.SMALL_INSTANCE_WEIGHT,
        ignore_crowd_in_semantic=cfg.INPUT.IGNORE_CROWD_IN_SEMANTIC,
    )


def training_example(seed: int, size: tuple[int, int], generator: PanopticDeepLabTargetGenerator, divisor: int):
    """One scene as Detectron2's PanopticDeepLabDatasetMapper hands it to the model: the image (CxHxW,
    0-255) and the target generator's fields. Odd seeds are varied scenes, even ones plain."""
    scene = street_panoptic(size[1], size[0], seed, varied=seed % 2 == 1)
    panoptic = scene.panoptic(divisor)
    segments = [
        {"id": int(i), "category_id": int(i) // divisor, "iscrowd": 0} for i in np.unique(panoptic)
    ]  # what Detectron2's Cityscapes panoptic loader lists per segment
    targets = generator(panoptic, segments)
    targets.pop("center_points")
    return {"image": to_model_input(scene.image)[0], **targets}


def train(minutes: float, log: Callable[[str], None] = print, size: tuple[int, int] = TRAIN_SIZE) -> dict:
    """Train for steps_for(minutes) steps; the state dict (numpy arrays), as a model-zoo .pkl holds it."""
    cfg = training_config(size)
    divisor = FusionParams.from_config(cfg).label_divisor
    generator = _target_generator(cfg)
    steps = steps_for(minutes)
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(INIT_SEED)  # Detectron2's own initialisation, seeded; dropout draws follow
            model: Any = build_model(cfg)
            model.train()
            optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
            schedule = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda i: min(1.0, (i + 1) / WARMUP_STEPS) * (1 - i / steps) ** POLY_POWER
            )
            start = time.monotonic()
            for step in range(steps):
                batch = [
                    training_example(TRAIN_SEED_BASE + step * BATCH + j, size, generator, divisor) for j in range(BATCH)
                ]
                losses = model(batch)
                loss = sum(losses.values())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                if step % 10 == 0 or step == steps - 1:
                    parts = " ".join(f"{k} {v.item():.4f}" for k, v in losses.items())
                    log(f"step {step + 1}/{steps} {parts} ({time.monotonic() - start:.0f} s)")
            _calibrate_batchnorm(model, size, generator, divisor, steps)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)
    return {k: v.detach().numpy().copy() for k, v in sorted(model.state_dict().items())}


def _calibrate_batchnorm(model: Any, size, generator, divisor: int, steps: int) -> None:
    """Running statistics of the final weights: the cumulative mean over CALIBRATION_BATCHES batches of
    scenes after the training ones, in train mode without gradients (dropout off: eval elsewhere)."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    model.eval()
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    with torch.no_grad():
        for b in range(CALIBRATION_BATCHES):
            seeds = [TRAIN_SEED_BASE + (steps + b) * BATCH + j for j in range(BATCH)]
            x = torch.stack([training_example(s, size, generator, divisor)["image"] for s in seeds])
            features = model.backbone((x - model.pixel_mean) / model.pixel_std)
            model.sem_seg_head(features)
            model.ins_embed_head(features)
    for bn in bns:
        bn.momentum = 0.1
    model.eval()


def write_trained_checkpoint(path: Path, minutes: float, log: Callable[[str], None] = print) -> Path:
    """Train and write a model-zoo-format .pkl ({"model": arrays, "__author__": ...})."""
    state = train(minutes, log)
    author = f"pdl2ttnn benchmarks/train_scenes.py, {steps_for(minutes)} steps of {BATCH} scenes at {TRAIN_SIZE}"
    write_bytes(Path(path), pickle.dumps({"model": state, "__author__": author}, protocol=_PICKLE_PROTOCOL))
    return Path(path)


def _recipe_digest() -> str:
    """What a cached checkpoint depends on besides its steps: the recipe's values, RECIPE (bump it when
    the training code or the scenes change what they compute) and torch's version."""
    recipe = (RECIPE, TRAIN_SIZE, BATCH, THREADS, LEARNING_RATE, POLY_POWER, WARMUP_STEPS, CALIBRATION_BATCHES)
    return hashlib.sha256(repr((recipe, TRAIN_SEED_BASE, INIT_SEED, torch.__version__)).encode()).hexdigest()[:12]


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pdl2ttnn" / "trained"


def trained_checkpoint(minutes: float, log: Callable[[str], None] = print) -> Path:
    """The checkpoint of a `minutes` training run, trained once per machine and recipe (user cache)."""
    path = cache_dir() / f"scenes_{steps_for(minutes)}steps_{_recipe_digest()}.pkl"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "w") as lock:  # processes asking at once (test workers) train it once
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not path.is_file():
                log(f"training {path.name} ({steps_for(minutes)} steps; trained once, then cached)")
                write_trained_checkpoint(path, minutes, log)
    return path


# --- what it learned ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Learned:
    miou: float  # over the classes the scenes have, pixels pooled over all held-out scenes
    iou: dict[str, float]
    pq: float  # mean over scenes of PQ against the ground truth
    center_above_threshold: float  # share of pixels whose center heatmap exceeds the fusion threshold
    instances: int
    reference_instances: int

    def summary(self) -> str:
        ious = ", ".join(f"{k} {v:.3f}" for k, v in self.iou.items())
        return (
            f"mIoU {self.miou:.4f} ({ious}); PQ {self.pq:.4f}; instances {self.instances} vs "
            f"{self.reference_instances} in the ground truth; center heatmap above threshold on "
            f"{self.center_above_threshold:.2%} of pixels"
        )


def ground_truth_panoptic(scene, fusion: FusionParams) -> np.ndarray:
    """The scene's panoptic map as the model's fusion can express it: stuff classes covering fewer than
    STUFF_AREA pixels are void (Detectron2's post-processing never outputs them)."""
    panoptic = scene.panoptic(fusion.label_divisor)
    for cls in np.unique(scene.semantic):
        mask = scene.semantic == cls
        if int(cls) not in fusion.thing_ids and mask.sum() < fusion.stuff_area:
            panoptic[mask] = VOID
    return panoptic


def evaluate(model: Any, seeds, size: tuple[int, int], fusion: FusionParams) -> Learned:
    """What Detectron2's fp32 forward of `model` (built for `size`) gets right on held-out scenes."""
    classes = sorted(CLASSES)
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)  # ground truth x prediction
    pqs, above, found, truth = [], [], 0, 0
    for seed in seeds:
        scene = street_panoptic(size[1], size[0], seed, varied=seed % 2 == 1)
        outputs = reference_outputs(model, "panoptic_deeplab", to_model_input(scene.image))
        seg = fuse(outputs, fusion)
        assert seg.panoptic is not None  # a Panoptic-DeepLab model's fusion
        np.add.at(confusion, (scene.semantic.ravel(), seg.semantic.ravel()), 1)
        pq, _, _ = panoptic_quality(
            seg.panoptic, ground_truth_panoptic(scene, fusion), fusion.thing_ids, NUM_CLASSES, fusion.label_divisor
        )
        pqs.append(pq)
        above.append(float((outputs["center"] > fusion.center_threshold).float().mean()))
        found += len(seg.instances)
        truth += int(scene.instance.max())
    inter = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - inter
    iou = {CLASSES[c]: float(inter[c] / union[c]) for c in classes if union[c] > 0}
    return Learned(
        miou=float(np.mean(list(iou.values()))),
        iou=iou,
        pq=float(np.mean(pqs)) if not any(math.isnan(p) for p in pqs) else math.nan,
        center_above_threshold=float(np.mean(above)),
        instances=found,
        reference_instances=truth,
    )
