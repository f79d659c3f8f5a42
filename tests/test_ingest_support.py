"""Shared pieces of the ingest tests: synthetic screen recordings and mapping CSVs."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

#: The moving (imaging) rectangle of ``screen_frames``: top, left, bottom, right.
SCREEN_AREA = [24, 16, 88, 112]


def screen_frames(n_frames: int = 6, seed: int = 0, image: bool = True) -> np.ndarray:
    """(T, 96, 128) uint8 screen recording: black screen, a white text bar, speckle in SCREEN_AREA.

    The speckle is smoothed noise (neighbouring pixels correlated, as in real B-mode), new in every
    frame. ``image=False``: the screen and its text bar only, no ultrasound image anywhere, so no
    detector can be confident where the imaging area is.
    """
    rng = np.random.default_rng(seed)
    frames = np.zeros((n_frames, 96, 128), np.uint8)
    frames[:, 4:14, 8:90] = 255  # burned-in "patient name" bar, outside the imaging area
    if image:
        top, left, bottom, right = SCREEN_AREA
        h, w = bottom - top, right - left
        noise = rng.random((n_frames, h + 2, w + 2), dtype=np.float32)
        smooth = sum(noise[:, i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9
        frames[:, top:bottom, left:right] = np.clip(90 + (smooth - 0.5) * 600, 20, 230).astype(np.uint8)
    return frames


def write_frame_folder(folder: Path, frames: np.ndarray) -> Path:
    """A folder of PNG frames (lossless, so the stand-in detection sees exactly what was drawn)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"frame_{i:03d}.png")
    return folder


def write_mapping(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture(autouse=True)
def contracts():
    """Kept so the test modules that import it need no change; the real modules serve now."""
    yield
