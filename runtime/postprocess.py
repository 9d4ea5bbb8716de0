"""Panoptic fusion of the model's head outputs, done by Detectron2's own post-processing.

`fuse` calls `detectron2.projects.panoptic_deeplab.post_processing.get_panoptic_segmentation`
exactly as detectron2 0.6's `PanopticDeepLab.forward` does at inference: semantic labels are the
argmax of the logits, the center heatmap and offsets go in raw, thing ids and label divisor come
from the training dataset's metadata, the thresholds from MODEL.PANOPTIC_DEEPLAB, void label -1.
The instance list (class, area, score, box) follows the same forward's PREDICT_INSTANCES branch.
Head outputs are expected at input resolution (Detectron2's `sem_seg_postprocess` is then the
identity), as `converter.reference.reference_outputs` and the generated TTNN code return them.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

import converter.detectron2_compat as compat

compat.install()
from detectron2.data import MetadataCatalog  # noqa: E402  (importing it registers the builtin datasets)
from detectron2.projects.panoptic_deeplab.post_processing import get_panoptic_segmentation  # noqa: E402

VOID = -1  # PanopticDeepLab.forward's void_label: pixels no segment claims


@dataclass(frozen=True)
class FusionParams:
    thing_ids: tuple[int, ...]  # contiguous (train) ids of thing classes
    label_divisor: int  # panoptic id = class id * label_divisor + instance number
    stuff_area: int  # stuff regions smaller than this (pixels) become void
    center_threshold: float
    nms_kernel: int
    top_k: int
    # RGB per class id, for pictures: the training dataset's colours (Cityscapes' when it has none)
    class_colors: tuple[tuple[int, int, int], ...] = ()

    @classmethod
    def from_config(cls, cfg) -> FusionParams:
        """The values PanopticDeepLab.__init__ reads from a Detectron2 config. A semantic-only model
        (SemanticSegmentor) is fused to its argmax alone, which reads none of them."""
        meta = MetadataCatalog.get(cfg.DATASETS.TRAIN[0])
        colors = tuple(tuple(int(v) for v in c) for c in meta.get("stuff_colors", ()))
        if cfg.MODEL.META_ARCHITECTURE != "PanopticDeepLab":
            return cls(thing_ids=(), label_divisor=1, stuff_area=0, center_threshold=0.0, nms_kernel=1, top_k=0,
                       class_colors=colors)
        pdl = cfg.MODEL.PANOPTIC_DEEPLAB
        return cls(
            thing_ids=tuple(sorted(meta.thing_dataset_id_to_contiguous_id.values())),
            label_divisor=int(meta.label_divisor),
            stuff_area=int(pdl.STUFF_AREA),
            center_threshold=float(pdl.CENTER_THRESHOLD),
            nms_kernel=int(pdl.NMS_KERNEL),
            top_k=int(pdl.TOP_K_INSTANCE),
            class_colors=colors,
        )


@dataclass(frozen=True)
class Instance:
    panoptic_id: int
    class_id: int
    area: int  # pixels
    score: float  # mean semantic probability of its class over the mask x center heatmap at its centroid
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, end-exclusive


@dataclass(frozen=True)
class Segmentation:
    semantic: np.ndarray  # HxW int64 class ids
    panoptic: np.ndarray | None  # HxW int64 panoptic ids (VOID = unclaimed); None for semantic-only models
    instances: tuple[Instance, ...]  # thing instances in panoptic-id order
    label_divisor: int


def fuse(outputs: Mapping[str, torch.Tensor], params: FusionParams) -> Segmentation:
    """Head outputs {"sem_seg": 1xCxHxW logits, "center": 1x1xHxW, "offset": 1x2xHxW} -> segmentation.
    Without "center"/"offset" (DeepLabV3+), only the semantic map is produced."""
    logits = _single(outputs, "sem_seg").float()
    semantic = logits.argmax(dim=0, keepdim=True)
    if "center" not in outputs:
        return Segmentation(semantic[0].numpy(), None, (), params.label_divisor)
    center = _single(outputs, "center").float()
    offset = _single(outputs, "offset").float()
    with torch.no_grad(), warnings.catch_warnings():
        # Detectron2 0.6 calls torch.meshgrid without `indexing` (its result is the same: "ij").
        warnings.filterwarnings("ignore", message="torch.meshgrid: in an upcoming release", category=UserWarning)
        panoptic, _ = get_panoptic_segmentation(
            semantic, center, offset,
            thing_ids=params.thing_ids,
            label_divisor=params.label_divisor,
            stuff_area=params.stuff_area,
            void_label=VOID,
            threshold=params.center_threshold,
            nms_kernel=params.nms_kernel,
            top_k=params.top_k,
        )
    panoptic = panoptic[0]
    instances = _instances(panoptic, torch.softmax(logits, dim=0), center[0], params)
    return Segmentation(semantic[0].numpy(), panoptic.numpy(), instances, params.label_divisor)


def _single(outputs: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
    """outputs[key] without its batch dimension (the demo runs batch 1)."""
    t = outputs[key].detach().cpu()
    if t.dim() != 4 or t.shape[0] != 1:
        raise ValueError(f"head output {key!r} must be 1xCxHxW, got {tuple(t.shape)}")
    return t[0]


def _instances(panoptic: torch.Tensor, probs: torch.Tensor, center: torch.Tensor,
               params: FusionParams) -> tuple[Instance, ...]:
    found = []
    for pid in torch.unique(panoptic).tolist():
        class_id = pid // params.label_divisor
        if pid == VOID or class_id not in params.thing_ids:
            continue
        mask = panoptic == pid
        ys, xs = torch.nonzero(mask, as_tuple=True)
        centroid = int(ys.float().mean().item()), int(xs.float().mean().item())
        score = probs[class_id][mask].mean() * center[centroid]
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        found.append(Instance(pid, class_id, int(mask.sum()), float(score), box))
    return tuple(found)
