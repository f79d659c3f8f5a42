"""Per-frame segmentation metrics of two nerve masks, with **one** empty-mask convention.

Inter-rater agreement (:mod:`dataset_tools.agreement.masks`) and model evaluation
(:mod:`napari_ultramn.model.evaluate`) both call these functions, so a number in the agreement
report and the same number in an evaluation mean the same thing.

Boundary distances follow **MONAI's** definitions (``monai.metrics.compute_hausdorff_distance``,
``compute_average_surface_distance(symmetric=True)``, ``compute_surface_dice(use_subvoxels=False)``,
MONAI 1.x), reproduced exactly and tested equal to MONAI on the same masks:

* the boundary of a mask is its pixels removed by one binary erosion with the 4-connected cross
  (``mask ^ binary_erosion(mask)``; outside the image counts as background);
* a surface distance is the Euclidean distance, in mm with the (row, col) spacing (pixels without
  one), from a boundary pixel of one mask to the nearest boundary pixel of the other (exact: a
  ``scipy.spatial.cKDTree`` over the boundary pixels' physical coordinates, as MONAI does on CPU);
* HD = the largest distance in either direction; **HD95 = max of the two directed 95th
  percentiles** (linear interpolation), not the percentile of the pooled distances;
* ASSD = the mean of *all* boundary distances of both directions pooled (so the longer boundary
  weighs more);
* surface Dice at tolerance tau = (boundary pixels of A within tau of B + those of B within tau of
  A) / (boundary pixels of A + of B).

**Empty masks** (MONAI returns NaN/inf there; we decide, once, here):

* both empty -> Dice 1, IoU 1, HD/HD95/ASSD 0, surface Dice 1: both say "no nerve in this frame"
  and agree perfectly;
* one empty -> Dice 0, IoU 0, HD/HD95/ASSD/surface Dice **undefined (NaN)**: a distance to
  nothing does not exist. Every result carries ``empty`` ('none' | 'one' | 'both') so summaries
  count such frames separately and never average them in (nor silently drop them unsaid).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

METRICS = ("dice", "iou", "hd", "hd95", "assd", "surface_dice")
DISTANCES = ("hd", "hd95", "assd", "surface_dice")
#: values of every metric when both masks are empty (see the module docstring)
BOTH_EMPTY = {"dice": 1.0, "iou": 1.0, "hd": 0.0, "hd95": 0.0, "assd": 0.0, "surface_dice": 1.0}


def boundary(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels ``(H, W) bool``: the mask minus its 4-connected erosion (as MONAI)."""
    mask = np.asarray(mask, dtype=bool)
    return mask ^ ndimage.binary_erosion(mask)


def check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"masks of mismatched shape: {a.shape} vs {b.shape}")
    return a, b


def empty_state(a: np.ndarray, b: np.ndarray) -> str:
    """'both', 'one' or 'none': how many of the two masks are empty."""
    n_empty = int(not np.any(a)) + int(not np.any(b))
    return ("none", "one", "both")[n_empty]


