"""What a user sees, compared: the TTNN run's result against Detectron2's fp32 result on one image.

PCC per head alone misses what matters in the picture (issue #15: every head's PCC passed while the
TTNN output had almost twice the instances). `compare` measures, for one image:
- per head: PCC, gain (std ratio), bias (mean difference over the reference std), max absolute error;
- semantic argmax agreement over all pixels, and over confident pixels: those where the reference's
  top-2 logit margin is at least CONFIDENT_MARGIN x the std of all its logits (a pixel whose two best
  classes are nearly tied flips under any rounding, and the user cannot tell either answer apart);
- panoptic quality (PQ, SQ, RQ) of the TTNN panoptic map with Detectron2's fp32 panoptic map as
  ground truth, both fused by Detectron2's own post-processing (runtime/postprocess.py), computed by
  torchmetrics' PanopticQuality (panopticapi's definition: segments match at IoU > 0.5, PQ averaged
  over the classes present in either map);
- the instance-count ratio (TTNN over reference).
`Quality.violations` checks them against the accuracy bounds below (the issue's acceptance), the
one place they are defined; pdl-convert --verify, pdl-demo and benchmarks/quality.py all use it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import torch

from runtime.postprocess import FusionParams, Segmentation, fuse

CONFIDENT_MARGIN = 0.2  # x the reference logits' std: the "decided pixel" rule of the accuracy policy

# Accuracy bounds the default precision must keep (issue #15's acceptance).
PCC_FLOOR = {"sem_seg": 0.999, "center": 0.995, "offset": 0.995}
PQ_FLOOR = 0.90
INSTANCE_RATIO_TOLERANCE = 0.10  # instance count within +-10% of the reference's
SEMANTIC_GAIN_TOLERANCE = 0.03  # semantic logit std within +-3% of the reference's
BIAS_LIMIT = {"center": 0.02, "offset": 0.02}  # |mean difference| / reference std


@dataclass(frozen=True)
class HeadStats:
    pcc: float
    gain: float  # std(out) / std(ref)
    bias: float  # (mean(out) - mean(ref)) / std(ref)
    max_abs_error: float


@dataclass(frozen=True)
class Quality:
    heads: dict[str, HeadStats]
    semantic_agreement: float  # fraction of all pixels whose class (argmax) is the reference's
    confident_agreement: float  # the same over the confident pixels (module docstring)
    confident_fraction: float  # fraction of pixels that are confident
    # Panoptic models only (None for DeepLabV3+):
    pq: float | None = None
    sq: float | None = None
    rq: float | None = None
    instances: int | None = None
    reference_instances: int | None = None

    @property
    def instance_ratio(self) -> float | None:
        if self.instances is None or self.reference_instances is None:
            return None
        if self.reference_instances == 0:
            return 1.0 if self.instances == 0 else math.inf
        return self.instances / self.reference_instances

    def violations(self) -> list[str]:
        """One line per accuracy bound this result breaks (empty: all kept). NaN breaks every bound."""
        out = []
        for head, floor in PCC_FLOOR.items():
            if head in self.heads and not self.heads[head].pcc >= floor:
                out.append(f"{head} PCC {self.heads[head].pcc:.5f} < {floor}")
        gain = self.heads["sem_seg"].gain
        if not _within_one(gain, SEMANTIC_GAIN_TOLERANCE):
            out.append(f"sem_seg gain {gain:.4f} outside 1 +- {SEMANTIC_GAIN_TOLERANCE}")
        for head, limit in BIAS_LIMIT.items():
            if head in self.heads and not abs(self.heads[head].bias) < limit:
                out.append(f"{head} bias {self.heads[head].bias:+.4f} std, |bias| >= {limit}")
        if self.pq is not None and not self.pq >= PQ_FLOOR:
            out.append(f"PQ {self.pq:.4f} < {PQ_FLOOR}")
        ratio = self.instance_ratio
        if ratio is not None and not _within_one(ratio, INSTANCE_RATIO_TOLERANCE):
            out.append(
                f"instances {self.instances} vs {self.reference_instances} "
                f"(ratio {ratio:.3f}, outside 1 +- {INSTANCE_RATIO_TOLERANCE})"
            )
        return out

    def summary(self) -> str:
        """One line: the result metrics, then each head's."""
        parts = []
        if self.pq is not None:
            parts.append(
                f"PQ {self.pq:.4f} (SQ {self.sq:.4f}, RQ {self.rq:.4f}), "
                f"instances {self.instances}/{self.reference_instances}"
            )
        parts.append(
            f"semantic agreement {self.semantic_agreement:.2%} "
            f"(confident {self.confident_agreement:.2%} of {self.confident_fraction:.0%})"
        )
        for head, s in self.heads.items():
            parts.append(f"{head} gain {s.gain:.4f} bias {s.bias:+.4f} max|err| {s.max_abs_error:.3g}")
        return ", ".join(parts)

    def as_dict(self) -> dict:
        """JSON-ready, rounded so that reruns give the same bytes across float noise in the last digits."""

        def r(v):  # NaN or inf (nothing to compare) is not JSON: null
            return round(float(v), 6) if v is not None and math.isfinite(v) else None

        return {
            "pq": r(self.pq),
            "sq": r(self.sq),
            "rq": r(self.rq),
            "instances": self.instances,
            "reference_instances": self.reference_instances,
            "instance_ratio": r(self.instance_ratio),
            "semantic_agreement": r(self.semantic_agreement),
            "confident_agreement": r(self.confident_agreement),
            "confident_fraction": r(self.confident_fraction),
            "heads": {h: {k: r(v) for k, v in vars(s).items()} for h, s in self.heads.items()},
            "violations": self.violations(),
        }


