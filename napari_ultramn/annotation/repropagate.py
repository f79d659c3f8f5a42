"""Spread a human correction of one frame to the neighbouring frames that were derived, not drawn.

When a person redraws frame ``t`` that held a propagated, interpolated or model mask, the frames
around it were derived from the same (wrong) source and are most likely wrong the same way. So
the correction is carried both ways with :func:`.propagate.propagate_mask`:

* On each side it goes through the *run* of derived frames next to ``t`` (propagated,
  interpolated, model), and stops at the first human keyframe, at the first unannotated frame
  (a correction never annotates frames the person has not asked to fill) and after ``reach_frames``.
* Where that run ends at a human keyframe, that keyframe is the second anchor: each frame blends
  both propagations by its distance to each anchor, exactly as two-anchor propagation does, so
  the far keyframe keeps its say and the spread never jumps at its edge.
* Where the run ends otherwise (clip end, unannotated frame, ``reach_frames``), the correction
  is propagated alone.

Human keyframes are never overwritten (:meth:`.propagate.PropagationResult.apply`). An empty
correction ("no nerve here") has no shape to carry: nothing spreads. Cost: one propagation pass
per frame on a side without a keyframe, two with one (the phantom's 256x256 frames: about 0.3 s
and 0.45 s for 30 frames on a lightly loaded 2-core machine).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np

from ..progress import Progress
from .clip_annotation import ClipAnnotation
from .propagate import PropagationResult, propagate_mask


@dataclass
class Spread:
    """What a correction of ``frame`` carried to its neighbours: one propagation per side."""

    frame: int
    sides: list[PropagationResult] = field(default_factory=list)

    @property
    def masks(self) -> dict[int, np.ndarray]:
        return {t: m for r in self.sides for t, m in r.masks.items()}

    @property
    def warnings(self) -> dict[int, str]:
        return {t: w for r in self.sides for t, w in r.warnings.items()}

    def apply(self, annotation: ClipAnnotation) -> list[int]:
        """Write the spread masks as 'propagated' (never over a human keyframe); the frames written."""
        return sorted(t for r in self.sides for t in r.apply(annotation))


def spread_bounds(
    annotation: ClipAnnotation, t: int, direction: int, reach_frames: int | None = None
) -> tuple[int, int | None]:
    """``(last, keyframe)``: the last derived frame the spread from ``t`` reaches in ``direction``
    (``t`` itself when there is none) and the human keyframe just past it (None if the run ends
    otherwise)."""
    n = annotation.n_frames
    last, s = t, t + direction
    while 0 <= s < n and (reach_frames is None or abs(s - t) <= reach_frames):
        fm = annotation.frames.get(s)
        if fm is None:
            return last, None
        if fm.is_human:
            return last, s
        last, s = s, s + direction
    return last, None


def spread_correction(
    frames, annotation: ClipAnnotation, t: int, mask: np.ndarray, *, reach_frames: int | None = None
) -> Generator[Progress, None, Spread]:
    """Propagate the corrected ``mask`` of frame ``t`` through its derived neighbours.

    ``frames``: the clip's ``(T, H, W)`` frames (a ``Clip.frames``); ``annotation``: the
    annotation *before* the correction is written (frame ``t`` may hold anything). Nothing is
    changed here: :meth:`Spread.apply` writes the result. Yields :class:`Progress` per frame.
    """
    t = int(t)
    mask = np.asarray(mask, dtype=bool)
    spread = Spread(t)
    if not mask.any():
        return spread
    plans = []
    for direction in (1, -1):
        last, key = spread_bounds(annotation, t, direction, reach_frames)
        if last != t:
            plans.append((last, key))
    total = sum(abs(last - t) for last, _key in plans)
    done = 0
    for last, key in plans:
        if key is None:
            gen = propagate_mask(frames, t, mask, last)
        else:  # the keyframe blends in; the result stops just before it
            gen = propagate_mask(frames, t, mask, key, annotation.frames[key].mask)
        try:
            while True:
                p = next(gen)
                frac = p.done / max(p.total, 1)
                yield Progress(
                    done + round(frac * abs(last - t)), total, f"spreading the correction of frame {t}", p.metrics
                )
        except StopIteration as stop:
            spread.sides.append(stop.value)
        done += abs(last - t)
    return spread
