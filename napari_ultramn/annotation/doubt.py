"""Which frames of an annotation a person should look at first: per-frame doubt scores.

After propagation or pre-annotation most frames hold masks no human has checked. Rather than
scrubbing the clip in order, the annotator lists frames by *doubt* and jumps to the worst; a
correction there spreads to its neighbours (:mod:`.repropagate`), so checking the worst first
fixes the most frames per drawing.

Four signs of doubt, each mapped to [0, 1] (0 = no reason to doubt):

* **confidence**: ``1 - confidence`` of a propagated or model frame (propagation's match and
  similarity to the anchor; the model's presence x in-mask probability).
* **drift**: the mask differs from *both* neighbours far more than consecutive frames of this
  clip usually differ (``1 - Dice`` or relative area change, minus the clip's median change).
  The smaller of the two sides is used, so a frame is only blamed when it is the odd one out, not
  at the start of a genuine movement.
* **disagreement**: ``1 - Dice`` between the frame's mask and a second opinion of it, where one
  exists (the model's proposal of a frame now holding propagation, or the reverse).
* **distance**: frames far from every human keyframe (half weight; ``horizon_frames`` away or
  more gives the full half), since propagation and interpolation degrade with distance.

They combine as a noisy-or, ``1 - prod(1 - c_i)``: two weak reasons add up, one strong reason is
enough. Human keyframes have no doubt; unannotated frames have doubt 1 ("no mask yet").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..metrics import dice
from .clip_annotation import ClipAnnotation

#: Frames from the nearest human keyframe at which the distance term is full (propagation
#: measured Dice 0.96 after 30 frames on the phantom: past that, look).
HORIZON_FRAMES = 30
_DISTANCE_WEIGHT = 0.5  # far from a keyframe is a mild reason on its own
_FULL_CHANGE = 0.25  # a change this much beyond the clip's usual is full doubt
_FULL_DISAGREEMENT = 0.25  # 1 - Dice between two opinions at which doubt is full
_REASON_AT = 0.2  # a term at least this large is named in the reasons


@dataclass
class FrameDoubt:
    """Doubt of one frame: ``score`` in [0, 1] and the terms behind it (largest first)."""

    frame: int
    score: float
    reasons: list[str] = field(default_factory=list)
    terms: dict[str, float] = field(default_factory=dict)

    def text(self) -> str:
        """One line for a person, frames counted from 1."""
        why = "; ".join(self.reasons) if self.reasons else "checked by a human"
        return f"frame {self.frame + 1}: doubt {self.score:.2f} ({why})"


def _changes(masks: dict[int, np.ndarray], t: int) -> tuple[list[float], list[float]]:
    """``(1 - Dice, relative area change)`` to each annotated neighbour of frame ``t``."""
    shape_change, area_change = [], []
    a = float(np.count_nonzero(masks[t]))
    for n in (t - 1, t + 1):
        if n in masks:
            b = float(np.count_nonzero(masks[n]))
            shape_change.append(1.0 - dice(masks[t], masks[n]))
            area_change.append(abs(a - b) / max(a, b) if max(a, b) > 0 else 0.0)
    return shape_change, area_change


def frame_doubts(
    annotation: ClipAnnotation,
    second_opinion: Mapping[int, np.ndarray] | None = None,
    *,
    horizon_frames: int = HORIZON_FRAMES,
) -> list[FrameDoubt]:
    """A :class:`FrameDoubt` for every frame of ``annotation``, in frame order.

    ``second_opinion``: ``{frame: (H, W) bool}``, another source's mask of some frames (the
    session passes the model proposals it applied, so a frame since propagated is compared with
    the model's reading of it).
    """
    second_opinion = second_opinion or {}
    n = annotation.n_frames
    masks = {t: fm.mask for t, fm in annotation.frames.items()}
    keys = np.asarray(annotation.keyframes(), dtype=int)
    changes = {t: _changes(masks, t) for t in masks}
    # the clip's usual frame-to-frame change: what every frame is measured against
    usual = [c for shape, _area in changes.values() for c in shape]
    usual_shape = float(np.median(usual)) if usual else 0.0
    usual_area = float(np.median([c for _s, area in changes.values() for c in area])) if usual else 0.0
    out = []
    for t in range(n):
        fm = annotation.frames.get(t)
        if fm is None:
            out.append(FrameDoubt(t, 1.0, ["no mask yet"], {"unannotated": 1.0}))
            continue
        if fm.is_human:
            out.append(FrameDoubt(t, 0.0))
            continue
        terms, reasons = {}, {}
        if fm.confidence is not None:
            terms["confidence"] = float(np.clip(1.0 - fm.confidence, 0.0, 1.0))
            reasons["confidence"] = f"confidence {fm.confidence:.2f}"
        shape, area = changes[t]
        if shape:
            # both neighbours must disagree (min), so a frame at a real movement is not blamed
            excess = max(min(shape) - usual_shape, min(area) - usual_area)
            terms["drift"] = float(np.clip(excess / _FULL_CHANGE, 0.0, 1.0))
            reasons["drift"] = f"differs from its neighbours (Dice {1 - min(shape):.2f})"
        other = second_opinion.get(t)
        if other is not None:  # a model frame compared with its own proposal scores 0
            d = dice(fm.mask, other)
            terms["disagreement"] = float(np.clip((1.0 - d) / _FULL_DISAGREEMENT, 0.0, 1.0))
            kind = "propagation" if fm.provenance == "model" else fm.provenance
            reasons["disagreement"] = f"model and {kind} disagree (Dice {d:.2f})"
        far = int(np.min(np.abs(keys - t))) if keys.size else horizon_frames
        terms["distance"] = _DISTANCE_WEIGHT * min(1.0, far / max(horizon_frames, 1))
        reasons["distance"] = "no human keyframe" if not keys.size else f"{far} frames from a human keyframe"
        score = 1.0 - float(np.prod([1.0 - c for c in terms.values()]))
        named = [reasons[k] for k, c in sorted(terms.items(), key=lambda kv: -kv[1]) if c >= _REASON_AT]
        out.append(FrameDoubt(t, score, named, terms))
    return out


def doubtful_frames(
    annotation: ClipAnnotation,
    second_opinion: Mapping[int, np.ndarray] | None = None,
    *,
    limit: int | None = None,
    min_score: float = 0.0,
    exclude=(),
    horizon_frames: int = HORIZON_FRAMES,
) -> list[FrameDoubt]:
    """Frames to check, most doubtful first (ties: earlier frame first); human keyframes never.

    ``min_score``: leave out frames below it; ``exclude``: frames not to list (already checked);
    ``limit``: at most that many.
    """
    skip = {int(t) for t in exclude}
    ranked = [
        d
        for d in frame_doubts(annotation, second_opinion, horizon_frames=horizon_frames)
        if d.score > 0 and d.score >= min_score and d.frame not in skip
    ]
    ranked.sort(key=lambda d: (-d.score, d.frame))
    return ranked if limit is None else ranked[:limit]
