"""Consensus of several raters: plane labels by majority, nerve masks by majority vote or STAPLE.

Plain numpy; used by the agreement report, the dataset builder (training targets from several
raters) and the annotator's review mode (:func:`worst_frames`).

Conventions
-----------
* **Majority mask**: a pixel is nerve when *strictly more than half* of the raters who annotated
  the frame marked it. With an even number of raters a 50/50 tie is background (conservative:
  a consensus never claims more nerve than a majority saw).
* **Plane label**: the most common label among raters who gave one (``None`` = no label, ignored).
  A tie is resolved by ``tie_rule``: ``'none'`` (default) leaves it unresolved (``None``, to be
  adjudicated); ``'first'`` takes the tied label given by the earliest rater in the list;
  ``'non_standard'`` calls a disputed frame non-standard (the safe choice for training data).
* **Frames**: a frame counts as consensus-annotated when at least ``min_raters`` raters annotated
  it; only those raters vote on its mask (an unannotated frame is "no opinion", not "no nerve").
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from napari_ultramn import NON_STANDARD
from napari_ultramn.annotation import PROVENANCES, ClipAnnotation
from napari_ultramn.annotation.clip_annotation import HUMAN_PROVENANCES
from napari_ultramn.metrics import dice  # the one Dice, with the one empty-mask convention

TIE_RULES = ("none", "first", "non_standard")


# -- masks ----------------------------------------------------------------------------------------
def _check_stack(masks) -> np.ndarray:
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim < 2 or masks.shape[0] == 0:
        raise ValueError(f"expected a stack of masks (R, H, W) with R >= 1, got shape {masks.shape}")
    return masks


def majority_mask(masks) -> np.ndarray:
    """Strict-majority vote: ``masks (R, H, W) bool -> (H, W) bool`` (ties are background)."""
    masks = _check_stack(masks)
    return 2 * masks.sum(axis=0, dtype=np.int32) > masks.shape[0]


@dataclass
class StapleResult:
    """STAPLE estimate: ``probability`` of nerve per pixel, each rater's sensitivity/specificity."""

    probability: np.ndarray
    sensitivity: np.ndarray
    specificity: np.ndarray
    prior: float
    iterations: int
    converged: bool

    @property
    def mask(self) -> np.ndarray:
        return self.probability > 0.5


def staple(masks, *, prior: float | None = None, max_iter: int = 50, tol: float = 1e-6) -> StapleResult:
    """Simultaneous Truth And Performance Level Estimation (Warfield, Zou & Wells, IEEE TMI 2004).

    ``masks (R, ...) bool``: one binary segmentation per rater over the same pixels (any trailing
    shape; pass several frames at once to estimate each rater's performance over a whole clip).
    EM over the hidden true mask; ``prior`` is the nerve fraction (default: the mean of the raters'
    masks, fixed during EM as in the paper). Sensitivities and specificities start at 0.99.
    """
    masks = _check_stack(masks)
    r = masks.shape[0]
    d = masks.reshape(r, -1)
    f = float(d.mean()) if prior is None else float(prior)
    f = min(max(f, 1e-6), 1 - 1e-6)
    p = np.full(r, 0.99)
    q = np.full(r, 0.99)
    eps = 1e-10
    w = d.mean(axis=0)
    converged = False
    iterations = 0
    df = d.astype(np.float64)
    for _ in range(max_iter):
        iterations += 1
        # E-step in log space: a pixel's likelihood under "nerve" and "background".
        lp, l1p = np.log(p + eps), np.log(1 - p + eps)
        lq, l1q = np.log(q + eps), np.log(1 - q + eps)
        log_a = np.log(f) + lp @ df + l1p @ (1 - df)
        log_b = np.log(1 - f) + l1q @ df + lq @ (1 - df)
        w_new = 1.0 / (1.0 + np.exp(np.clip(log_b - log_a, -700, 700)))
        # M-step: performance of each rater against the soft truth.
        sw, sb = w_new.sum(), (1 - w_new).sum()
        p_new = (df @ w_new) / max(sw, eps)
        q_new = ((1 - df) @ (1 - w_new)) / max(sb, eps)
        change = max(np.abs(p_new - p).max(), np.abs(q_new - q).max())
        w, p, q = w_new, p_new, q_new
        if change < tol:
            converged = True
            break
    return StapleResult(w.reshape(masks.shape[1:]), p, q, f, iterations, converged)


