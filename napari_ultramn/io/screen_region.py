"""Find the ultrasound imaging area of a screen recording from its pixels, and blank overlays in it.

Screen recordings of portable and cart scanners carry no SequenceOfUltrasoundRegions, and their
screens show the patient's name, ID, date, age and device text around (and over) the image. This
module finds the *imaging area* (a linear rectangle, a convex fan or a phased-array sector) from
spatial cues that hold in a single frame, so frozen clips and single images work:

1. Tissue: B-mode speckle is dense (almost every pixel lit) and textured; text is sparse, bars and
   logos are flat. Per block of a downscaled copy: lit fraction and grey-level spread, smoothed;
   an opening as wide as a text line cuts text, ticks and labels that touch the area away; the
   largest remaining component is the area. Pixels that change over the clip count as tissue too
   (extra evidence, never required).
2. Its outline at full resolution: the lit fraction in a small window, thresholded at half of the
   interior's, inside a band around the coarse component; holes (anechoic vessels) filled.
   A component that fills its bounding box is a rectangle, otherwise a sector.
3. Static overlays inside it (text, calipers, markers), found in the temporal *minimum* of the
   sample (moving speckle fades there, overlays stay) by :mod:`.screen_overlays`; their boxes
   are blanked.

Confidence is low when there is no textured, speckle-like area of a plausible size (a text
screen, a blank frame, white noise); callers refuse such files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..annotation.rle import rle_encode
from ..errors import InputError
from .clip import LazyFrames, Region
from .screen_overlays import static_overlays

#: Below this, :func:`detect_imaging_area` found no imaging area it can vouch for: refuse the file.
MIN_CONFIDENCE = 0.5
#: Frames looked at; more are subsampled evenly (a clip's overlays are static, its tissue moves).
MAX_SAMPLE_FRAMES = 32
#: Grey level above which a pixel is "lit" (screen black plus video-compression noise stays below).
LIT_GREY = 16
SOURCES = ("dicom-regions", "detected", "mapping", "corrected")


@dataclass
class ImagingArea:
    """Where the image is in the source frame, and which of its pixels are kept.

    region: bounding rectangle in source pixel coordinates. keep_mask: ``(region.height,
    region.width) bool``; False pixels (outside a fan, or static overlays) are blanked to 0.
    shape: 'rectangle' or 'sector'. source: how the region was found (see :data:`SOURCES`).
    confidence: 0..1 (1.0 when given rather than detected). reason: one sentence for people.
    """

    region: Region
    keep_mask: np.ndarray
    shape: str
    source: str
    confidence: float
    reason: str

    def blanked_rle(self) -> list[int]:
        return rle_encode(~self.keep_mask)

    def to_record(self) -> dict:
        return {
            "source": self.source,
            "shape": self.shape,
            "region": self.region.as_list(),
            "confidence": round(float(self.confidence), 4),
            "blanked_rle": self.blanked_rle(),
            "blanked_pixels": int((~self.keep_mask).sum()),
        }


def detect_imaging_area(frames: np.ndarray | LazyFrames) -> ImagingArea:
    """Detect the imaging area of ``frames`` ``(T, H, W)`` or ``(H, W)`` uint8 (a sample of the
    clip; more than :data:`MAX_SAMPLE_FRAMES` are subsampled). Always returns; a confidence below
    :data:`MIN_CONFIDENCE` means "no imaging area found, refuse"."""
    stack = _sample(frames)
    h, w = stack.shape[1:]
    hi, lo = stack.max(axis=0), stack.min(axis=0)
    ref = stack[len(stack) // 2]
    scale = _Scale(h, w)
    coarse, tissue = _coarse_area(ref, hi, lo, scale)
    if coarse is None:
        return _refused(h, w, "no area with ultrasound speckle texture found (text, blank or flat screen)")
    area = _outline(hi, coarse, tissue, scale)
    if area.sum() < 0.01 * h * w:
        return _refused(h, w, "the textured area is too small to be an ultrasound image")
    region, shape = _region_and_shape(area)
    sub = area[region.top : region.bottom, region.left : region.right]
    keep = np.ones_like(sub) if shape == "rectangle" else sub.copy()
    keep &= ~_static_only(_overlays_in(lo, region, scale.text_px), hi, lo, region)
    crop = (slice(region.top, region.bottom), slice(region.left, region.right))
    confidence, reason = _confidence(ref[crop], sub, region, h, w, shape)
    return ImagingArea(region, keep, shape, "detected", confidence, reason)


def area_from_region(region: Region, frames: np.ndarray | LazyFrames, source: str) -> ImagingArea:
    """A given rectangle (DICOM regions, the mapping CSV, a correction) as an :class:`ImagingArea`;
    static overlays inside it (calipers, text over the image) are still blanked."""
    if source not in SOURCES:
        raise InputError(None, f"imaging-area source must be one of {SOURCES}, got {source!r}")
    stack = _sample(frames)
    h, w = stack.shape[1:]
    r = Region(max(0, region.top), max(0, region.left), min(h, region.bottom), min(w, region.right))
    if r.height <= 0 or r.width <= 0:
        raise InputError(None, f"region {region.as_list()} lies outside the {h}x{w} frame")
    lo = stack.min(axis=0)
    keep = ~_static_only(_overlays_in(lo, r, _Scale(h, w).text_px), stack.max(axis=0), lo, r)
    return ImagingArea(r, keep, "rectangle", source, 1.0, f"region given by {source}")


def apply_imaging_area(frames: np.ndarray, area: ImagingArea) -> np.ndarray:
    """``(T, h, w) uint8``: ``frames`` cropped to ``area.region`` with blanked pixels set to 0."""
    arr = np.asarray(frames)
    if arr.ndim == 2:
        arr = arr[None]
    _check(arr)
    r = area.region
    if r.bottom > arr.shape[1] or r.right > arr.shape[2]:
        raise InputError(None, f"imaging area {r.as_list()} does not fit frames of shape {arr.shape[1:]}")
    out = arr[:, r.top : r.bottom, r.left : r.right].copy()
    out[:, ~area.keep_mask] = 0
    return out


# -- input -------------------------------------------------------------------------------------
def _check(arr: np.ndarray) -> None:
    if arr.ndim != 3:
        raise InputError(None, f"frames must be (T, H, W) or (H, W), got an array of shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise InputError(None, f"frames must be uint8 grey levels, got dtype {arr.dtype}")
    if 0 in arr.shape:
        raise InputError(None, f"frames are empty (shape {arr.shape})")


def _sample(frames: np.ndarray | LazyFrames) -> np.ndarray:
    shape: tuple[int, ...] = tuple(getattr(frames, "shape", ()))
    if not isinstance(frames, np.ndarray) and len(shape) == 3 and shape[0] > MAX_SAMPLE_FRAMES:
        # a lazy clip (io.clip.LazyFrames): decode only the frames looked at
        frames = frames[np.linspace(0, shape[0] - 1, MAX_SAMPLE_FRAMES).round().astype(int)]
    arr = np.asarray(frames)
    if arr.ndim == 2:
        arr = arr[None]
    _check(arr)
    if len(arr) > MAX_SAMPLE_FRAMES:
        arr = arr[np.linspace(0, len(arr) - 1, MAX_SAMPLE_FRAMES).round().astype(int)]
    return arr


class _Scale:
    """Sizes that follow the screen: scanner UIs scale text with the screen, not with the image."""

    def __init__(self, h: int, w: int):
        self.block = max(3, math.ceil(max(h, w) / 320))  # coarse maps are at most ~320 wide
        self.text_px = max(6.0, 0.035 * min(h, w))  # about one text line's height
        self.smooth_blocks = max(3, round(0.02 * min(h, w) / self.block))
        self.open_blocks = max(2, round(self.text_px / self.block))


def _refused(h: int, w: int, reason: str) -> ImagingArea:
    return ImagingArea(Region(0, 0, h, w), np.ones((h, w), bool), "rectangle", "detected", 0.0, reason)


# -- 1. coarse tissue component ----------------------------------------------------------------
def _block_mean(img: np.ndarray, b: int) -> np.ndarray:
    """Mean over ``b x b`` blocks (zero-padded at the bottom and right edges)."""
    h, w = img.shape
    hb, wb = -(-h // b), -(-w // b)
    pad = np.zeros((hb * b, wb * b), np.float32)
    pad[:h, :w] = img
    # two sums over contiguous axes: much faster than one mean over axes (1, 3)
    rows = pad.reshape(hb, b, wb * b).sum(axis=1)
    return rows.reshape(hb, wb, b).sum(axis=2) / np.float32(b * b)


def _coarse_area(ref, hi, lo, scale: _Scale):
    """The largest dense, textured component on the block grid, or None; and the tissue map."""
    from scipy import ndimage as ndi
    from skimage.morphology import disk

    b = scale.block
    lit = _block_mean(hi > LIT_GREY, b)
    moving = _block_mean((hi.astype(np.int16) - lo) > 2 * LIT_GREY, b)
    ref_f = ref.astype(np.float32)
    # within a block a flat bar or logo has almost no spread; a block of speckle has plenty
    spread = np.sqrt(np.maximum(_block_mean(ref_f * ref_f, b) - _block_mean(ref_f, b) ** 2, 0))
    k = scale.smooth_blocks
    lit, spread, moving = (ndi.uniform_filter(a, k) for a in (lit, spread, moving))
    tissue = ((lit > 0.6) & (spread > 6.0)) | ((moving > 0.5) & (lit > 0.4))
    opened = ndi.binary_opening(tissue, disk(scale.open_blocks))
    labels, n = ndi.label(opened)
    if n == 0:
        return None, tissue
    sizes = np.bincount(labels.ravel())[1:]
    best = labels == 1 + int(np.argmax(sizes))
    return _fill_holes(best), tissue


# -- 2. outline at full resolution -------------------------------------------------------------
def _outline(hi: np.ndarray, coarse: np.ndarray, tissue: np.ndarray, scale: _Scale) -> np.ndarray:
    """Full-resolution area mask: lit density above half the interior's, near the coarse area."""
    from scipy import ndimage as ndi
    from skimage.morphology import disk

    b, h, w = scale.block, *hi.shape
    band = ndi.binary_dilation(coarse, disk(scale.open_blocks + 1)) & (tissue | coarse)
    band = ndi.binary_dilation(band, iterations=1)
    rows, cols = np.nonzero(band)
    t0, l0 = rows.min() * b, cols.min() * b
    t1, l1 = min(h, (rows.max() + 1) * b), min(w, (cols.max() + 1) * b)
    up = np.repeat(np.repeat(band, b, axis=0), b, axis=1)[t0:t1, l0:l1]
    inner = ndi.binary_erosion(coarse, iterations=2)
    inner = inner if inner.any() else coarse
    core = np.repeat(np.repeat(inner, b, 0), b, 1)[t0:t1, l0:l1]
    win = max(3, 2 * round(scale.text_px / 6) + 1)
    density = ndi.uniform_filter((hi[t0:t1, l0:l1] > LIT_GREY).astype(np.float32), win)
    interior = float(np.median(density[core])) if core.any() else 1.0
    fine = (density > 0.5 * interior) & up
    labels, _ = ndi.label(fine)
    touching = np.unique(labels[core & fine])
    fine = np.isin(labels, touching[touching > 0])
    fine = _fill_columns(_fill_holes(fine))
    out = np.zeros((h, w), bool)
    out[t0:t1, l0:l1] = fine
    return out


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """``binary_fill_holes`` by labelling the background once (it dilates until nothing changes,
    which is slow on full-resolution masks): background parts that miss the border are holes."""
    from scipy import ndimage as ndi

    labels, n = ndi.label(~mask)
    if n == 0:
        return mask.copy()
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    hole = np.ones(n + 1, bool)
    hole[border] = False
    hole[0] = False
    return mask | hole[labels]


