"""Run-length encoding of binary masks (row-major, counts alternate, starting with background).

Compact for nerve masks (a few runs per row) and trivially portable (the COCO 'uncompressed RLE'
convention, but row-major).
"""

from __future__ import annotations

import numpy as np


def rle_encode(mask: np.ndarray) -> list[int]:
    """Counts of alternating runs of 0 and 1 over ``mask.ravel()``; first count is zeros (may be 0)."""
    flat = np.asarray(mask, dtype=bool).ravel()
    if flat.size == 0:
        return []
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    counts = np.diff(bounds).tolist()
    return ([0] + counts) if flat[0] else counts


def rle_decode(counts: list[int], shape: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`rle_encode`; raises ValueError if the counts do not fill ``shape``."""
    total = int(np.prod(shape))
    runs = np.asarray(counts, dtype=np.int64)
    if runs.size and (runs < 0).any():
        raise ValueError("RLE counts must be non-negative")
    if int(runs.sum()) != total:
        raise ValueError(f"RLE counts sum to {int(runs.sum())}, expected {total} for shape {tuple(shape)}")
    values = np.zeros(runs.size, dtype=bool)
    values[1::2] = True
    return np.repeat(values, runs).reshape(shape)
