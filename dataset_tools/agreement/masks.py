"""Boundary agreement of two nerve masks: Dice, IoU, Hausdorff, HD95, ASSD, surface Dice, in mm.

Convention: **MONAI's** (``monai.metrics.compute_hausdorff_distance``,
``compute_average_surface_distance(symmetric=True)``, ``compute_surface_dice(use_subvoxels=False)``,
MONAI 1.x), which we reproduce exactly and test against on the same masks:

* the boundary of a mask is its pixels removed by one binary erosion with the 4-connected cross
  (``mask ^ binary_erosion(mask)``; outside the image counts as background);
* a surface distance is the Euclidean distance, in mm with the (row, col) spacing, from a boundary
  pixel of one mask to the nearest boundary pixel of the other (exact: a ``scipy.spatial.cKDTree``
  over the boundary pixels' physical coordinates, as MONAI does on the CPU);
* HD = the largest distance in either direction; **HD95 = max of the two directed 95th
  percentiles** (linear interpolation), not the percentile of the pooled distances;
* ASSD = the mean of *all* boundary distances of both directions pooled (so the longer boundary
  weighs more);
* surface Dice at tolerance tau = (boundary pixels of A within tau of B + those of B within tau of
  A) / (boundary pixels of A + of B).

Empty masks (MONAI returns NaN/inf; we decide): both empty -> Dice 1, IoU 1, all distances 0,
surface Dice 1 (the raters agree there is no nerve). One empty -> Dice 0, IoU 0, distances and
surface Dice **undefined (NaN)** and the row flagged ``empty='one'``; summaries count such frames
and never average over them silently. Uncalibrated clips (``spacing_mm=None``) give distances in
pixels, and every table says so in its ``unit`` column.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

METRICS = ("dice", "iou", "hd", "hd95", "assd", "surface_dice")
DISTANCES = ("hd", "hd95", "assd", "surface_dice")


def boundary(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels ``(H, W) bool``: the mask minus its 4-connected erosion (as MONAI)."""
    mask = np.asarray(mask, dtype=bool)
    return mask ^ ndimage.binary_erosion(mask)


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
    return _distances(*_crop(np.asarray(a, bool), np.asarray(b, bool)), spacing_mm)


def _distances(a: np.ndarray, b: np.ndarray, spacing_mm) -> tuple[np.ndarray, np.ndarray]:
    # Exact nearest-boundary-pixel distances. A k-d tree over the few hundred boundary pixels is
    # faster than a distance transform of the box, and equal to it (tested against MONAI).
    from scipy.spatial import cKDTree

    scale = np.ones(2) if spacing_mm is None else np.asarray(spacing_mm, dtype=float)
    pa = np.argwhere(boundary(a)) * scale
    pb = np.argwhere(boundary(b)) * scale
    return cKDTree(pb).query(pa)[0], cKDTree(pa).query(pb)[0]


def check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"masks of mismatched shape: {a.shape} vs {b.shape}")
    return a, b


def boundary_metrics(a, b, spacing_mm=None, tolerance: float = 0.5) -> dict:
    """Every metric of one pair of ``(H, W)`` masks; ``tolerance`` for surface Dice in the distance
    unit (mm with ``spacing_mm``, else px). Adds ``empty`` ('none'|'one'|'both') and ``unit``."""
    a, b = check_pair(a, b)
    if a.ndim != 2:
        raise ValueError(f"expected (H, W) masks, got shape {a.shape}")
    unit = "px" if spacing_mm is None else "mm"
    union_rows = np.flatnonzero(a.any(axis=1) | b.any(axis=1))
    if union_rows.size == 0:
        return {"dice": 1.0, "iou": 1.0, "hd": 0.0, "hd95": 0.0, "assd": 0.0, "surface_dice": 1.0,
                "empty": "both", "unit": unit}
    a, b = _crop(a, b)  # everything below works on the masks' bounding box only
    na, nb = int(np.count_nonzero(a)), int(np.count_nonzero(b))
    inter = int(np.count_nonzero(a & b))
    out = {"dice": 2 * inter / (na + nb), "iou": inter / (na + nb - inter), "unit": unit}
    if na == 0 or nb == 0:
        out.update({k: float("nan") for k in DISTANCES}, empty="one")
        return out
    d_ab, d_ba = _distances(a, b, spacing_mm)
    both = np.concatenate([d_ab, d_ba])
    out.update(
        hd=float(max(d_ab.max(), d_ba.max())),
        hd95=float(max(np.percentile(d_ab, 95), np.percentile(d_ba, 95))),
        assd=float(both.mean()),
        surface_dice=float(np.count_nonzero(both <= tolerance) / both.size),
        empty="none",
    )
    return out


def frame_metrics(a, b, spacing_mm=None, tolerance: float = 0.5) -> dict[str, np.ndarray]:
    """Metrics of two ``(T, H, W)`` stacks frame by frame: ``{metric: (T,) array, 'empty': (T,) str}``."""
    a, b = check_pair(a, b)
    if a.ndim != 3:
        raise ValueError(f"expected (T, H, W) mask stacks, got shape {a.shape}")
    rows = [boundary_metrics(a[t], b[t], spacing_mm, tolerance) for t in range(a.shape[0])]
    out = {k: np.array([r[k] for r in rows], dtype=float) for k in METRICS}
    out["empty"] = np.array([r["empty"] for r in rows], dtype=object)
    return out


def area(mask, spacing_mm=None) -> float:
    """Cross-sectional area: mm^2 with ``spacing_mm``, else pixels."""
    n = int(np.asarray(mask, bool).sum())
    return float(n) if spacing_mm is None else n * float(spacing_mm[0]) * float(spacing_mm[1])


def monai_boundary_metrics(a, b, spacing_mm=None, tolerance: float = 0.5) -> dict:
    """The same metrics computed by MONAI itself (reference for tests and the benchmark).

    Only for non-empty pairs (MONAI's empty-mask values are NaN/inf by design).
    """
    import torch
    from monai.metrics import (
        compute_average_surface_distance,
        compute_hausdorff_distance,
        compute_surface_dice,
    )

    a, b = check_pair(a, b)
    ya = torch.as_tensor(a[None, None].astype(np.float32))
    yb = torch.as_tensor(b[None, None].astype(np.float32))
    spacing = None if spacing_mm is None else [float(s) for s in spacing_mm]
    hd = compute_hausdorff_distance(ya, yb, include_background=True, spacing=spacing)
    hd95 = compute_hausdorff_distance(ya, yb, include_background=True, percentile=95, spacing=spacing)
    assd = compute_average_surface_distance(ya, yb, include_background=True, symmetric=True, spacing=spacing)
    sd = compute_surface_dice(ya, yb, [float(tolerance)], include_background=True, spacing=spacing)
    return {"hd": float(hd), "hd95": float(hd95), "assd": float(assd), "surface_dice": float(sd)}