def _fill_columns(mask: np.ndarray) -> np.ndarray:
    """Fill each column between its first and last pixel: rectangles, fans and sectors are all
    convex along image columns, so a dark vessel at the area's edge does not bite into it."""
    any_col = mask.any(axis=0)
    first = np.argmax(mask, axis=0)
    last = mask.shape[0] - 1 - np.argmax(mask[::-1], axis=0)
    rows = np.arange(mask.shape[0])[:, None]
    return (rows >= first) & (rows <= last) & any_col


def _region_and_shape(area: np.ndarray) -> tuple[Region, str]:
    """Bounding box; 'rectangle' when the area fills its core box (rows and columns that are at
    least half full), which ignores a few glyph pixels that stuck to its edge."""
    rows, cols = area.sum(axis=1), area.sum(axis=0)
    r_any, c_any = np.flatnonzero(rows), np.flatnonzero(cols)
    full = Region(int(r_any[0]), int(c_any[0]), int(r_any[-1]) + 1, int(c_any[-1]) + 1)
    r_core = np.flatnonzero(rows >= 0.5 * rows.max())
    c_core = np.flatnonzero(cols >= 0.5 * cols.max())
    core = Region(int(r_core[0]), int(c_core[0]), int(r_core[-1]) + 1, int(c_core[-1]) + 1)
    inside = area[core.top : core.bottom, core.left : core.right]
    fill = float(inside.mean())
    outside = 1.0 - inside.sum() / max(1, area.sum())
    if fill > 0.97 and outside < 0.02:
        return core, "rectangle"
    return full, "sector"


