"""Perceptual clip fingerprints: the same patient under two pseudonyms, found by what the clip shows.

The registry can only tell participants apart by their pseudonym. A clip copied under another
patient id - re-exported, re-encoded, brightened, nudged by a pixel, cropped or mirrored - is a
different file to every exact check, and build-dataset would put the copy in another split: a
participant leak between train and test. The fingerprint catches those copies.

What it is
----------
``FRAMES`` frames at fixed *relative* positions in the clip (frame ``int((k + 0.5) * T / K)``).
Each frame is seen through the :data:`WINDOWS` (the whole frame; its central 95 % and 90 %; and
those two moved by 1.25 % up, down, left and right), and each window is reduced to a DCT
perceptual hash (pHash):

1. area-averaged down to ``SIZE x SIZE`` (32 x 32: every source pixel weighs in, so speckle, JPEG
   blocks and codec noise average out), pixels weighted by how much they change over the sampled
   frames (:func:`live_weight`): the static outside of a sector, overlays and borders, shared by
   every clip of a scanner, are filled from the tissue next to them instead of being hashed;
2. the 2-D DCT-II of that, the lowest ``BLOCK x BLOCK`` frequencies (12 x 12: the layout of tissue
   layers, bones, the nerve) without the DC term: 143 coefficients;
3. one bit per coefficient: its sign. The DC term is dropped and a positive gain changes no sign,
   so the hash ignores brightness offsets and contrast gain without normalising anything.
   Thresholding at 0 rather than at the median (classic pHash) is what makes mirroring free:
   flipping an image left-right multiplies DCT coefficient ``(u, v)`` by ``(-1)**v``, so the
   mirror's hash is the hash XOR :data:`MIRROR_MASK`, and one stored hash answers both sides.

Distance of two clips = the minimum, over every pairing of a window of one with a window of the
other and over {as is, mirrored}, of the mean over matched frames of the fraction of differing
bits: 0 for identical content, ~0.5 for unrelated images. The pairings are what make crops and
shifts match: a copy cropped by 5 % lines up with the original's 90 % window, one shifted by 3 px
with a moved window. (The window set is mirror-closed - every left move has its right move - so
the XOR mirror of a window's hash is the hash of another window of the mirrored frame, and the
minimum over all pairings is exact.) Frames too uniform to hash (blank, probe off the skin) are
written ``-`` and skipped.

Why these choices (``benchmarks/bench_duplicates.py``, 12-participant phantom study, 96 clips):
with 8 x 8 coefficients (classic pHash) and the whole frame only, distinct participants'
same-plane clips came as close as 0.145 - the anatomy's coarse layout is shared - while a 5 %
crop moved a copy to 0.28. 12 x 12 and the 11 windows put every copy (+1, gain, 1-3 px shift,
2-5 % crop, JPEG 75, H.264, mirror) at <= 0.085 and distinct participants at >= 0.19 (0.165
with 24 participants: the closest unrelated pair creeps down as pairs multiply); with every
clip blanked outside one shared fan (``--sector``) copies stay <= 0.095 and distinct participants
>= 0.177 (without the live weighting the shared fan brought them to 0.099).
:data:`DUPLICATE_DISTANCE` = 0.14 sits about midway: a missed copy is a
leak, but a false pair is not harmless either (it merges two participants' split assignment, and
``refuse_duplicates`` would stop the build).

Why numpy/scipy and not ``imagehash``: the hash is a few lines on ``scipy.fft.dctn`` (already a
dependency); ``imagehash`` thresholds at the median (no mirror by XOR), has no crop or shift
windows, works on PIL images one at a time and would add PyWavelets for nothing we use.

String form (``clip_fingerprint``'s return, the clip record's ``fingerprint``, ~2 kB):
``"phash3:" + ",".join(per frame: "-" or URL-safe base64 of the window hashes)``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from napari_ultramn.errors import InputError

VERSION = "phash3"
#: frames hashed per clip, at relative positions (k + 0.5) / FRAMES
FRAMES = 8
_STEP = 0.0125
#: (fraction of height and width kept, centre offset down, centre offset right), fractions of the frame
WINDOWS = (
    (1.0, 0.0, 0.0),
    *(
        (keep, dy, dx)
        for keep in (0.95, 0.90)
        for dy, dx in ((0.0, 0.0), (-_STEP, 0.0), (_STEP, 0.0), (0.0, -_STEP), (0.0, _STEP))
    ),
)
#: side of the downscaled image the DCT is taken of
SIZE = 32
#: low-frequency block kept (BLOCK x BLOCK coefficients minus DC)
BLOCK = 12
#: clips closer than this (mean fraction of differing bits) are "likely the same recording"
DUPLICATE_DISTANCE = 0.14
#: a window whose downscaled image has a standard deviation below this (grey levels) is not hashed
MIN_FRAME_STD = 1.0
#: a pixel counts fully once its range over the sampled frames reaches this fraction of the clip's
#: 98th-percentile range (see :func:`live_weight`)
LIVE_FRACTION = 0.3
#: width (in cells of the SIZE x SIZE grid) of the neighbourhood that fills static regions
FILL_SIGMA = 3.0

_USED = np.ones((BLOCK, BLOCK), bool)
_USED[0, 0] = False
BITS = int(_USED.sum())
_BYTES = (BITS + 7) // 8
#: the bits of coefficients with an odd horizontal frequency: they change sign under a left-right mirror
MIRROR_MASK = np.packbits(np.broadcast_to(np.arange(BLOCK) % 2 == 1, (BLOCK, BLOCK))[_USED])
_MIRROR_SIGNS = np.tile(np.where(np.unpackbits(MIRROR_MASK)[:BITS] == 1, -1.0, 1.0).astype(np.float32), FRAMES)


@dataclass(frozen=True)
class DuplicatePair:
    """Two clips of different participants whose content is near-identical."""

    clip_a: str
    clip_b: str
    participant_a: str
    participant_b: str
    distance: float


def _cell_means(integral: np.ndarray, top: float, left: float, bottom: float, right: float) -> np.ndarray:
    """``(SIZE, SIZE)`` mean grey level of each cell of a grid over the window, fractional pixels
    weighted (exact area resampling: every source pixel weighs in, no aliasing).

    ``integral`` is the ``(H + 1, W + 1)`` integral image; it is bilinear inside each pixel, so
    bilinear interpolation at the cell corners is exact. Pure numpy on one integral image per frame:
    the matrix-product version was slower, and several times slower again when BLAS threads fight
    over a busy machine.
    """

    def corners(lo, hi, n):
        at = np.linspace(lo, hi, SIZE + 1)
        base = np.minimum(at.astype(int), n - 1)
        return base, at - base

    (y, fy), (x, fx) = corners(top, bottom, integral.shape[0] - 1), corners(left, right, integral.shape[1] - 1)
    fy, fx = fy[:, None], fx[None, :]
    at = (
        (1 - fy) * (1 - fx) * integral[np.ix_(y, x)]
        + fy * (1 - fx) * integral[np.ix_(y + 1, x)]
        + (1 - fy) * fx * integral[np.ix_(y, x + 1)]
        + fy * fx * integral[np.ix_(y + 1, x + 1)]
    )
    return np.diff(np.diff(at, axis=0), axis=1) / ((bottom - top) * (right - left) / SIZE**2)


def _hash(small: np.ndarray) -> bytes | None:
    """The sign-of-DCT hash (``BITS`` bits, packed) of a ``(SIZE, SIZE)`` image; None when too uniform."""
    from scipy.fft import dctn

    if small.std() < MIN_FRAME_STD:
        return None
    coeffs = dctn(small - small.mean(), norm="ortho")[:BLOCK, :BLOCK][_USED]
    return np.packbits(coeffs > 0).tobytes()


def _integral(image: np.ndarray) -> np.ndarray:
    out = np.zeros((image.shape[0] + 1, image.shape[1] + 1))
    out[1:, 1:] = image.cumsum(1).cumsum(0)
    return out


def live_weight(sample: np.ndarray) -> np.ndarray:
    """``(H, W)`` in [0, 1]: how much each pixel changes over the sampled frames ``(K, H, W)``.

    Pixels that never change are not anatomy: the blanked outside of a sector (fan), static
    overlays, a black border. Every clip of one scanner preset shares them, and hashing them would
    make different patients look alike. Weight = temporal range / (0.3 x its 98th percentile), clipped: relative, so
    gain and offset do not change it; soft, so codec noise near a fan edge moves it a little, not
    across a threshold. With fewer than 3 frames, or nothing that changes, every pixel counts.
    """
    rng = sample.max(axis=0).astype(np.float64) - sample.min(axis=0)
    scale = LIVE_FRACTION * np.percentile(rng, 98)
    if len(sample) < 3 or scale <= 0:
        return np.ones(rng.shape)
    return np.clip(rng / scale, 0.0, 1.0)


def _fill_dead(values: np.ndarray, weight: np.ndarray) -> np.ndarray | None:
    """``(SIZE, SIZE)`` image from cell sums of weighted pixels ``values`` and cell weights: the
    dead share of each cell takes the local live brightness (normalised convolution, a wide
    Gaussian), so a static region continues the tissue next to it instead of drawing its outline.
    Continuous in the weights (no threshold), so codec noise at a fan edge moves it little."""
    from scipy.ndimage import gaussian_filter

    if weight.mean() < 0.1:
        return None
    near = gaussian_filter(weight, FILL_SIGMA, mode="reflect")
    fill = np.where(
        near > 1e-3,
        gaussian_filter(values, FILL_SIGMA, mode="reflect") / np.maximum(near, 1e-3),
        values.sum() / weight.sum(),
    )
    return values + (1.0 - weight) * fill


def frame_hashes(frame: np.ndarray, weight: np.ndarray | None = None) -> bytes | None:
    """The hashes of an ``(H, W)`` frame through every window, concatenated (``_BYTES`` each, in
    :data:`WINDOWS` order); None when the frame is too uniform (or too static) to hash.

    ``weight`` (:func:`live_weight`, default all 1): how much each pixel counts."""
    f = np.asarray(frame, np.float64)
    if f.ndim != 2 or min(f.shape) < 2:
        raise InputError(None, f"a frame must be a 2-D image of at least 2x2 pixels, got shape {f.shape}")
    h, w = f.shape
    weight = np.ones(f.shape) if weight is None else weight
    sums, weights = _integral(f * weight), _integral(weight)
    out = []
    for keep, dy, dx in WINDOWS:
        # equal margins keep the window centred on its offset; moved windows stay inside the frame
        top, left = ((1 - keep) / 2 + dy) * h, ((1 - keep) / 2 + dx) * w
        box = (top, left, top + keep * h, left + keep * w)
        small = _fill_dead(_cell_means(sums, *box), _cell_means(weights, *box))
        digest = None if small is None else _hash(small)
        if digest is None:
            return None
        out.append(digest)
    return b"".join(out)


def sample_indices(n_frames: int) -> list[int]:
    """The frames hashed: ``FRAMES`` at relative positions, fewer when the clip is shorter."""
    k = min(FRAMES, n_frames)
    return sorted({min(n_frames - 1, int((i + 0.5) * n_frames / k)) for i in range(k)})


def clip_fingerprint(frames) -> str:
    """Fingerprint of a ``(T, H, W)`` clip: numpy array or any lazy array-like (only the sampled
    frames are read, so a project clip file costs ``FRAMES`` frame reads)."""
    shape = getattr(frames, "shape", None)
    if shape is None or len(shape) != 3 or shape[0] < 1:
        raise InputError(None, f"frames must be (T, H, W) with T >= 1, got shape {shape}")
    sample = np.stack([np.asarray(frames[i]) for i in sample_indices(int(shape[0]))])
    weight = live_weight(sample)
    tokens = []
    for frame in sample:
        digest = frame_hashes(frame, weight)
        tokens.append("-" if digest is None else base64.urlsafe_b64encode(digest).decode().rstrip("="))
    return f"{VERSION}:" + ",".join(tokens)


def parse_fingerprint(text: str) -> tuple[np.ndarray, np.ndarray]:
    """``(signs (len(WINDOWS), FRAMES * BITS) float32, hashed (FRAMES,) bool)``: each window's bits
    of all frames as +-1 (0 for a frame not hashed), the form :func:`distance_matrix` multiplies.

    Clips shorter than ``FRAMES`` have their hashes spread over the ``FRAMES`` relative slots so
    that any two fingerprints compare slot by slot.
    """
    version, _, body = str(text).partition(":")
    tokens = body.split(",") if body else []
    if version != VERSION or not tokens:
        raise InputError(None, f"not a {VERSION} fingerprint: {str(text)[:40]!r}")
    size = len(WINDOWS) * _BYTES
    signs = np.zeros((len(WINDOWS), FRAMES, BITS), np.float32)
    hashed = np.zeros(FRAMES, bool)
    for slot in range(FRAMES):
        token = tokens[min(len(tokens) - 1, slot * len(tokens) // FRAMES)]
        if token == "-":
            continue
        try:
            digest = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except ValueError:
            digest = b""
        if len(digest) != size:
            raise InputError(None, f"not a {VERSION} fingerprint: bad frame hash {token[:40]!r}")
        bits = np.unpackbits(np.frombuffer(digest, np.uint8).reshape(len(WINDOWS), _BYTES), axis=1)[:, :BITS]
        signs[:, slot] = 2.0 * bits - 1.0
        hashed[slot] = True
    return signs.reshape(len(WINDOWS), FRAMES * BITS), hashed


def distance_matrix(
    prints: list[tuple[np.ndarray, np.ndarray]], others: list[tuple[np.ndarray, np.ndarray]] | None = None
) -> np.ndarray:
    """``(N, M)`` clip distances between parsed fingerprints (see module docstring); 1.0 where two
    clips have no hashed frame in common.

    With bits as +-1 (0 for frames not hashed), the differing bits of two hashes over the frames
    both have are ``(BITS * n_common - dot) / 2``, so every window pairing of every clip pair,
    as is and mirrored, is one matrix product (float32 is exact for these integer sums): ~100x
    fewer operations than XOR and popcount pairing by pairing.
    """
    others = prints if others is None else others
    n_win = len(WINDOWS)
    b = np.concatenate([s for s, _ in others])  # (M * W, K * BITS)
    b_valid = np.stack([v for _, v in others]).astype(np.float32)
    out = np.empty((len(prints), len(others)))
    chunk = max(1, 2_000_000 // max(1, b.shape[0] * n_win))  # rows at a time: dots stay ~16 MB
    for start in range(0, len(prints), chunk):
        rows = prints[start : start + chunk]
        a = np.concatenate([s for s, _ in rows])
        dots = np.stack([a @ b.T, (a * _MIRROR_SIGNS) @ b.T])  # (2, n * W, M * W)
        best = dots.reshape(2, len(rows), n_win, len(others), n_win).max(axis=(0, 2, 4)).astype(np.float64)
        common = (np.stack([v for _, v in rows]).astype(np.float32) @ b_valid.T).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            dist = (BITS * common - best) / (2 * BITS * common)
        out[start : start + len(rows)] = np.where(common > 0, dist, 1.0)
    return out


def fingerprint_distance(a: str, b: str) -> float:
    """Distance of two fingerprint strings: 0 same content, ~0.5 unrelated."""
    return float(distance_matrix([parse_fingerprint(a)], [parse_fingerprint(b)])[0, 0])


def with_fingerprints(records: Iterable[dict], project=None) -> list[dict]:
    """Copies of ``records`` each with a current ``fingerprint`` where one can be had.

    Records of existing projects that lack one (or hold an older version) get it from the project
    clip file (``project`` needed then; the registry is not written). A clip whose file cannot be
    read is left without: it cannot be compared, and build-dataset excludes it anyway.
    """
    out = []
    for rec in records:
        if not str(rec.get("fingerprint") or "").startswith(f"{VERSION}:"):
            if project is None:
                raise InputError(None, f"clip {rec.get('clip_id')} has no fingerprint and no project to read it from")
            try:
                rec = {**rec, "fingerprint": clip_fingerprint(project.open_clip(rec["clip_id"]).frames)}
            except (OSError, ValueError, KeyError):  # InputError is a ValueError; h5py raises OSError/KeyError
                rec = {k: v for k, v in rec.items() if k != "fingerprint"}
        out.append(rec)
    return out


def likely_duplicate_pairs(
    records: Iterable[dict], project=None, threshold: float = DUPLICATE_DISTANCE, involving: set[str] | None = None
) -> list[DuplicatePair]:
    """Pairs of clips of *different* participants closer than ``threshold``, closest first.

    ``records`` are clip records (``clip_id``, ``participant``, ``fingerprint``); those without a
    fingerprint are computed from ``project`` (see :func:`with_fingerprints`). With ``involving``
    (clip ids), only pairs with at least one of those clips: their rows against every clip, so an
    ingest that adds k clips to a cohort of N compares k x N, not N x N.
    """
    recs = [r for r in with_fingerprints(records, project) if r.get("fingerprint")]
    prints = [parse_fingerprint(r["fingerprint"]) for r in recs]
    participants = np.array([str(r["participant"]) for r in recs])
    if involving is None:
        rows = list(range(len(recs)))
    else:
        rows = [i for i, r in enumerate(recs) if r["clip_id"] in involving]
    chosen = np.zeros(len(recs), bool)
    chosen[rows] = True
    pairs = []
    for start in range(0, len(rows), 64):  # a block of rows at a time: memory stays O(N)
        block = rows[start : start + 64]
        d = distance_matrix([prints[i] for i in block], prints)
        for k, j in zip(*np.nonzero(d < threshold)):
            i, j, distance = block[int(k)], int(j), float(d[k, j])
            # each pair once: from its lower row when both rows are computed
            if i != j and (j > i or not chosen[j]) and participants[i] != participants[j]:
                a, b = recs[min(i, j)], recs[max(i, j)]
                pairs.append(
                    DuplicatePair(
                        a["clip_id"], b["clip_id"], str(a["participant"]), str(b["participant"]), round(distance, 4)
                    )
                )
    return sorted(pairs, key=lambda p: (p.distance, p.clip_a, p.clip_b))
