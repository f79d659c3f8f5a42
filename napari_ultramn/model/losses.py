"""Multitask loss for UltraMNet: segmentation (Dice + BCE), nerve presence, frame and clip plane.

Frames without a nerve are the known pitfall of ultrasound nerve segmentation: a soft Dice on an
empty ground-truth frame is either undefined (0/0 -> NaN) or, with the usual smoothing, a
reward for predicting nothing anywhere and a flat maximal penalty for any false positive, whose
gradient is useless. So here:

- soft Dice (MONAI ``DiceLoss``, per frame) runs only over annotated frames *where the nerve is
  present*;
- pixel BCE runs over every annotated frame, empty ones included, so false positives on empty
  frames are penalised pixel by pixel;
- the presence head is taught absence explicitly (BCE on "mask has any pixel", annotated frames);
- frame and clip plane cross-entropies ignore label -1 (unknown).

A part with no valid target in the batch contributes an exact zero (with a gradient path), never
NaN. Unannotated frames (``annotated`` False) add nothing to the segmentation and presence parts.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss
from torch import nn

WEIGHT_NAMES = ("seg_dice_weight", "seg_ce_weight", "presence_weight", "plane_weight",
                "clip_plane_weight")


def _zero(like: torch.Tensor) -> torch.Tensor:
    """A zero that keeps ``like`` in the graph (DDP wants every parameter to get a gradient)."""
    return like.sum() * 0.0


def _masked_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over targets != -1; ``logits (N, P)``, ``target (N,)``; 0 if none."""
    valid = target >= 0
    if not bool(valid.any()):
        return _zero(logits)
    return F.cross_entropy(logits[valid], target[valid])


class MultitaskLoss(nn.Module):
    """Weighted sum of the UltraMN losses; ``forward(outputs, batch) -> (total, parts)``.

    ``outputs``: the model's dict (``seg (B,1,T,H,W)``, ``presence (B,T)``,
    ``plane_frame (B,T,P)``, ``plane_clip (B,P)`` logits). ``batch``: ``masks (B,1,T,H,W)`` float
    in {0, 1}, ``plane (B,T)`` long, ``clip_plane (B,)`` long (-1 = unknown, ignored),
    ``annotated (B,T)`` bool. ``parts`` holds the unweighted parts as floats plus ``total``.
    A part whose weight is 0 is not computed and reported as 0.0.
    """

    def __init__(self, seg_dice_weight: float = 1.0, seg_ce_weight: float = 1.0,
                 presence_weight: float = 0.5, plane_weight: float = 1.0,
                 clip_plane_weight: float = 0.5):
        super().__init__()
        weights = dict(zip(WEIGHT_NAMES, (seg_dice_weight, seg_ce_weight, presence_weight,
                                          plane_weight, clip_plane_weight)))
        for name, value in weights.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a number; got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be finite and >= 0; got {value!r}")
        if not any(weights.values()):
            raise ValueError("all loss weights are 0: nothing would be learned; set at least "
                             f"one of {', '.join(WEIGHT_NAMES)} > 0")
        self.weights = {name: float(value) for name, value in weights.items()}
        # per-frame Dice (batch=False): one frame's large nerve cannot hide another's miss
        self.dice = DiceLoss(sigmoid=True, reduction="none", batch=False)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.weights.items())

    def forward(self, outputs: dict[str, torch.Tensor],
                batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        # float32 whatever autocast produced: a float16 Dice sum over a 256x256 frame overflows
        seg = outputs["seg"].float()
        if seg.ndim != 5 or seg.shape[1] != 1:
            raise ValueError(f"outputs['seg'] must be (B, 1, T, H, W); got {tuple(seg.shape)}")
        masks = batch["masks"].to(seg.dtype)
        if masks.shape != seg.shape:
            raise ValueError(f"batch['masks'] {tuple(masks.shape)} does not match "
                             f"outputs['seg'] {tuple(seg.shape)}")
        b, _, t, h, w = seg.shape
        annotated = batch["annotated"].to(torch.bool).reshape(b * t)
        # frames layout (B*T, 1, H, W): the Dice, BCE and presence parts are all per frame
        seg_f = seg.transpose(1, 2).reshape(b * t, 1, h, w)
        mask_f = masks.transpose(1, 2).reshape(b * t, 1, h, w)
        present = mask_f.flatten(1).amax(dim=1) > 0.5

        parts: dict[str, torch.Tensor] = {}
        wt = self.weights
        if wt["seg_dice_weight"]:
            keep = annotated & present
            parts["seg_dice"] = (self.dice(seg_f[keep], mask_f[keep]).mean() if bool(keep.any())
                                 else _zero(seg))
        if wt["seg_ce_weight"]:
            parts["seg_ce"] = (F.binary_cross_entropy_with_logits(seg_f[annotated],
                                                                  mask_f[annotated])
                               if bool(annotated.any()) else _zero(seg))
        if wt["presence_weight"]:
            presence = outputs["presence"].float().reshape(b * t)
            parts["presence"] = (F.binary_cross_entropy_with_logits(
                presence[annotated], present[annotated].to(presence.dtype))
                if bool(annotated.any()) else _zero(presence))
        if wt["plane_weight"]:
            logits = outputs["plane_frame"].float()
            parts["plane"] = _masked_cross_entropy(logits.reshape(b * t, logits.shape[-1]),
                                                   batch["plane"].reshape(b * t).long())
        if wt["clip_plane_weight"]:
            parts["clip_plane"] = _masked_cross_entropy(outputs["plane_clip"].float(),
                                                        batch["clip_plane"].reshape(b).long())

        total = sum(wt[f"{name}_weight"] * value for name, value in parts.items())
        # outputs whose every part is switched off still join the graph (as exact zeros), so
        # DistributedDataParallel finds a gradient for every parameter
        used = {"seg": ("seg_dice", "seg_ce"), "presence": ("presence",),
                "plane_frame": ("plane",), "plane_clip": ("clip_plane",)}
        for key, names in used.items():
            if not any(name in parts for name in names) and key in outputs:
                total = total + _zero(outputs[key].float())
        report = {name: 0.0 for name in ("seg_dice", "seg_ce", "presence", "plane", "clip_plane")}
        report.update({name: float(value.detach()) for name, value in parts.items()})
        report["total"] = float(total.detach())
        return total, report