def staple_mask(masks, **kwargs) -> np.ndarray:
    """STAPLE consensus ``(R, H, W) bool -> (H, W) bool`` (probability > 0.5); see :func:`staple`."""
    return staple(masks, **kwargs).mask


# -- plane labels ---------------------------------------------------------------------------------
def consensus_plane(labels: list[str | None], tie_rule: str = "none") -> str | None:
    """Most common non-``None`` label; ties per ``tie_rule`` (module docstring). No labels -> None."""
    if tie_rule not in TIE_RULES:
        raise ValueError(f"unknown tie_rule {tie_rule!r}; expected one of {TIE_RULES}")
    given = [lab for lab in labels if lab is not None]
    if not given:
        return None
    counts = Counter(given).most_common()
    top = counts[0][1]
    tied = {lab for lab, c in counts if c == top}
    if len(tied) == 1:
        return counts[0][0]
    if tie_rule == "first":
        return next(lab for lab in given if lab in tied)
    if tie_rule == "non_standard":
        return NON_STANDARD
    return None


# -- clips ----------------------------------------------------------------------------------------
@dataclass
class ConsensusResult:
    """Consensus of one clip. Shapes: T frames of H x W.

    ``masks (T, H, W) bool`` (all False where not ``annotated``); ``annotated (T,) bool`` where at
    least ``min_raters`` raters annotated the frame; ``n_raters (T,) int`` raters who did;
    ``frame_planes`` consensus plane per frame; ``clip_plane``; ``quality`` ('unusable' if a strict
    majority of raters said so, else 'poor' if a strict majority said poor or unusable, else 'ok');
    ``provenance (T,) int8`` code into ``PROVENANCES`` (-1 unannotated): a human code when any
    contributing rater drew or edited the frame, else the most common; ``disagreement (T,) float``
    = 1 - mean pairwise Dice of the contributing raters (NaN where fewer than two contributed).
    """

    clip_id: str
    raters: list[str]
    method: str
    masks: np.ndarray
    annotated: np.ndarray
    n_raters: np.ndarray
    frame_planes: list[str | None]
    clip_plane: str | None
    quality: str
    provenance: np.ndarray
    disagreement: np.ndarray
    staple: dict[str, StapleResult] = field(default_factory=dict)


def check_annotations(annotations: dict[str, ClipAnnotation]) -> tuple[int, tuple[int, int]]:
    """Every rater's annotation must describe the same clip geometry; returns ``(T, (H, W))``."""
    if not annotations:
        raise ValueError("no annotations given: consensus needs at least one rater")
    shapes = {r: (a.n_frames, (int(a.frame_shape[0]), int(a.frame_shape[1]))) for r, a in annotations.items()}
    if len(set(shapes.values())) > 1:
        desc = ", ".join(f"{r}: {n} frames of {s[0]}x{s[1]}" for r, (n, s) in shapes.items())
        clip = next(iter(annotations.values())).clip_id
        raise ValueError(f"clip {clip}: raters' annotations disagree on the clip's shape ({desc})")
    return next(iter(shapes.values()))


def _quality(qualities: list[str]) -> str:
    n = len(qualities)
    if 2 * sum(q == "unusable" for q in qualities) > n:
        return "unusable"
    if 2 * sum(q in ("poor", "unusable") for q in qualities) > n:
        return "poor"
    return "ok"


def _provenance(codes: list[int]) -> int:
    human = [PROVENANCES.index(p) for p in HUMAN_PROVENANCES]
    for h in human:  # 'drawn' outranks 'model_edited', which outranks 'assisted'
        if h in codes:
            return h
    return Counter(codes).most_common(1)[0][0]


