"""Boundary agreement of two nerve masks: Dice, IoU, Hausdorff, HD95, ASSD, surface Dice, in mm.

The metrics and their empty-mask convention live in :mod:`napari_ultramn.metrics` (MONAI's
boundary definitions; both masks empty -> Dice 1, distances 0; one empty -> Dice 0, distances
undefined and flagged ``empty='one'``), shared with model evaluation so both report the same
numbers. This module re-exports them under the agreement names and adds :func:`area` and the
MONAI reference used by the tests and the benchmark. Uncalibrated clips (``spacing_mm=None``)
give distances in pixels, and every table says so in its ``unit`` column.
"""

from __future__ import annotations

import numpy as np

from napari_ultramn.metrics import (
    DISTANCES,
    METRICS,
    boundary,
    check_pair,
    frame_metrics,
    surface_distances,
)
from napari_ultramn.metrics import pair_metrics as boundary_metrics

__all__ = [
    "DISTANCES",
    "METRICS",
    "area",
    "boundary",
    "boundary_metrics",
    "check_pair",
    "frame_metrics",
    "monai_boundary_metrics",
    "surface_distances",
]


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
