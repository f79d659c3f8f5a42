"""The :class:`Clip`: an ultrasound video everything else in the package works on.

Frames are (T, H, W) uint8 grayscale, decoded lazily one frame at a time by a *frame source*
(a callable ``index -> (H, W) uint8``), so opening a 120-frame compressed cine costs one frame's
decode, not 120. ``Clip.frames`` is an array-like (shape, dtype, ndim, ``__getitem__``) that napari
displays directly without decoding the whole clip.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import InputError
from .source_files import file_sha256

#: Where a clip's pixel spacing came from, in order of trust.
SpacingSource = Literal["us_region", "pixel_spacing", "imager_pixel_spacing", "stored", "none"]

FrameReader = Callable[[int], np.ndarray]


@dataclass(frozen=True)
class Region:
    """A rectangle in frame pixels: rows ``[top, bottom)``, columns ``[left, right)``."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left

    def as_list(self) -> list[int]:
        return [self.top, self.left, self.bottom, self.right]


class LazyFrames:
    """Array-like view ``(T, H, W) uint8`` that decodes frames on demand, with a small LRU cache.

    Supports what napari and numpy slicing need: ``shape``, ``dtype``, ``ndim``, ``len``,
    ``__getitem__`` with ints, slices, index arrays and tuples, and ``__array__``.
    """

    def __init__(
        self,
        read_frame: FrameReader,
        n_frames: int,
        frame_shape: tuple[int, int],
        crop: Region | None = None,
        cache_frames: int = 16,
    ):
        self._read = read_frame
        self._n = int(n_frames)
        self._crop = crop
        h, w = frame_shape if crop is None else (crop.height, crop.width)
        self.shape = (self._n, int(h), int(w))
        self.dtype = np.dtype(np.uint8)
        self.ndim = 3
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_frames = cache_frames
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return self._n

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def frame(self, index: int) -> np.ndarray:
        """Decode one frame, ``(H, W) uint8``; negative indices count from the end."""
        if index < 0:
            index += self._n
        if not 0 <= index < self._n:
            raise IndexError(f"frame {index} out of range for a clip of {self._n} frames")
        # napari may slice from a worker thread while a widget reads frames on the main thread;
        # frame sources (a PyAV decoder, an h5py dataset) are not safe to enter twice at once.
        with self._lock:
            cached = self._cache.get(index)
            if cached is not None:
                self._cache.move_to_end(index)
                return cached
            img = np.asarray(self._read(index))
            if self._crop is not None:
                c = self._crop
                img = img[c.top : c.bottom, c.left : c.right]
            img = np.ascontiguousarray(img, dtype=np.uint8)
            img.flags.writeable = False
            self._cache[index] = img
            if len(self._cache) > self._cache_frames:
                self._cache.popitem(last=False)
            return img

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(self._n):
            yield self.frame(i)

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        if key and key[0] is Ellipsis:
            key = (slice(None),) * (3 - (len(key) - 1)) + key[1:]
        t_key, rest = key[0], key[1:]
        if isinstance(t_key, (int, np.integer)):
            return self.frame(int(t_key))[rest] if rest else self.frame(int(t_key))
        indices = np.arange(self._n)[t_key]
        out = np.empty((len(indices), *self.shape[1:]), dtype=np.uint8)
        for j, i in enumerate(indices):
            out[j] = self.frame(int(i))
        return out[(slice(None),) + tuple(rest)] if rest else out

    def __array__(self, dtype=None, copy=None):
        arr = self[:]
        return arr if dtype is None else arr.astype(dtype)