def clip_consensus(
    annotations: dict[str, ClipAnnotation],
    method: str = "majority",
    min_raters: int = 2,
    tie_rule: str = "none",
) -> ConsensusResult:
    """Consensus masks, planes, quality and provenance of one clip from ``{rater: ClipAnnotation}``.

    With ``method='staple'`` one STAPLE estimate is made per set of contributing raters, pooling
    every frame they all annotated, so each rater's sensitivity and specificity come from the
    whole clip rather than one frame (kept in ``result.staple`` keyed by '+'.join(raters)).
    """
    if method not in ("majority", "staple"):
        raise ValueError(f"unknown consensus method {method!r}; expected 'majority' or 'staple'")
    if min_raters < 1:
        raise ValueError(f"min_raters must be at least 1, got {min_raters}")
    n_frames, shape = check_annotations(annotations)
    raters = sorted(annotations)
    anns = [annotations[r] for r in raters]
    stacks = [a.mask_stack() for a in anns]
    masks_r = np.stack([s[0] for s in stacks])  # (R, T, H, W)
    ann_r = np.stack([s[1] for s in stacks])  # (R, T)
    prov_r = np.stack([a.provenance_codes() for a in anns])
    n_raters = ann_r.sum(axis=0)
    annotated = n_raters >= min_raters

    out = np.zeros((n_frames, *shape), dtype=bool)
    provenance = np.full(n_frames, -1, dtype=np.int8)
    disagreement = np.full(n_frames, np.nan)
    staple_results: dict[str, StapleResult] = {}
    groups: dict[tuple[int, ...], list[int]] = {}
    for t in np.flatnonzero(annotated):
        who = tuple(int(i) for i in np.flatnonzero(ann_r[:, t]))
        groups.setdefault(who, []).append(int(t))
        provenance[t] = _provenance([int(prov_r[i, t]) for i in who])
        if len(who) >= 2:
            pair_dice = [dice(masks_r[i, t], masks_r[j, t]) for i, j in combinations(who, 2)]
            disagreement[t] = 1.0 - float(np.mean(pair_dice))
    for who, frames in groups.items():
        sub = masks_r[np.ix_(np.asarray(who), np.asarray(frames))]  # (r, f, H, W)
        if method == "majority" or len(who) == 1:
            out[frames] = majority_mask(sub)
        else:
            res = staple(sub)
            staple_results["+".join(raters[i] for i in who)] = res
            out[frames] = res.mask

    per_rater_planes = [a.frame_planes() for a in anns]
    frame_planes = [consensus_plane([p[t] for p in per_rater_planes], tie_rule) for t in range(n_frames)]
    return ConsensusResult(
        clip_id=anns[0].clip_id,
        raters=raters,
        method=method,
        masks=out,
        annotated=annotated,
        n_raters=n_raters.astype(int),
        frame_planes=frame_planes,
        clip_plane=consensus_plane([a.clip_plane for a in anns], tie_rule),
        quality=_quality([a.quality for a in anns]),
        provenance=provenance,
        disagreement=disagreement,
        staple=staple_results,
    )


def worst_frames(
    annotations: dict[str, ClipAnnotation], k: int = 5, spacing_mm: tuple[float, float] | None = None
) -> list[dict]:
    """The ``k`` frames where raters disagree most, for adjudication in review mode.

    Ranked by lowest pairwise Dice, then by largest pairwise area difference. Each entry:
    ``frame``, ``dice`` (the lowest pairwise Dice), ``mean_dice``, ``area_diff`` (largest pairwise
    |area difference|, in ``area_unit``: 'mm2' with ``spacing_mm``, else 'px'), ``raters`` (the pair
    behind the lowest Dice), ``n_raters``. Only frames annotated by at least two raters count.
    """
    n_frames, _ = check_annotations(annotations)
    raters = sorted(annotations)
    pixel_area = 1.0 if spacing_mm is None else float(spacing_mm[0]) * float(spacing_mm[1])
    rows: list[dict[str, Any]] = []
    for t in range(n_frames):
        who = [r for r in raters if t in annotations[r].frames]
        if len(who) < 2:
            continue
        masks = {r: annotations[r].frames[t].mask for r in who}
        pairs = [(dice(masks[a], masks[b]), a, b) for a, b in combinations(who, 2)]
        d_min, a, b = min(pairs)
        areas = [int(m.sum()) for m in masks.values()]
        rows.append(
            {
                "frame": t,
                "dice": d_min,
                "mean_dice": float(np.mean([p[0] for p in pairs])),
                "area_diff": (max(areas) - min(areas)) * pixel_area,
                "area_unit": "px" if spacing_mm is None else "mm2",
                "raters": (a, b),
                "n_raters": len(who),
            }
        )
    rows.sort(key=lambda r: (r["dice"], -r["area_diff"], r["frame"]))
    return rows[:k]
