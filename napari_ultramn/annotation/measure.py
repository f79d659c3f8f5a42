"""Nerve measurements in physical units: area, perimeter, flattening, circularity, centroid.

Spacing is ``(row_mm, col_mm)``; ultrasound pixels are often not square, so every quantity is
computed in physical coordinates (``row * row_mm``, ``col * col_mm``), not in pixels and scaled
afterwards. With ``spacing_mm=None`` the clip is uncalibrated and every number (and every column
name) is in pixels: we never pretend millimetres.

Definitions (the ones used in the median-nerve literature):

* area: number of mask pixels times the pixel area.
* perimeter: length of the iso-0.5 contours (marching squares,
  :func:`skimage.measure.find_contours`) of the mask smoothed by a Gaussian of one coarse pixel,
  isotropic in millimetres; each segment is measured in physical units. The raw pixel outline is
  a staircase that reads a disc's perimeter ~8% long; the smoothed one is within ~1% for discs
  and ellipses of nerve size (radius >= 10 pixels) and ~4% short for a square's sharp corners.
  Contours of holes count too. The mask is zero-padded first so a nerve cut by the image edge has
  a closed outline.
* flattening ratio: major / minor axis of the ellipse with the same second moments (each pixel
  counted as a uniform square, so a one-pixel mask is a ratio of 1, not a division by zero).
* circularity: ``4 * pi * area / perimeter ** 2`` (1 for a disc, smaller for any other shape).
* centroid: mean (row, col) of the mask pixels in physical units from the top-left pixel centre.

An empty mask (nerve not visible) measures area 0 and perimeter 0; flattening, circularity,
axes and centroid are NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from skimage.measure import find_contours

from .clip_annotation import ClipAnnotation


@dataclass
class FrameMeasurement:
    """Measurements of one frame's mask; lengths in ``unit`` ('mm' or 'px'), areas in unit²."""

    area: float
    perimeter: float
    flattening: float
    circularity: float
    major_axis: float
    minor_axis: float
    centroid_row: float
    centroid_col: float
    unit: str

    def as_dict(self) -> dict[str, float]:
        """Keys carry the unit, e.g. ``area_mm2``, ``perimeter_mm`` (or ``area_px2``...)."""
        u = self.unit
        return {
            f"area_{u}2": self.area,
            f"perimeter_{u}": self.perimeter,
            "flattening": self.flattening,
            "circularity": self.circularity,
            f"major_axis_{u}": self.major_axis,
            f"minor_axis_{u}": self.minor_axis,
            f"centroid_row_{u}": self.centroid_row,
            f"centroid_col_{u}": self.centroid_col,
        }


def _check_spacing(spacing_mm) -> tuple[float, float, str]:
    if spacing_mm is None:
        return 1.0, 1.0, "px"
    try:
        row_mm, col_mm = (float(s) for s in spacing_mm)
    except (TypeError, ValueError):
        raise ValueError(f"spacing_mm must be (row_mm, col_mm) or None, got {spacing_mm!r}") from None
    if not (row_mm > 0 and col_mm > 0 and math.isfinite(row_mm) and math.isfinite(col_mm)):
        raise ValueError(f"spacing_mm must be two positive numbers, got {spacing_mm!r}")
    return row_mm, col_mm, "mm"


def _contour_length(image: np.ndarray, row_mm: float, col_mm: float) -> float:
    total = 0.0
    for contour in find_contours(image, 0.5):
        d = np.diff(contour, axis=0)
        total += float(np.hypot(d[:, 0] * row_mm, d[:, 1] * col_mm).sum())
    return total


def _perimeter(mask: np.ndarray, row_mm: float, col_mm: float) -> float:
    """Outline length of a bool mask, smoothed by one coarse pixel (see module docstring)."""
    coarse = max(row_mm, col_mm)
    sigma = (coarse / row_mm, coarse / col_mm)  # isotropic in mm, so anisotropic in pixels
    pad = int(math.ceil(3 * max(sigma))) + 1
    padded = np.pad(mask, pad).astype(np.float32)
    length = _contour_length(ndi.gaussian_filter(padded, sigma), row_mm, col_mm)
    if length == 0.0:  # a mask of a pixel or two blurs below 0.5: measure its raw outline
        length = _contour_length(padded, row_mm, col_mm)
    return length


