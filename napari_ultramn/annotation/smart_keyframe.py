"""Smart keyframe: a click inside the nerve gives a mask proposal for that frame (issue 14).

:func:`propose_mask` turns one or more positive clicks (and optional negative ones) into a nerve
mask. It works in a window around the clicks, resampled to a fixed physical pixel size, so the
time hardly grows with the frame size (tens of ms per proposal up to 600x800 on a busy 2-core
machine; ``benchmarks/bench_smart_keyframe.py``).

The method is a closed-contour search in polar coordinates around the clicks (a "live wire"
on a ring): the median nerve's epineurium is a bright rim around a hypoechoic, fascicular
interior, so along every ray from the click the boundary is a bright ridge. Dynamic programming
picks, over all rays, the smooth closed path of radii that collects the most ridge strength;
interior septa and speckle are short and broken, so only the rim forms a closed path. Clicks are
hard constraints: the contour passes beyond every positive click and stops before every
negative one. The window border counts as a weak boundary so a nerve that leaves the window (a
longitudinal band) is cut there rather than collapsing onto speckle; more positive clicks along
the band widen the window. A star-shaped contour whose radius changes by a bounded step from
ray to ray cannot follow a long flat band, so the search also runs on rays stretched 3x
laterally (:data:`STRETCHES`; a band then looks round) and keeps the contour whose rays collect
the more rim per ray.

With a model's nerve probability map (``prior``, e.g. :func:`model_prior`), the prior's outward
fall adds to the ridge score, so the contour follows the model where the image is ambiguous and
the image where the model is coarse; and the model's nerve under the clicks (p >= 0.5, its
connected component, less the part nearer a negative click) is kept beyond the window, where the
rays cannot reach (a longitudinal band runs across the whole frame).

Tuned on phantom clips; measured figures are in the benchmark's output. One click does well on
transverse (oval) nerves; a longitudinal band needs clicks along it, or a model.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi
from skimage.draw import polygon as draw_polygon
from skimage.transform import resize

#: Half-size of the search window beyond the clicks: a transverse median nerve is up to ~12 mm
#: wide at the wrist, so 7 mm each side of a central click holds it with room for its rim.
WINDOW_HALF_MM = 7.0
#: Physical size of a working pixel: fine enough for a ~0.3 mm rim, coarse enough to average speckle.
WORK_PX_MM = 0.15
#: Without calibration, assume the frame spans this many mm across its width (a linear probe's
#: field of view is 25-50 mm), which sizes the window as a fraction of the frame.
ASSUMED_WIDTH_MM = 30.0
#: Tuned on phantom clips (``benchmarks/bench_smart_keyframe.py``).
SMOOTH_MM = 0.15  # speckle smoothing (one working pixel at full resolution)
RIDGE_MM = 0.45  # distance either side of a point a ridge must stand above
MIN_RADIUS_MM = 0.8  # the rim is never closer than this to the click (skips fascicles)
RIM_OUT_MM = 0.2  # masks include the epineurial rim: move the contour out by its half width
EDGE_SCORE = 0.3  # ridge strength (in std units) credited to the window border
MAX_BORDER_SHARE = 0.5  # share of rays ending on the window border beyond which nothing was found
STRETCHES = (1.0, 3.0)  # lateral stretch of the rays: round and flat/elongated nerves
PRIOR_WEIGHT = 3.0  # ridge-score units per unit fall of the model's probability
N_ANGLES = 72
MAX_STEP = 2  # working pixels the radius may change between neighbouring rays
_FORBIDDEN = -1e3


def _check_points(points, shape, what: str) -> np.ndarray:
    pts = np.asarray(list(points), dtype=float).reshape(-1, 2) if len(points) else np.zeros((0, 2))
    if not np.all(np.isfinite(pts)):
        raise ValueError(f"{what} clicks must be finite (row, col) pixel positions, got {pts.tolist()}")
    bad = (pts[:, 0] < 0) | (pts[:, 0] > shape[0] - 1) | (pts[:, 1] < 0) | (pts[:, 1] > shape[1] - 1)
    if bad.any():
        raise ValueError(
            f"{what} click {tuple(pts[bad][0].tolist())} is outside the frame of {shape[0]}x{shape[1]} pixels"
        )
    return pts


def _check_input(frame, positive, negative, prior, spacing_mm):
    frame = np.asarray(frame)
    if frame.ndim != 2 or min(frame.shape, default=0) < 2:
        raise ValueError(f"frame must be a 2D (H, W) image, got shape {frame.shape}")
    if not (np.issubdtype(frame.dtype, np.integer) or np.issubdtype(frame.dtype, np.floating)):
        raise ValueError(f"frame must hold numbers (uint8 or float), got dtype {frame.dtype}")
    pos = _check_points(positive, frame.shape, "positive")
    if len(pos) == 0:
        raise ValueError("propose_mask needs at least one positive click inside the nerve")
    neg = _check_points(negative, frame.shape, "negative")
    if prior is not None:
        prior = np.asarray(prior, dtype=np.float32)
        if prior.shape != frame.shape:
            raise ValueError(f"prior of shape {prior.shape} does not match the frame's {frame.shape}")
        prior = np.nan_to_num(prior, nan=0.0).clip(0.0, 1.0)
    if spacing_mm is not None:
        spacing_mm = tuple(float(s) for s in spacing_mm)
        if len(spacing_mm) != 2 or not all(np.isfinite(s) and s > 0 for s in spacing_mm):
            raise ValueError(f"spacing_mm must be two positive (row_mm, col_mm) values, got {spacing_mm}")
    return frame, pos, neg, prior, spacing_mm


def propose_mask(
    frame: np.ndarray,
    positive: Sequence[tuple[int, int]],
    negative: Sequence[tuple[int, int]] = (),
    *,
    prior: np.ndarray | None = None,
    spacing_mm: tuple[float, float] | None = None,
) -> np.ndarray:
    """A nerve mask ``(H, W) bool`` for ``frame`` from clicks inside (``positive``) and outside it.

    ``frame``: ``(H, W)`` uint8 or float image. Clicks are ``(row, col)`` pixel positions.
    ``prior``: optional ``(H, W)`` nerve probability in [0, 1] from a model. ``spacing_mm``:
    ``(row_mm, col_mm)``; without it the frame is assumed :data:`ASSUMED_WIDTH_MM` wide.
    Returns an empty mask (never raises) for a positive click on the frame's edge or in a flat
    (featureless) region; raises ``ValueError`` for a bad frame, prior, spacing or a click
    outside the frame.
    """
    frame, pos, neg, prior, spacing_mm = _check_input(frame, positive, negative, prior, spacing_mm)
    h, w = frame.shape
    empty = np.zeros((h, w), dtype=bool)
    on_edge = (pos[:, 0] < 1) | (pos[:, 0] > h - 2) | (pos[:, 1] < 1) | (pos[:, 1] > w - 2)
    if on_edge.any():
        return empty
    if spacing_mm is None:
        spacing_mm = (ASSUMED_WIDTH_MM / w, ASSUMED_WIDTH_MM / w)
    half = np.array([WINDOW_HALF_MM / spacing_mm[0], WINDOW_HALF_MM / spacing_mm[1]])
    lo = np.maximum(np.floor(pos.min(0) - half), 0).astype(int)
    hi = np.minimum(np.ceil(pos.max(0) + half) + 1, (h, w)).astype(int)
    model_nerve = None
    if prior is not None:
        model_nerve = _prior_component(prior, pos, neg)
    window = frame[lo[0] : hi[0], lo[1] : hi[1]].astype(np.float32)
    if frame.dtype == np.uint8:
        window /= 255.0
    # Resample to WORK_PX_MM pixels (never upsample): the cost is now set by millimetres.
    factor = np.maximum(WORK_PX_MM / np.asarray(spacing_mm), 1.0)
    work_shape = tuple(int(max(8, round(n / f))) for n, f in zip(window.shape, factor))
    scale = np.array(window.shape) / np.array(work_shape)  # window px per working px
    px_mm = float(np.mean(np.asarray(spacing_mm) * scale))
    small = ndi.gaussian_filter(resize(window, work_shape, anti_aliasing=True), SMOOTH_MM / px_mm)
    if float(small.std()) < 1e-3 * max(float(np.abs(small).max()), 1e-6) or float(small.std()) < 1e-6:
        return empty  # flat region: no rim to find
    small_prior = None
    if prior is not None:
        small_prior = resize(prior[lo[0] : hi[0], lo[1] : hi[1]], work_shape, anti_aliasing=True)
    # Rays start at the first click, so a corrective click elsewhere adds a constraint without
    # moving every ray's origin.
    centre = (pos[0] - lo) / scale
    best = None
    for stretch in STRETCHES:
        found = _contour_radii(small, small_prior, centre, (pos - lo) / scale, (neg - lo) / scale, px_mm, stretch)
        if found is not None and (best is None or found[1] > best[1]):
            best = (found[0], found[1], stretch)
    if best is None:
        return empty
    radii, _, stretch = best
    angles = np.linspace(0.0, 2 * np.pi, N_ANGLES, endpoint=False)
    radii = radii + RIM_OUT_MM / px_mm
    rows = (centre[0] + np.sin(angles) * radii) * scale[0]
    cols = (centre[1] + stretch * np.cos(angles) * radii) * scale[1]
    rr, cc = draw_polygon(rows, cols, window.shape)
    mask = empty
    mask[lo[0] + rr, lo[1] + cc] = True
    if model_nerve is not None:
        # Past the rays' reach (an elongated nerve is not star-shaped from the click) the model's
        # nerve stands; where the rays reach, the image-refined contour decides.
        reach = np.zeros_like(mask)
        reach[lo[0] : hi[0], lo[1] : hi[1]] = True
        mask |= model_nerve & ~reach
    return mask


def _prior_component(prior, pos, neg) -> np.ndarray | None:
    """The model's nerve (p >= 0.5) under the positive clicks, or None if none is under them."""
    labels, _ = ndi.label(prior >= 0.5)
    hit = np.unique(labels[pos[:, 0].round().astype(int), pos[:, 1].round().astype(int)])
    hit = hit[hit > 0]
    if len(hit) == 0:
        return None
    nerve = np.isin(labels, hit)
    if len(neg):  # a negative click cuts away the part of the model's nerve nearer to it
        where = np.argwhere(nerve)
        near_pos = np.min([((where - p) ** 2).sum(1) for p in pos], axis=0)
        near_neg = np.min([((where - q) ** 2).sum(1) for q in neg], axis=0)
        cut = where[near_neg < near_pos]
        nerve[cut[:, 0], cut[:, 1]] = False
    return nerve