# -- 3. static overlays inside the area --------------------------------------------------------
def _overlays_in(lo: np.ndarray, region: Region, text_px: float) -> np.ndarray:
    """:func:`static_overlays` of ``region``, looked for with a margin of context around it, so
    a caliper or label that crosses the region's edge is still seen as strokes (they are judged
    2 px to either side); a wider margin would let a depth scale beside the region join them."""
    m = 3
    t, l = max(0, region.top - m), max(0, region.left - m)  # noqa: E741
    found = static_overlays(lo[t : region.bottom + m, l : region.right + m], text_px)
    return found[region.top - t : region.top - t + region.height, region.left - l : region.left - l + region.width]


#: A burned-in overlay's bright pixels vary over a clip only by video compression's ringing: the
#: steadiest quarter of them by at most this many grey levels, or this share of what the imaging
#: area's tissue pixels vary by (H.264 text and calipers over moving speckle: 12-25 levels, at
#: most ~0.3 of the tissue's; bright tissue the overlay finder took for strokes in 48 phantom
#: cines: 42 levels and 0.47 of the tissue's at the least).
OVERLAY_MAX_CHANGE = 12
OVERLAY_MAX_CHANGE_SHARE = 0.4


def _static_only(found: np.ndarray, hi: np.ndarray, lo: np.ndarray, region: Region) -> np.ndarray:
    """Drop candidate overlays whose bright pixels change over a moving clip: they are tissue
    (fascia, bone, an epineurium) that stays bright in the temporal minimum, not something drawn
    on the screen, and blanking them would cut anatomy. A frozen clip or a single image has no
    change to judge by, so there the spatial cues alone decide."""
    from scipy import ndimage as ndi

    crop = (slice(region.top, region.bottom), slice(region.left, region.right))
    change, bright = (hi[crop].astype(np.int16) - lo[crop]), lo[crop] >= 120
    tissue = hi[crop] >= 60  # not the black corners of a fan, which never change
    if not found.any() or not tissue.any() or np.median(change[tissue]) <= OVERLAY_MAX_CHANGE:
        return found  # frozen or single frame
    limit = max(OVERLAY_MAX_CHANGE, OVERLAY_MAX_CHANGE_SHARE * float(np.median(change[tissue])))
    out = found.copy()
    labels, _ = ndi.label(found)
    for i, box in enumerate(ndi.find_objects(labels), 1):
        ink = (labels[box] == i) & bright[box]
        if ink.any() and np.percentile(change[box][ink], 25) > limit:
            out[box][labels[box] == i] = False
    return out


