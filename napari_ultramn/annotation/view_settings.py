"""How one rater likes to see one clip: window/level, nerve outline or filled; cine timing.

Saved per clip and per rater in ``PROJECT/views/<clip_id>/<rater>.json``
(``schemas/view.schema.json``), atomically, so reopening a clip shows it as it was left. Not in
``annotations/<clip_id>/``: every ``*.json`` there is read as a rater's annotation. A view file is
a preference, never data: losing it loses no annotation.

Window/level is the radiology convention: ``width`` is the span of grey values mapped from black
to white, ``level`` its centre; napari's ``contrast_limits`` are ``(level - width/2,
level + width/2)``. A right-drag changes the width horizontally (right = wider, flatter contrast)
and the level vertically (down = higher level, a darker image), 256 px of drag sweeping the whole
data range whatever the zoom.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..schema import read_json, write_json
from .store import check_id

VIEW_FOLDER = "views"
NERVE_DISPLAYS = ("filled", "outline")
#: Frames per second assumed for cine when the clip does not say (a common ultrasound rate).
DEFAULT_FPS = 20.0
#: Playback speeds offered, as multiples of the clip's own rate.
SPEEDS = (0.25, 0.5, 1.0, 2.0)
#: Pixels of drag that sweep the whole data range.
DRAG_PX_PER_RANGE = 256.0
#: Frames sampled for percentile presets: spread over the clip, so every frame gets one setting.
SAMPLE_FRAMES = 16


@dataclass
class ViewSettings:
    """``contrast_limits`` ``(low, high)`` in grey values or ``None`` (the clip's default, full range)."""

    contrast_limits: tuple[float, float] | None = None
    preset: str | None = None  # the preset the limits came from; None once dragged by hand
    nerve_display: str = "filled"

    def to_json(self, clip_id: str, rater: str) -> dict:
        return {
            "format": "ultramn-view",
            "schema_version": 1,
            "clip_id": clip_id,
            "rater": rater,
            "contrast_limits": None if self.contrast_limits is None else [float(v) for v in self.contrast_limits],
            "preset": self.preset,
            "nerve_display": self.nerve_display,
            "saved_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }

    @classmethod
    def from_json(cls, obj: dict, path: str | Path | None = None) -> ViewSettings:
        limits = obj["contrast_limits"]
        if limits is not None and not limits[0] < limits[1]:
            raise InputError(path, f"contrast_limits {limits} must be (low, high) with low < high")
        return cls(
            None if limits is None else (float(limits[0]), float(limits[1])), obj.get("preset"), obj["nerve_display"]
        )


def view_path(project_root: str | Path, clip_id: str, rater: str) -> Path:
    return Path(project_root) / VIEW_FOLDER / check_id("clip", clip_id) / f"{check_id('rater', rater)}.json"


def load_view(project_root: str | Path, clip_id: str, rater: str) -> ViewSettings | None:
    """The saved view, ``None`` if there is none; :class:`InputError` (path + problem) if unreadable."""
    path = view_path(project_root, clip_id, rater)
    if not path.is_file():
        return None
    obj = read_json(path, "view")
    if (obj["clip_id"], obj["rater"]) != (clip_id, rater):
        raise InputError(
            path,
            f"belongs to clip '{obj['clip_id']}' of rater '{obj['rater']}', not clip '{clip_id}' of rater '{rater}'",
        )
    return ViewSettings.from_json(obj, path)


def save_view(project_root: str | Path, clip_id: str, rater: str, settings: ViewSettings) -> Path:
    """Schema-check and write atomically; returns the path."""
    if settings.nerve_display not in NERVE_DISPLAYS:
        raise ValueError(f"nerve_display must be one of {NERVE_DISPLAYS}, got {settings.nerve_display!r}")
    path = view_path(project_root, clip_id, rater)
    write_json(path, settings.to_json(clip_id, rater), "view")
    return path


# -- window / level --------------------------------------------------------------------------------
def limits_to_window(limits: tuple[float, float]) -> tuple[float, float]:
    """``(low, high)`` -> ``(width, level)``."""
    lo, hi = (float(v) for v in limits)
    return hi - lo, (hi + lo) / 2.0


def window_to_limits(width: float, level: float) -> tuple[float, float]:
    """``(width, level)`` -> ``(low, high)``."""
    return level - width / 2.0, level + width / 2.0


def data_range(dtype, sample: np.ndarray | None = None) -> tuple[float, float]:
    """Grey values the clip can hold: the integer type's range, else the sample's."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    if sample is None or not np.isfinite(sample).any():
        return 0.0, 1.0
    lo, hi = float(np.nanmin(sample)), float(np.nanmax(sample))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def drag_window(
    limits: tuple[float, float], dx_px: float, dy_px: float, value_range: tuple[float, float]
) -> tuple[float, float]:
    """New limits after a drag of ``(dx_px, dy_px)`` screen pixels (right/down positive).

    The width stays between 1/256 of the range and twice the range, the level inside the range,
    so no drag can lose the image (limits collapsed or far off the data).
    """
    span = value_range[1] - value_range[0]
    step = span / DRAG_PX_PER_RANGE
    width, level = limits_to_window(limits)
    width = float(np.clip(width + dx_px * step, step, 2 * span))
    level = float(np.clip(level + dy_px * step, *value_range))
    return window_to_limits(width, level)


def _percentiles(lo_pct: float, hi_pct: float) -> Callable:
    def limits(sample: np.ndarray, value_range: tuple[float, float]) -> tuple[float, float]:
        lo, hi = (float(v) for v in np.percentile(sample, (lo_pct, hi_pct)))
        if hi <= lo:  # a flat clip: one grey value, nothing to stretch
            return value_range
        return lo, hi

    return limits


def _fraction(lo_f: float, hi_f: float) -> Callable:
    def limits(_sample: np.ndarray, value_range: tuple[float, float]) -> tuple[float, float]:
        a, b = value_range
        return a + lo_f * (b - a), a + hi_f * (b - a)

    return limits


#: name -> ``f(sample, value_range) -> (low, high)``. The first is the default and the reset.
PRESETS: dict[str, Callable] = {
    "full range": lambda _sample, value_range: value_range,
    "auto (1-99 %)": _percentiles(1, 99),
    # Nerve borders are a bright epineurium against dark fat: a tighter stretch separates them.
    "contrast (5-95 %)": _percentiles(5, 95),
    # Deep or low-gain scans keep the tissue in the lower half of the grey range.
    "dark scan (0-50 %)": _fraction(0.0, 0.5),
}
DEFAULT_PRESET = next(iter(PRESETS))


def sample_frames(frames, n: int = SAMPLE_FRAMES) -> np.ndarray:
    """Up to ``n`` frames evenly spread over a ``(T, H, W)`` array-like (lazy frames decode only those)."""
    total = len(frames)
    idx = np.unique(np.linspace(0, total - 1, min(n, total)).round().astype(int)) if total else np.zeros(0, int)
    return np.stack([np.asarray(frames[int(t)]) for t in idx]) if len(idx) else np.zeros((1, 1, 1))


def preset_limits(name: str, sample: np.ndarray, value_range: tuple[float, float]) -> tuple[float, float]:
    if name not in PRESETS:
        raise ValueError(f"unknown window/level preset {name!r}; choose one of {list(PRESETS)}")
    return PRESETS[name](sample, value_range)


# -- cine -------------------------------------------------------------------------------------------
def cine_fps(frame_time_ms: float | None) -> tuple[float, bool]:
    """``(frames per second, known)`` from the clip's frame time; :data:`DEFAULT_FPS` when unknown."""
    if frame_time_ms is None or not np.isfinite(frame_time_ms) or frame_time_ms <= 0:
        return DEFAULT_FPS, False
    return 1000.0 / float(frame_time_ms), True


def cine_interval_ms(fps: float, speed: float = 1.0) -> int:
    """Timer interval of one frame at ``speed`` times ``fps`` (at least 1 ms)."""
    return max(1, round(1000.0 / (fps * speed)))


def cine_default_range(plane_ranges, non_standard: str, current: int, n_frames: int) -> tuple[int, int]:
    """The loop a person means when they chose none: the non-standard range around ``current``, else the clip.

    ``plane_ranges`` are the annotation's ``PlaneRange`` (``start``, ``stop`` half-open, ``plane``);
    the result is 0-based with both ends included. The last range marked wins, as in the annotation.
    """
    for r in reversed(list(plane_ranges)):
        if r.plane == non_standard and r.start <= current < r.stop:
            return int(r.start), int(r.stop) - 1
    return 0, max(n_frames - 1, 0)


def next_cine_frame(t: int, start: int, stop: int) -> int:
    """The frame after ``t`` looping over ``start..stop`` (0-based, both included)."""
    return start if t < start or t >= stop else t + 1