def _crop(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Distances between boundary pixels never leave the union's bounding box; a 1-pixel margin
    # keeps the erosion identical to eroding the full frame.
    rows = np.flatnonzero((a | b).any(axis=1))
    cols = np.flatnonzero((a | b).any(axis=0))
    r0, r1 = max(rows[0] - 1, 0), min(rows[-1] + 2, a.shape[0])
    c0, c1 = max(cols[0] - 1, 0), min(cols[-1] + 2, a.shape[1])
    return a[r0:r1, c0:c1], b[r0:r1, c0:c1]


def surface_distances(a: np.ndarray, b: np.ndarray, spacing_mm=None) -> tuple[np.ndarray, np.ndarray]:
    """``(d_ab, d_ba)``: distances from each boundary pixel of ``a`` to ``b``'s boundary and back.

    Both masks must be non-empty. Units: mm with ``spacing_mm=(row_mm, col_mm)``, else pixels.
    """
    return _distances(*_crop(*check_pair(a, b)), spacing_mm)


def _distances(a: np.ndarray, b: np.ndarray, spacing_mm) -> tuple[np.ndarray, np.ndarray]:
    # Exact nearest-boundary-pixel distances. A k-d tree over the few hundred boundary pixels is
    # faster than a distance transform of the box, and equal to it (tested against MONAI).
    from scipy.spatial import cKDTree

    scale = np.ones(2) if spacing_mm is None else np.asarray(spacing_mm, dtype=float)
    pa = np.argwhere(boundary(a)) * scale
    pb = np.argwhere(boundary(b)) * scale
    return cKDTree(pb).query(pa)[0], cKDTree(pa).query(pb)[0]


def overlap(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """``(dice, iou)`` of two masks; both empty -> (1, 1), one empty -> (0, 0)."""
    a, b = check_pair(a, b)
    na, nb = int(np.count_nonzero(a)), int(np.count_nonzero(b))
    if na + nb == 0:
        return BOTH_EMPTY["dice"], BOTH_EMPTY["iou"]
    inter = int(np.count_nonzero(a & b))
    return 2 * inter / (na + nb), inter / (na + nb - inter)


def pair_metrics(a, b, spacing_mm=None, tolerance: float = 0.5) -> dict:
    """Every metric of one pair of ``(H, W)`` masks; ``tolerance`` for surface Dice in the distance
    unit (mm with ``spacing_mm``, else px). Adds ``empty`` ('none'|'one'|'both') and ``unit``."""
    a, b = check_pair(a, b)
    if a.ndim != 2:
        raise ValueError(f"expected (H, W) masks, got shape {a.shape}")
    unit = "px" if spacing_mm is None else "mm"
    empty = empty_state(a, b)
    if empty == "both":
        return {**BOTH_EMPTY, "empty": empty, "unit": unit}
    a, b = _crop(a, b)  # everything below works on the masks' bounding box only
    dice, iou = overlap(a, b)
    out = {"dice": dice, "iou": iou, "unit": unit, "empty": empty}
    if empty == "one":
        out.update({k: float("nan") for k in DISTANCES})
        return out
    d_ab, d_ba = _distances(a, b, spacing_mm)
    both = np.concatenate([d_ab, d_ba])
    out.update(
        hd=float(max(d_ab.max(), d_ba.max())),
        hd95=float(max(np.percentile(d_ab, 95), np.percentile(d_ba, 95))),
        assd=float(both.mean()),
        surface_dice=float(np.count_nonzero(both <= tolerance) / both.size),
    )
    return out


def frame_metrics(a, b, spacing_mm=None, tolerance: float = 0.5) -> dict[str, np.ndarray]:
    """Metrics of two ``(T, H, W)`` stacks frame by frame: ``{metric: (T,) float, 'empty': (T,) str}``."""
    a, b = check_pair(a, b)
    if a.ndim != 3:
        raise ValueError(f"expected (T, H, W) mask stacks, got shape {a.shape}")
    rows = [pair_metrics(a[t], b[t], spacing_mm, tolerance) for t in range(a.shape[0])]
    out = {k: np.array([r[k] for r in rows], dtype=float).reshape(-1) for k in METRICS}
    out["empty"] = np.array([r["empty"] for r in rows], dtype=object).reshape(-1)
    return out


def dice(a, b) -> float:
    return overlap(a, b)[0]


def dice_from_counts(intersection, size_sum):
    """Dice of many pairs at once from ``|A and B|`` and ``|A| + |B|`` (numpy or torch arrays, on
    any device): training's validation Dice on batches. Both empty -> 1, as :func:`overlap`."""
    if hasattr(size_sum, "clamp"):  # a torch tensor: stays on its device, no torch import here
        return (2 * intersection / size_sum.clamp(min=1)).where(size_sum > 0, BOTH_EMPTY["dice"])
    size_sum = np.asarray(size_sum, dtype=float)
    return np.where(size_sum > 0, 2 * np.asarray(intersection, float) / np.maximum(size_sum, 1), BOTH_EMPTY["dice"])


def iou(a, b) -> float:
    return overlap(a, b)[1]


def hd95(a, b, spacing_mm=None) -> float:
    """HD95 of one ``(H, W)`` pair (0 both empty, NaN one empty)."""
    return pair_metrics(a, b, spacing_mm)["hd95"]


def assd(a, b, spacing_mm=None) -> float:
    """ASSD of one ``(H, W)`` pair (0 both empty, NaN one empty)."""
    return pair_metrics(a, b, spacing_mm)["assd"]