# -- confidence --------------------------------------------------------------------------------
def _confidence(ref, area, region: Region, h: int, w: int, shape: str) -> tuple[float, str]:
    """Plausible size, and speckle (not white noise): neighbouring pixels are correlated."""
    frac = area.sum() / (h * w)
    size_score = float(np.clip((frac - 0.02) / 0.06, 0, 1))
    vals = ref.astype(np.float32)
    pair_r = area[1:, :] & area[:-1, :]
    pair_c = area[:, 1:] & area[:, :-1]
    corr = min(_corr(vals[1:, :][pair_r], vals[:-1, :][pair_r]), _corr(vals[:, 1:][pair_c], vals[:, :-1][pair_c]))
    speckle_score = float(np.clip((corr - 0.25) / 0.25, 0, 1))
    confidence = size_score * speckle_score
    kind = "rectangle" if shape == "rectangle" else "fan/sector"
    if speckle_score < 1:
        reason = f"textured area looks like noise, not speckle (neighbour correlation {corr:.2f})"
    elif size_score < 1:
        reason = f"textured area covers only {100 * frac:.1f}% of the frame"
    else:
        reason = f"{kind} of speckle texture, {region.height}x{region.width} px at ({region.top}, {region.left})"
    return confidence, reason


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 16 or a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])