def _within_one(x: float, tolerance: float) -> bool:
    """|x - 1| <= tolerance, with slack for float rounding so that exactly the bound passes (110/100 - 1
    is 0.10000000000000009)."""
    return abs(x - 1.0) <= tolerance + 1e-12


def pcc(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two tensors, flattened, in float64."""
    return torch.corrcoef(torch.stack([a.flatten().double(), b.flatten().double()]))[0, 1].item()


def head_stats(out: torch.Tensor, ref: torch.Tensor) -> HeadStats:
    out, ref = out.detach().double(), ref.detach().double()
    std = ref.std().item()
    return HeadStats(
        pcc=pcc(out, ref),
        gain=out.std().item() / std,
        bias=(out.mean() - ref.mean()).item() / std,
        max_abs_error=(out - ref).abs().max().item(),
    )


def panoptic_quality(
    pred: np.ndarray, target: np.ndarray, thing_ids, num_classes: int, label_divisor: int
) -> tuple[float, float, float]:
    """(PQ, SQ, RQ) of panoptic id map `pred` against `target` (HxW, id = class * label_divisor +
    instance, negative = void). Void pixels are ignored as panopticapi does; NaN when neither map has
    a segment of any class."""
    from torchmetrics.detection import PanopticQuality

    things = {int(c) for c in thing_ids}
    metric = PanopticQuality(
        things=things, stuffs=set(range(num_classes)) - things, allow_unknown_preds_category=True, return_sq_and_rq=True
    )
    pq, sq, rq = metric(_category_instance(pred, label_divisor), _category_instance(target, label_divisor)).tolist()
    return pq, sq, rq


def _category_instance(panoptic: np.ndarray, label_divisor: int) -> torch.Tensor:
    """HxW panoptic ids -> 1xHxWx2 (category, instance), torchmetrics' layout; void stays a negative
    category, which the metric treats as unlabelled."""
    ids = torch.as_tensor(np.asarray(panoptic), dtype=torch.int64)
    return torch.stack([torch.div(ids, label_divisor, rounding_mode="floor"), ids % label_divisor], dim=-1)[None]


def compare(
    outputs: Mapping[str, torch.Tensor],
    reference: Mapping[str, torch.Tensor],
    fusion: FusionParams,
    *,
    segmentations: tuple[Segmentation, Segmentation] | None = None,
) -> Quality:
    """Quality of head `outputs` against `reference` ({"sem_seg", ["center", "offset"]}: 1xCxHxW), both
    fused with `fusion`; pass `segmentations` (of outputs, of reference) when they were fused already."""
    got, ref = segmentations or (fuse(outputs, fusion), fuse(reference, fusion))
    heads = {h: head_stats(outputs[h], reference[h]) for h in reference}
    logits = reference["sem_seg"].detach().float()
    top2 = logits.topk(2, dim=1).values
    confident = ((top2[:, 0] - top2[:, 1]) >= CONFIDENT_MARGIN * logits.std())[0].numpy()
    agree = got.semantic == ref.semantic
    quality = Quality(
        heads=heads,
        semantic_agreement=float(agree.mean()),
        confident_agreement=float(agree[confident].mean()) if confident.any() else math.nan,
        confident_fraction=float(confident.mean()),
    )
    if ref.panoptic is None or got.panoptic is None:
        return quality
    pq, sq, rq = panoptic_quality(got.panoptic, ref.panoptic, fusion.thing_ids, logits.shape[1], fusion.label_divisor)
    return replace(quality, pq=pq, sq=sq, rq=rq, instances=len(got.instances), reference_instances=len(ref.instances))
