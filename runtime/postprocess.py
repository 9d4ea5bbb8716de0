"""Panoptic fusion of the model's head outputs, done by Detectron2's own post-processing.

`fuse` calls `detectron2.projects.panoptic_deeplab.post_processing.get_panoptic_segmentation`
exactly as detectron2 0.6's `PanopticDeepLab.forward` does at inference: semantic labels are the
argmax of the logits, the center heatmap and offsets go in raw, thing ids and label divisor come
from the training dataset's metadata, the thresholds from MODEL.PANOPTIC_DEEPLAB, void label -1.
The instance list (class, area, score, box) follows the same forward's PREDICT_INSTANCES branch.
One step is ours, before Detectron2's: `break_center_ties` (why there).
Head outputs are expected at input resolution (Detectron2's `sem_seg_postprocess` is then the
identity), as `converter.reference.reference_outputs` and the generated TTNN code return them.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

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
    center_stride: int  # the center heatmap is a bilinear upsample by this factor (align_corners=False)
    # RGB per class id, for pictures: the training dataset's colours (Cityscapes' when it has none)
    class_colors: tuple[tuple[int, int, int], ...] = ()

    @classmethod
    def from_config(cls, cfg) -> FusionParams:
        """The values PanopticDeepLab.__init__ reads from a Detectron2 config. A semantic-only model
        (SemanticSegmentor) is fused to its argmax alone, which reads none of them."""
        meta = MetadataCatalog.get(cfg.DATASETS.TRAIN[0])
        colors = tuple((int(c[0]), int(c[1]), int(c[2])) for c in meta.get("stuff_colors", ()))
        if cfg.MODEL.META_ARCHITECTURE != "PanopticDeepLab":
            return cls(
                thing_ids=(),
                label_divisor=1,
                stuff_area=0,
                center_threshold=0.0,
                nms_kernel=1,
                top_k=0,
                center_stride=1,
                class_colors=colors,
            )
        pdl = cfg.MODEL.PANOPTIC_DEEPLAB
        return cls(
            thing_ids=tuple(sorted(meta.thing_dataset_id_to_contiguous_id.values())),
            label_divisor=int(meta.label_divisor),
            stuff_area=int(pdl.STUFF_AREA),
            center_threshold=float(pdl.CENTER_THRESHOLD),
            nms_kernel=int(pdl.NMS_KERNEL),
            top_k=int(pdl.TOP_K_INSTANCE),
            center_stride=int(cfg.MODEL.INS_EMBED_HEAD.COMMON_STRIDE),
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
    center = break_center_ties(_single(outputs, "center").float(), params)
    offset = _single(outputs, "offset").float()
    with torch.no_grad(), warnings.catch_warnings():
        # Detectron2 0.6 calls torch.meshgrid without `indexing` (its result is the same: "ij").
        warnings.filterwarnings("ignore", message="torch.meshgrid: in an upcoming release", category=UserWarning)
        panoptic, _ = get_panoptic_segmentation(
            semantic,
            center,
            offset,
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


def break_center_ties(center: torch.Tensor, params: FusionParams) -> torch.Tensor:
    """`center` (1xHxW) with exact ties among peak candidates broken as fp32 would break them.

    Detectron2 keeps every pixel above the threshold that equals the maximum of its NMS window. In fp32
    a smooth peak has one such pixel; a heatmap rounded to bfloat16 (ttnn's bilinear upsample writes
    bfloat16) has plateaus of equal values around it, and every plateau pixel passes, so one object gets
    several centers and is split (issue #15: 160 peaks where fp32 has 104). Candidates within one window
    of each other are necessarily equal (each is the other's window maximum), so among them we keep the
    one fp32 would rank highest: the largest 3x3 mean of the heatmap (the side of the plateau the smooth
    peak leans to), then the first in raster order. The only exact ties fp32 has are structural and are
    kept: the bilinear upsample by s copies the first and last s/2 rows and columns from the border
    (source coordinates clamped), so those pixels share one rank and Detectron2 keeps them as it does in
    fp32. The losers are lowered by one float32 step, below their window's winner and above any other
    value, so Detectron2's own peak test then sees exactly the winners."""
    heat = F.threshold(center, params.center_threshold, -1.0)[None]
    pad = (params.nms_kernel - 1) // 2
    candidate = (heat == F.max_pool2d(heat, params.nms_kernel, stride=1, padding=pad)) & (heat > 0)
    _, h, w = center.shape
    smooth = F.avg_pool2d(center[None].double(), 3, stride=1, padding=1, count_include_pad=False)
    order = np.lexsort((-np.arange(h * w), smooth.flatten().numpy()))  # ascending: last is best
    rank = torch.empty(h * w, dtype=torch.float64)
    rank[torch.from_numpy(order)] = torch.arange(h * w, dtype=torch.float64)
    rows, cols = _border_copies(h, params.center_stride), _border_copies(w, params.center_stride)
    rank = rank.reshape(h, w)[rows][:, cols][None, None]
    key = torch.where(candidate, rank, torch.tensor(-torch.inf, dtype=torch.float64))
    losers = (candidate & (key != F.max_pool2d(key, params.nms_kernel, stride=1, padding=pad)))[0]
    out = center.clone()
    out[losers] = torch.nextafter(out[losers], torch.tensor(-torch.inf))
    return out


def _border_copies(n: int, stride: int) -> torch.Tensor:
    """Index of the pixel each of n upsampled rows (or columns) is an exact copy of at the border."""
    idx = torch.arange(n)
    idx[: stride // 2] = 0
    idx[n - stride // 2 :] = n - 1
    return idx


def _single(outputs: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
    """outputs[key] without its batch dimension (the demo runs batch 1)."""
    t = outputs[key].detach().cpu()
    if t.dim() != 4 or t.shape[0] != 1:
        raise ValueError(f"head output {key!r} must be 1xCxHxW, got {tuple(t.shape)}")
    return t[0]


def _instances(
    panoptic: torch.Tensor, probs: torch.Tensor, center: torch.Tensor, params: FusionParams
) -> tuple[Instance, ...]:
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