@dataclass
class Clip:
    """One ultrasound clip with the metadata the annotator, datasets and model need.

    Attributes:
        frames: lazy ``(T, H, W) uint8`` grayscale frames.
        spacing_mm: ``(row_mm, col_mm)`` physical size of one pixel, or ``None`` when the file
            has no calibration (measurements are then in pixels and say so).
        spacing_source: where ``spacing_mm`` came from.
        frame_time_ms: time between frames, or ``None`` if unknown.
        imaging_region: the 2D tissue region in the *source* frame, or ``None``. After
            :meth:`cropped` it is the whole (cropped) frame.
        source_path: the file or folder the clip was read from.
        manufacturer, device_model: scanner, where the file says.
        participant, side, plane: pseudonym, 'left'/'right' and plane label where known.
        extra: other non-identifying metadata (e.g. ``sex``, ``age_band``, ``site``).
    """

    frames: LazyFrames
    source_path: Path
    spacing_mm: tuple[float, float] | None = None
    spacing_source: SpacingSource = "none"
    frame_time_ms: float | None = None
    imaging_region: Region | None = None
    manufacturer: str | None = None
    device_model: str | None = None
    participant: str | None = None
    side: str | None = None
    plane: str | None = None
    extra: dict = field(default_factory=dict)
    _sha256: str | None = field(default=None, repr=False)

    # -- shape ---------------------------------------------------------------------------
    @property
    def n_frames(self) -> int:
        return self.frames.shape[0]

    @property
    def frame_shape(self) -> tuple[int, int]:
        return self.frames.shape[1], self.frames.shape[2]

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.frames.shape

    def __len__(self) -> int:
        return self.n_frames

    def frame(self, index: int) -> np.ndarray:
        return self.frames.frame(index)

    def to_array(self) -> np.ndarray:
        """Decode every frame into one ``(T, H, W) uint8`` array."""
        return np.asarray(self.frames)

    @property
    def frame_rate_hz(self) -> float | None:
        return None if not self.frame_time_ms else 1000.0 / self.frame_time_ms

    @property
    def spacing_unit(self) -> str:
        """'mm' when calibrated, 'px' otherwise; measurement tables use this, never guess mm."""
        return "mm" if self.spacing_mm is not None else "px"

    # -- provenance ----------------------------------------------------------------------
    @property
    def sha256(self) -> str:
        """sha256 of the source file (of all files, sorted by name, for a frame folder)."""
        if self._sha256 is None:
            self._sha256 = file_sha256(self.source_path)
        return self._sha256

    # -- crop ----------------------------------------------------------------------------
    def cropped(self, region: Region | None = None) -> Clip:
        """A clip restricted to ``region`` (default: the imaging region), still lazy.

        Cropping to the ultrasound imaging region also drops burned-in text bands (patient
        name, date) that scanners draw outside it.
        """
        region = region or self.imaging_region
        if region is None:
            return self
        h, w = self.frame_shape
        region = Region(max(0, region.top), max(0, region.left), min(h, region.bottom), min(w, region.right))
        if region.height <= 0 or region.width <= 0:
            raise InputError(self.source_path, f"imaging region {region} lies outside the frame")
        frames = self.frames
        parent = frames

        def read(i: int) -> np.ndarray:
            return parent.frame(i)[region.top : region.bottom, region.left : region.right]

        new_frames = LazyFrames(read, frames.shape[0], (region.height, region.width))
        return replace(
            self,
            frames=new_frames,
            imaging_region=Region(0, 0, region.height, region.width),
            extra={**self.extra, "crop_region": region.as_list()},
        )

    def metadata(self) -> dict:
        """JSON-able metadata (napari layer metadata, project registry, HDF5 attributes)."""
        return {
            "source_path": str(self.source_path),
            "n_frames": self.n_frames,
            "frame_shape": list(self.frame_shape),
            "spacing_mm": None if self.spacing_mm is None else [float(s) for s in self.spacing_mm],
            "spacing_source": self.spacing_source,
            "frame_time_ms": self.frame_time_ms,
            "imaging_region": None if self.imaging_region is None else self.imaging_region.as_list(),
            "manufacturer": self.manufacturer,
            "device_model": self.device_model,
            "participant": self.participant,
            "side": self.side,
            "plane": self.plane,
            # keys starting with "_" hold live objects (an open HDF5 file), never metadata
            **{k: v for k, v in self.extra.items() if not str(k).startswith("_")},
        }


def clip_from_array(
    frames: np.ndarray,
    source_path: str | Path = "<array>",
    **metadata,
) -> Clip:
    """Wrap an in-memory ``(T, H, W)`` array (uint8, or anything scaled into it) as a Clip."""
    arr = np.asarray(frames)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"{source_path}: expected frames of shape (T, H, W), got {arr.shape}")
    if arr.dtype != np.uint8:
        arr = to_uint8(arr)
    lazy = LazyFrames(lambda i: arr[i], arr.shape[0], arr.shape[1:])
    return Clip(frames=lazy, source_path=Path(source_path), **metadata)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Scale any numeric image into uint8 (min-max for >8-bit data, clip for floats in [0,1])."""
    img = np.asarray(img)
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.bool_:
        return img.astype(np.uint8) * 255
    if np.issubdtype(img.dtype, np.floating) and img.size and img.min() >= 0 and img.max() <= 1:
        return np.round(img * 255).astype(np.uint8)
    lo, hi = (float(img.min()), float(img.max())) if img.size else (0.0, 1.0)
    if hi <= lo:
        return np.zeros(img.shape, np.uint8)
    return np.round((img.astype(np.float32) - lo) * (255.0 / (hi - lo))).astype(np.uint8)
