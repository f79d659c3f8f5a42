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
- frame and clip plane cross-entropies ignore label -1 (unknown);
- ``plane_class_weights`` (optional, one per plane label) weight the *per-frame* plane
  cross-entropy, so a rare label (``non_standard`` runs are a few percent of frames) is not
  drowned by the common ones; :func:`inverse_frequency_weights` derives them from label counts.
  The clip-plane cross-entropy stays unweighted: its labels are clips, not frames, and follow
  another distribution (a clip's plane is a standard plane; frame frequencies say nothing about it).

A part with no valid target in the batch contributes an exact zero (with a gradient path), never
NaN. Unannotated frames (``annotated`` False) add nothing to the segmentation and presence parts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Real
from typing import cast

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss
from torch import nn

WEIGHT_NAMES = ("seg_dice_weight", "seg_ce_weight", "presence_weight", "plane_weight", "clip_plane_weight")


def _zero(like: torch.Tensor) -> torch.Tensor:
    """A zero that keeps ``like`` in the graph (DDP wants every parameter to get a gradient)."""
    return like.sum() * 0.0


def _masked_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean cross-entropy over targets != -1; ``logits (N, P)``, ``target (N,)``; 0 if none.

    With ``weight (P,)`` it is the weighted mean (PyTorch's convention: divided by the summed
    weights of the targets), so its scale stays that of the unweighted loss.
    """
    valid = target >= 0
    if not bool(valid.any()):
        return _zero(logits)
    return F.cross_entropy(logits[valid], target[valid], weight=weight)


def inverse_frequency_weights(counts: Sequence[int], power: float = 0.5, max_ratio: float = 10.0) -> list[float]:
    """Class weights from per-class counts: ``(n_max / n_c) ** power``, capped, mean 1.

    ``power=0.5`` (square-root inverse frequency) rather than full inverse frequency: full
    inverse weighting makes every class count equally, which, for a class with a few dozen frames,
    multiplies the gradient noise of those frames and pushes the decision boundary into the common
    classes (which hold most frames, so frame accuracy suffers); the square root halves the
    imbalance in log terms. ``max_ratio`` caps the largest weight relative to the commonest class,
    so a label seen a handful of times cannot dominate the loss. Weights are normalised to mean 1
    over the classes present; a class with no frames gets 1.0 (it has no training target, so its
    weight only affects validation losses). All counts 0 gives all ones (unweighted).
    """
    if power < 0 or not math.isfinite(power):
        raise ValueError(f"power must be finite and >= 0; got {power!r}")
    if max_ratio < 1 or not math.isfinite(max_ratio):
        raise ValueError(f"max_ratio must be finite and >= 1; got {max_ratio!r}")
    counts = [int(c) for c in counts]
    if not counts or any(c < 0 for c in counts):
        raise ValueError(f"counts must be one non-negative count per class; got {counts!r}")
    present = [c for c in counts if c > 0]
    if not present:
        return [1.0] * len(counts)
    n_max = max(present)
    raw = [min((n_max / c) ** power, max_ratio) if c > 0 else None for c in counts]
    mean = sum(w for w in raw if w is not None) / len(present)
    return [1.0 if w is None else w / mean for w in raw]


def validate_class_weights(weights) -> tuple[float, ...] | None:
    """``None`` or a tuple of positive finite floats; a clear ``ValueError`` otherwise."""
    if weights is None:
        return None
    try:
        if isinstance(weights, (str, bytes, Mapping)):
            raise TypeError
        values = list(weights)
    except TypeError:
        raise ValueError(
            f"plane_class_weights must be a sequence of numbers, one per plane label; got {weights!r}"
        ) from None
    if not values:
        raise ValueError("plane_class_weights is empty; give one weight per plane label, or None")
    for i, w in enumerate(values):
        if isinstance(w, bool) or not isinstance(w, Real):
            raise ValueError(f"plane_class_weights[{i}] must be a number; got {w!r}")
        if not math.isfinite(w) or w <= 0:
            raise ValueError(f"plane_class_weights[{i}] must be finite and > 0; got {w!r}")
    return tuple(float(w) for w in values)


class MultitaskLoss(nn.Module):
    """Weighted sum of the UltraMN losses; ``forward(outputs, batch) -> (total, parts)``.

    ``outputs``: the model's dict (``seg (B,1,T,H,W)``, ``presence (B,T)``,
    ``plane_frame (B,T,P)``, ``plane_clip (B,P)`` logits). ``batch``: ``masks (B,1,T,H,W)`` float
    in {0, 1}, ``plane (B,T)`` long, ``clip_plane (B,)`` long (-1 = unknown, ignored),
    ``annotated (B,T)`` bool. ``parts`` holds the unweighted parts as floats plus ``total``.
    A part whose weight is 0 is not computed and reported as 0.0.

    ``plane_class_weights``: None (every label alike) or one positive weight per plane label
    (``P`` of them; checked against the logits in ``forward``) for the per-frame plane
    cross-entropy only (see the module docstring).
    """

    plane_class_weights: torch.Tensor | None  # a buffer: follows the module to its device

    def __init__(
        self,
        seg_dice_weight: float = 1.0,
        seg_ce_weight: float = 1.0,
        presence_weight: float = 0.5,
        plane_weight: float = 1.0,
        clip_plane_weight: float = 0.5,
        plane_class_weights: Sequence[float] | None = None,
    ):
        super().__init__()
        weights = dict(
            zip(WEIGHT_NAMES, (seg_dice_weight, seg_ce_weight, presence_weight, plane_weight, clip_plane_weight))
        )
        for name, value in weights.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a number; got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be finite and >= 0; got {value!r}")
        if not any(weights.values()):
            raise ValueError(
                f"all loss weights are 0: nothing would be learned; set at least one of {', '.join(WEIGHT_NAMES)} > 0"
            )
        self.weights = {name: float(value) for name, value in weights.items()}
        class_weights = validate_class_weights(plane_class_weights)
        # a buffer, so loss.to(device) moves it; not persistent: it is a constructor argument
        self.register_buffer(
            "plane_class_weights",
            None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32),
            persistent=False,
        )
        # per-frame Dice (batch=False): one frame's large nerve cannot hide another's miss
        self.dice = DiceLoss(sigmoid=True, reduction="none", batch=False)

    def extra_repr(self) -> str:
        text = ", ".join(f"{k}={v}" for k, v in self.weights.items())
        if self.plane_class_weights is not None:
            text += f", plane_class_weights={[round(w, 4) for w in self.plane_class_weights.tolist()]}"
        return text

    def forward(
        self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        # float32 whatever autocast produced: a float16 Dice sum over a 256x256 frame overflows
        seg = outputs["seg"].float()
        if seg.ndim != 5 or seg.shape[1] != 1:
            raise ValueError(f"outputs['seg'] must be (B, 1, T, H, W); got {tuple(seg.shape)}")
        masks = batch["masks"].to(seg.dtype)
        if masks.shape != seg.shape:
            raise ValueError(f"batch['masks'] {tuple(masks.shape)} does not match outputs['seg'] {tuple(seg.shape)}")
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
            parts["seg_dice"] = self.dice(seg_f[keep], mask_f[keep]).mean() if bool(keep.any()) else _zero(seg)
        if wt["seg_ce_weight"]:
            parts["seg_ce"] = (
                F.binary_cross_entropy_with_logits(seg_f[annotated], mask_f[annotated])
                if bool(annotated.any())
                else _zero(seg)
            )
        if wt["presence_weight"]:
            presence = outputs["presence"].float().reshape(b * t)
            parts["presence"] = (
                F.binary_cross_entropy_with_logits(presence[annotated], present[annotated].to(presence.dtype))
                if bool(annotated.any())
                else _zero(presence)
            )
        if wt["plane_weight"]:
            logits = outputs["plane_frame"].float()
            class_weights = self.plane_class_weights
            if class_weights is not None:
                if class_weights.numel() != logits.shape[-1]:
                    raise ValueError(
                        f"plane_class_weights has {class_weights.numel()} weights but "
                        f"outputs['plane_frame'] has {logits.shape[-1]} plane labels"
                    )
                class_weights = class_weights.to(logits.device)
            parts["plane"] = _masked_cross_entropy(
                logits.reshape(b * t, logits.shape[-1]), batch["plane"].reshape(b * t).long(), class_weights
            )
        if wt["clip_plane_weight"]:
            parts["clip_plane"] = _masked_cross_entropy(
                outputs["plane_clip"].float(), batch["clip_plane"].reshape(b).long()
            )

        total = cast(torch.Tensor, sum(wt[f"{name}_weight"] * value for name, value in parts.items()))
        # outputs whose every part is switched off still join the graph (as exact zeros), so
        # DistributedDataParallel finds a gradient for every parameter
        used = {
            "seg": ("seg_dice", "seg_ce"),
            "presence": ("presence",),
            "plane_frame": ("plane",),
            "plane_clip": ("clip_plane",),
        }
        for key, names in used.items():
            if not any(name in parts for name in names) and key in outputs:
                total = total + _zero(outputs[key].float())
        report = {name: 0.0 for name in ("seg_dice", "seg_ce", "presence", "plane", "clip_plane")}
        report.update({name: float(value.detach()) for name, value in parts.items()})
        report["total"] = float(total.detach())
        return total, report