def measure_mask(mask: np.ndarray, spacing_mm: tuple[float, float] | None) -> FrameMeasurement:
    """Measure one ``(H, W)`` bool mask; see the module docstring for definitions and units."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"a frame mask must be 2D (H, W), got shape {mask.shape}")
    row_mm, col_mm, unit = _check_spacing(spacing_mm)
    nan = float("nan")
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return FrameMeasurement(0.0, 0.0, nan, nan, nan, nan, nan, nan, unit)
    cols = np.flatnonzero(mask.any(axis=0))
    r0, c0 = int(rows[0]), int(cols[0])
    crop = mask[r0 : int(rows[-1]) + 1, c0 : int(cols[-1]) + 1]
    rr, cc = np.nonzero(crop)
    y = (rr + r0) * row_mm
    x = (cc + c0) * col_mm
    n = rr.size
    area = n * row_mm * col_mm
    perimeter = _perimeter(crop, row_mm, col_mm)
    cy, cx = float(y.mean()), float(x.mean())
    # second moments of the pixels as uniform squares: add each square's own variance (d^2 / 12)
    cov = np.cov(np.vstack([y, x]), bias=True) if n > 1 else np.zeros((2, 2))
    cov = cov + np.diag([row_mm**2 / 12.0, col_mm**2 / 12.0])
    lam_minor, lam_major = np.linalg.eigvalsh(cov)
    major, minor = 4.0 * math.sqrt(lam_major), 4.0 * math.sqrt(max(lam_minor, 0.0))
    flattening = major / minor if minor > 0 else nan
    circularity = 4.0 * math.pi * area / perimeter**2 if perimeter > 0 else nan
    return FrameMeasurement(area, perimeter, flattening, circularity, major, minor, cy, cx, unit)


def _frames_of(annotation_or_masks):
    """Yield (frame, mask, provenance, plane, confidence) for every annotated frame."""
    if isinstance(annotation_or_masks, ClipAnnotation):
        ann = annotation_or_masks
        for t in sorted(ann.frames):
            fm = ann.frames[t]
            yield t, fm.mask, fm.provenance, ann.frame_plane(t), fm.confidence
    elif isinstance(annotation_or_masks, Mapping):
        for t in sorted(annotation_or_masks):
            yield int(t), annotation_or_masks[t], None, None, None
    else:
        stack = np.asarray(annotation_or_masks)
        if stack.ndim != 3:
            raise ValueError(
                f"masks must be a ClipAnnotation, a dict of frame masks or a (T, H, W) array; "
                f"got an array of shape {stack.shape}"
            )
        for t in range(stack.shape[0]):
            yield t, stack[t], None, None, None


def measure_clip(annotation_or_masks, spacing_mm: tuple[float, float] | None) -> pd.DataFrame:
    """One row per annotated frame: frame, provenance, plane, confidence and the measurements.

    ``annotation_or_masks`` is a :class:`ClipAnnotation` (its annotated frames, with provenance,
    plane and confidence), a ``{frame: (H, W) mask}`` dict, or a ``(T, H, W)`` bool array (every
    frame). Column names carry the unit (``area_mm2`` or ``area_px2`` when ``spacing_mm`` is None).
    """
    unit = _check_spacing(spacing_mm)[2]
    rows = []
    for t, mask, provenance, plane, confidence in _frames_of(annotation_or_masks):
        row = {"frame": int(t), "provenance": provenance, "plane": plane, "confidence": confidence}
        row.update(measure_mask(mask, spacing_mm).as_dict())
        rows.append(row)
    if not rows:  # keep the columns so callers can still select them
        columns = ["frame", "provenance", "plane", "confidence"]
        columns += list(FrameMeasurement(0, 0, 0, 0, 0, 0, 0, 0, unit).as_dict())
        return pd.DataFrame(columns=columns)
    return pd.DataFrame(rows)


def centroid_excursion(df: pd.DataFrame) -> dict[str, float | int | str]:
    """How far the nerve's centroid travels over a clip (dynamic exams: finger flexion, etc.).

    ``df`` is a :func:`measure_clip` table. Frames without a nerve (NaN centroid) are skipped. The
    result's keys carry the unit of the table: ``max_displacement_<u>`` (largest distance from
    the first measured frame's centroid) and ``frame_of_max_displacement``, ``row_range_<u>`` and
    ``col_range_<u>`` (max - min along each axis), ``path_length_<u>`` (sum of the distances
    between consecutive measured frames), plus ``first_frame``, ``n_frames`` and ``unit``.
    With no measured frame the distances are NaN and ``n_frames`` is 0.
    """
    if "centroid_row_mm" in df.columns:
        unit = "mm"
    elif "centroid_row_px" in df.columns:
        unit = "px"
    else:
        raise ValueError(
            "centroid_excursion needs a measure_clip table with centroid_row_mm/_px columns; "
            f"got columns {list(df.columns)}"
        )
    table = df.dropna(subset=[f"centroid_row_{unit}", f"centroid_col_{unit}"])
    if "frame" in table.columns:
        table = table.sort_values("frame")
    nan = float("nan")
    out: dict[str, float | int | str] = {
        "unit": unit,
        "n_frames": len(table),
        "first_frame": -1,
        "frame_of_max_displacement": -1,
        f"max_displacement_{unit}": nan,
        f"row_range_{unit}": nan,
        f"col_range_{unit}": nan,
        f"path_length_{unit}": nan,
    }
    if table.empty:
        return out
    pts = table[[f"centroid_row_{unit}", f"centroid_col_{unit}"]].to_numpy(dtype=float)
    frames = table["frame"].to_numpy() if "frame" in table.columns else np.arange(len(table))
    dist = np.hypot(*(pts - pts[0]).T)
    i = int(np.argmax(dist))
    out.update(
        {
            "first_frame": int(frames[0]),
            "frame_of_max_displacement": int(frames[i]),
            f"max_displacement_{unit}": float(dist[i]),
            f"row_range_{unit}": float(np.ptp(pts[:, 0])),
            f"col_range_{unit}": float(np.ptp(pts[:, 1])),
            f"path_length_{unit}": float(np.hypot(*np.diff(pts, axis=0).T).sum()),
        }
    )
    return out


def line_length(start, end, spacing_mm: tuple[float, float] | None) -> tuple[float, str]:
    """Length of a caliper from ``start`` to ``end`` (``(row, col)`` in pixels) and its unit.

    Measured in physical coordinates (pixels need not be square); ``'px'`` when the clip is
    uncalibrated (``spacing_mm=None``), never a pretended millimetre.
    """
    row_mm, col_mm, unit = _check_spacing(spacing_mm)
    (r0, c0), (r1, c1) = (tuple(float(v) for v in p[-2:]) for p in (start, end))
    return math.hypot((r1 - r0) * row_mm, (c1 - c0) * col_mm), unit