def _neighbours(profiles: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Each ray's samples ``d`` before and ``d`` after every sample (ends repeated)."""
    before = np.concatenate([np.repeat(profiles[:, :1], d, 1), profiles[:, :-d]], 1)
    after = np.concatenate([profiles[:, d:], np.repeat(profiles[:, -1:], d, 1)], 1)
    return before, after


def _ridge_score(profiles: np.ndarray, d: int) -> np.ndarray:
    """How far each sample stands above the samples ``d`` before and after it along its ray."""
    before, after = _neighbours(profiles, d)
    return np.minimum(profiles - before, profiles - after)


def _contour_radii(small, small_prior, centre, pos, neg, px_mm, stretch=1.0):
    """``(radius per ray (N_ANGLES,), mean score per ray)`` of the best closed contour, or None.

    Rays run at ``(sin a, stretch * cos a) * r`` working pixels from ``centre``; radii are in r.
    """
    angles = np.linspace(0.0, 2 * np.pi, N_ANGLES, endpoint=False)
    n_r = int(np.ceil(np.hypot(*small.shape)))
    r = np.arange(n_r, dtype=np.float32)
    ys = centre[0] + np.sin(angles)[:, None] * r
    xs = centre[1] + stretch * np.cos(angles)[:, None] * r
    inside = (ys >= 0) & (ys <= small.shape[0] - 1) & (xs >= 0) & (xs <= small.shape[1] - 1)
    d = max(1, int(round(RIDGE_MM / px_mm)))
    score = _ridge_score(ndi.map_coordinates(small, [ys, xs], order=1, mode="nearest"), d)
    spread = float(score[inside].std())
    if spread < 1e-6:
        return None
    score /= spread
    if small_prior is not None:
        p = ndi.map_coordinates(small_prior, [ys, xs], order=1, mode="nearest")
        score += PRIOR_WEIGHT * _fall(p, d)
    last = inside.sum(1) - 1
    score[~inside] = _FORBIDDEN
    score[np.arange(N_ANGLES), last] = np.maximum(score[np.arange(N_ANGLES), last], EDGE_SCORE)
    score[:, : int(round(MIN_RADIUS_MM / px_mm))] = _FORBIDDEN
    squeeze = np.array([1.0, 1.0 / stretch])
    _constrain(score, angles, centre * squeeze, pos * squeeze, neg * squeeze)
    path = _closed_path(score, MAX_STEP)
    if np.mean(path >= last) > MAX_BORDER_SHARE:
        return None  # the contour is mostly the window itself: no rim around the click
    quality = float(score[np.arange(N_ANGLES), path].mean())
    return path.astype(np.float32), quality


def _fall(p: np.ndarray, d: int) -> np.ndarray:
    """How much the probability drops from ``d`` before to ``d`` after each sample (outward edge)."""
    before, after = _neighbours(p, d)
    return before - after


def _constrain(score, angles, centre, pos, neg) -> None:
    """Contour beyond each positive click, short of each negative one (in place)."""
    for points, half_width, outside in ((pos, 0.2, False), (neg, 0.35, True)):
        for point in points:
            dy, dx = point - centre
            dist = float(np.hypot(dy, dx))
            if dist < 1.0:
                continue  # on the centre: every contour encloses it
            gap = np.abs((angles - np.arctan2(dy, dx) + np.pi) % (2 * np.pi) - np.pi)
            for k in np.nonzero(gap < half_width)[0]:
                if outside:
                    score[k, int(max(1, dist - 1)) :] = _FORBIDDEN
                else:
                    score[k, : int(dist + 2)] = _FORBIDDEN


def _closed_path(score: np.ndarray, step: int) -> np.ndarray:
    """Radii ``(A,)`` maximising the summed ``score (A, R)`` with ``|r[a+1] - r[a]| <= step``.

    Closure: the angles are unrolled three times and the middle turn is kept, whose ends then
    agree with their neighbours in the other turns (a standard approximation of the cyclic DP).
    """
    n_a, n_r = score.shape
    turns = np.tile(score, (3, 1))
    acc = turns[0].copy()
    back = np.zeros(turns.shape, dtype=np.int32)
    idx = np.arange(n_r)
    for a in range(1, len(turns)):
        best = np.full(n_r, -np.inf)
        arg = idx.copy()
        for shift in range(-step, step + 1):
            src = np.clip(idx + shift, 0, n_r - 1)
            better = acc[src] > best
            best = np.where(better, acc[src], best)
            arg = np.where(better, src, arg)
        acc = best + turns[a]
        back[a] = arg
    path = np.zeros(len(turns), dtype=np.int32)
    path[-1] = int(np.argmax(acc))
    for a in range(len(turns) - 1, 0, -1):
        path[a - 1] = back[a, path[a]]
    return path[n_a : 2 * n_a]


# -- a model's nerve probability as the prior ---------------------------------------------------
_PRIOR_CACHE: OrderedDict = OrderedDict()
_MODEL_CACHE: dict = {}
PRIOR_CACHE_SIZE = 64


def model_prior(run_or_model, clip, t: int) -> np.ndarray:
    """The model's nerve probability ``(H, W) float32`` for frame ``t`` of ``clip``.

    ``run_or_model``: a run folder, a checkpoint path or a loaded ``(model, ckpt)`` pair (as
    :func:`napari_ultramn.model.preannotate.load_model` takes). The model is causal, so frame
    ``t`` is predicted from the ``ckpt['window']`` frames ending at ``t`` (a short window: one
    click costs one window, not the clip). Results are cached by model and by the content of
    those frames (so a new array at a recycled address never gets a stale answer); loaded models
    per path. ``clip``: a ``Clip`` (``frame(i)``) or a ``(T, H, W)`` array.
    """
    import hashlib

    from ..model.checkpoint import predict_clip
    from ..model.preannotate import load_model

    n = len(clip.frames) if hasattr(clip, "frames") else len(clip)
    if not 0 <= int(t) < n:
        raise ValueError(f"frame {t} out of range for a clip of {n} frames")
    if isinstance(run_or_model, tuple):
        model, ckpt = run_or_model
    else:
        key = str(run_or_model)
        if key not in _MODEL_CACHE:
            _MODEL_CACHE[key] = load_model(run_or_model)
        model, ckpt = _MODEL_CACHE[key]
    start = max(0, int(t) - int(ckpt["window"]) + 1)
    get = clip.frame if hasattr(clip, "frame") else (lambda i: np.asarray(clip[i]))
    frames = np.ascontiguousarray(np.stack([np.asarray(get(i)) for i in range(start, int(t) + 1)]))
    digest = hashlib.blake2b(frames.tobytes(), digest_size=16).hexdigest() + f"{frames.shape}{frames.dtype}"
    cache_key = (id(model), digest)
    if cache_key in _PRIOR_CACHE:
        _PRIOR_CACHE.move_to_end(cache_key)
        return _PRIOR_CACHE[cache_key][1]
    prob = predict_clip(model, frames, window=ckpt["window"], input_size=ckpt["input_size"])["nerve_prob"][-1]
    _PRIOR_CACHE[cache_key] = (model, prob)  # holding the model keeps its id unique while cached
    while len(_PRIOR_CACHE) > PRIOR_CACHE_SIZE:
        _PRIOR_CACHE.popitem(last=False)
    return prob


def corrective_click(proposal: np.ndarray, truth: np.ndarray) -> tuple[tuple[int, int], bool] | None:
    """Where a rater would click next to fix ``proposal`` against ``truth``: ``((row, col), positive)``.

    The standard simulated user of interactive segmentation: the larger error region (missed
    nerve -> positive click, spurious mask -> negative click), clicked at its point farthest from
    its own edge. None when the proposal equals the truth. Both ``(H, W) bool``.
    """
    proposal, truth = np.asarray(proposal, bool), np.asarray(truth, bool)
    if proposal.shape != truth.shape:
        raise ValueError(f"proposal {proposal.shape} and truth {truth.shape} differ in shape")
    best = None
    for error, positive in ((truth & ~proposal, True), (proposal & ~truth, False)):
        if not error.any():
            continue
        depth = ndi.distance_transform_edt(np.pad(error, 1))[1:-1, 1:-1]
        if best is None or depth.max() > best[0]:
            point = np.unravel_index(int(np.argmax(depth)), depth.shape)
            best = (float(depth.max()), (int(point[0]), int(point[1])), positive)
    return None if best is None else (best[1], best[2])
