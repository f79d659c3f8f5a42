"""Shared pieces of the ingest tests: synthetic screen recordings, mapping CSVs, and stand-ins.

``napari_ultramn.io.screen_region`` and ``napari_ultramn.region_corrections`` (contracts A and B)
are written in parallel with ingest. Until they exist in this tree, the ``contracts`` fixture puts
minimal stand-ins in ``sys.modules`` (never in the package): a rectangle around the pixels that move
is the "detected" area. Once the real modules are importable they are used instead, unchanged.
"""

from __future__ import annotations

import csv
import importlib
import inspect
import json
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from dataset_tools import deid
from napari_ultramn.annotation.rle import rle_encode
from napari_ultramn.io.clip import Region

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


# -- stand-ins for contracts A and B, used only while the real modules are missing --------------
@dataclass
class _Area:
    region: Region
    keep_mask: np.ndarray
    shape: str
    source: str
    confidence: float
    reason: str

    def blanked_rle(self) -> list[int]:
        return rle_encode(~self.keep_mask)

    def to_record(self) -> dict:
        return {"source": self.source, "shape": self.shape, "region": self.region.as_list(),
                "confidence": self.confidence, "blanked_rle": self.blanked_rle(),
                "blanked_pixels": int((~self.keep_mask).sum())}


def _area_from_region(region, frames, source):
    return _Area(region, np.ones((region.height, region.width), bool), "rectangle", source, 1.0,
                 f"given ({source})")


def _detect(frames):
    frames = np.asarray(frames)
    frames = frames[None] if frames.ndim == 2 else frames
    moving = frames.astype(np.float32).std(axis=0) > 4.0
    if frames.shape[0] < 2 or moving.sum() < 0.05 * moving.size:
        whole = Region(0, 0, *frames.shape[1:])
        return _Area(whole, np.ones(frames.shape[1:], bool), "rectangle", "detected", 0.0,
                     "no moving image found")
    rows, cols = np.flatnonzero(moving.any(1)), np.flatnonzero(moving.any(0))
    region = Region(int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)
    return _Area(region, np.ones((region.height, region.width), bool), "rectangle", "detected", 0.9,
                 "moving rectangle")


def _apply(frames, area):
    r = area.region
    out = np.array(np.asarray(frames)[..., r.top:r.bottom, r.left:r.right], dtype=np.uint8)
    out[..., ~area.keep_mask] = 0
    return out


def _fake_screen_region():
    mod = types.ModuleType("napari_ultramn.io.screen_region")
    mod.ImagingArea, mod.MIN_CONFIDENCE = _Area, 0.5
    mod.detect_imaging_area, mod.area_from_region, mod.apply_imaging_area = _detect, _area_from_region, _apply
    return mod


def _fake_region_corrections():
    mod = types.ModuleType("napari_ultramn.region_corrections")

    def load_corrections(root):
        path = Path(root) / "region_corrections.json"
        data = json.loads(path.read_text())["corrections"] if path.exists() else {}
        return {sha: Region(*c["region"]) for sha, c in data.items()}

    def save_correction(root, sha256, region, note=""):
        path = Path(root) / "region_corrections.json"
        data = json.loads(path.read_text()) if path.exists() else {"corrections": {}}
        data["corrections"][sha256] = {"region": region.as_list(), "note": note}
        path.write_text(json.dumps(data))

    mod.load_corrections, mod.save_correction = load_corrections, save_correction
    return mod


@pytest.fixture(autouse=True)
def contracts(monkeypatch):
    """Real contract modules where present, else the stand-ins; deid's contract-E keywords likewise."""
    for name, fake in (("napari_ultramn.io.screen_region", _fake_screen_region),
                       ("napari_ultramn.region_corrections", _fake_region_corrections)):
        try:
            importlib.import_module(name)
        except ImportError:
            monkeypatch.setitem(sys.modules, name, fake())
    if "frames" not in inspect.signature(deid.deidentify_dataset).parameters:
        plain = deid.deidentify_dataset
        monkeypatch.setattr(deid, "deidentify_dataset",
                            lambda ds, key, participant, days, frames=None, crop_region=None:
                            plain(ds, key, participant, days))
