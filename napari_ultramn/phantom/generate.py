"""``generate_clip``: one seeded phantom cine of a standard plane with exact ground truth.

Per clip (once): lay out the anatomy (:mod:`.anatomy`), turn it into two independent complex
speckle fields on a canvas slightly larger than the frame (:mod:`.render`), texture the nerve
(:mod:`.nerve`), draw smooth probe and finger motion, and mix the two speckle fields at every
angle the motion needs (elevational micro-motion and gliding tendons/muscle decorrelate speckle).
Per frame (cheap): one gather picks, for each pixel, where the probe is (integer translation plus
a slight in-plane rotation as two integer shears) and which mixture its tissue shows; then
composite the nerve patch, apply depth attenuation, add electronic noise, degrade the frame if it
is one of the poor ones, log-compress to uint8.

Plane labels: when a clip "wanders" (about half of clips of 12+ frames), a short run of frames at
its start or end is the probe tilting out of the standard plane (speckle decorrelates, the nerve
turns hypoechoic through anisotropy); those frames are labelled ``NON_STANDARD``. The nerve is
still there, so its mask stays non-empty on every frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import DEFAULT_PLANES, NON_STANDARD
from ..errors import InputError
from .anatomy import GLIDING_LEVELS, Scene, build_scene
from .nerve import NerveRenderer
from .render import (
    FLOOR_DB,
    PRESCALE,
    analytic_speckle,
    grey_from_prescaled,
    psf_kernel,
    smooth_curve,
)

DEGRADATIONS = ("noise", "dropout", "shadow")


@dataclass
class PhantomClip:
    """A synthetic clip and its ground truth.

    frames: ``(T, H, W) uint8`` B-mode frames. masks: ``(T, H, W) bool`` exact nerve masks.
    plane_labels: per frame, the clip's plane or ``NON_STANDARD``. quality: per frame 'ok'/'poor'.
    spacing_mm: ``(row_mm, col_mm)``. frame_time_ms: time between frames.
    degradation: per frame None or the kind of degradation ('noise', 'dropout', 'shadow').
    """

    frames: np.ndarray
    masks: np.ndarray
    plane_labels: list[str]
    quality: list[str]
    spacing_mm: tuple[float, float]
    frame_time_ms: float
    plane: str
    seed: int = 0
    degradation: list[str | None] = field(default_factory=list)

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    def flipped(self) -> PhantomClip:
        """The mirror image (left-right), e.g. the same anatomy scanned on the other arm."""
        return PhantomClip(
            np.ascontiguousarray(self.frames[:, :, ::-1]),
            np.ascontiguousarray(self.masks[:, :, ::-1]),
            list(self.plane_labels),
            list(self.quality),
            self.spacing_mm,
            self.frame_time_ms,
            self.plane,
            self.seed,
            list(self.degradation),
        )


def generate_clip(
    plane: str,
    seed: int,
    n_frames: int = 32,
    size: tuple[int, int] = (256, 256),
    degraded_fraction: float = 0.1,
    *,
    out_of_plane_probability: float = 0.5,
) -> PhantomClip:
    """Generate a deterministic phantom clip of ``plane`` (one of ``DEFAULT_PLANES``).

    ``degraded_fraction`` of the frames (rounded) are 'poor': noise, loss of probe contact (dark
    sector with reverberation lines) or an acoustic shadow, in one or two short runs.
    """
    if plane not in DEFAULT_PLANES:
        raise InputError(None, f"unknown plane {plane!r}; expected one of {', '.join(DEFAULT_PLANES)}")
    h, w = (int(v) for v in size)
    if n_frames < 1 or h < 32 or w < 32:
        raise InputError(None, f"need n_frames >= 1 and a size of at least 32x32, got {n_frames} frames of {h}x{w}")
    if int(seed) < 0:
        raise InputError(None, f"seed must be a non-negative integer, got {seed}")
    if not 0.0 <= degraded_fraction <= 1.0:
        raise InputError(None, f"degraded_fraction must be in [0, 1], got {degraded_fraction}")
    rng = np.random.default_rng([int(seed), DEFAULT_PLANES.index(plane), 7919])
    scene = build_scene(plane, rng, (h, w))
    # Resolution of a ~15 MHz linear array (axial ~0.1 mm, lateral ~0.2 mm), never below what
    # the pixel grid can carry.
    sp = scene.spacing_mm
    psf = psf_kernel(max(0.9, 0.11 / sp), max(3.0, 0.3 / sp), max(1.3, 0.19 / sp))
    field_a = analytic_speckle(scene.echogenicity, rng, psf)
    field_b = analytic_speckle(scene.echogenicity, rng, psf)
    nerve = NerveRenderer(scene.nerve, rng, psf, scene.echogenicity.shape[1])
    frame_time_ms = float(1000.0 / rng.choice([20.0, 25.0, 30.0]))
    motion = _motion(scene, rng, n_frames, frame_time_ms, out_of_plane_probability)
    degradation = _degraded_runs(rng, n_frames, degraded_fraction, motion["off_plane"])
    frames = np.empty((n_frames, h, w), np.uint8)
    masks = np.zeros((n_frames, h, w), bool)
    _render_frames(scene, field_a, field_b, nerve, motion, degradation, rng, frames, masks)
    labels = [NON_STANDARD if o else plane for o in motion["off_plane"]]
    quality = ["poor" if d else "ok" for d in degradation]
    return PhantomClip(
        frames, masks, labels, quality, (float(sp), float(sp)), frame_time_ms, plane, int(seed), degradation
    )


def _motion(scene: Scene, rng, n: int, frame_time_ms: float, p_off: float) -> dict:
    """Smooth per-frame probe sway, tilt, elevational decorrelation and finger flexion."""
    h, w = scene.frame_shape
    my, mx = scene.margin
    t = np.arange(n, dtype=np.float64)
    period = rng.uniform(1200, 2400) / frame_time_ms  # one flexion cycle, 1.2-2.4 s
    flex = 0.5 - 0.5 * np.cos(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))

    def sway(amplitude):
        ph, per = rng.uniform(0, 2 * np.pi, 2), rng.uniform(1.5, 4.0, 2) * max(n, 16)
        return amplitude * (0.7 * np.sin(2 * np.pi * t / per[0] + ph[0]) + 0.3 * np.sin(2 * np.pi * t / per[1] + ph[1]))

    rotation = sway(0.02)  # radians, about the image centre
    off_plane = np.zeros(n, bool)
    tilt = np.zeros(n)
    if n >= 12 and rng.random() < p_off:
        k = max(2, int(round(0.12 * n)))
        idx = np.arange(k) if rng.random() < 0.5 else np.arange(n - k, n)
        off_plane[idx] = True
        ramp = np.linspace(0.4, 1.0, k) if idx[0] else np.linspace(1.0, 0.4, k)
        tilt[idx] = ramp
    # Sway amplitudes fit the canvas margins (anatomy.build_scene) together with the rotation.
    ox = np.rint(sway(0.04 * w) + mx).astype(int)
    oy = np.rint(sway(0.015 * h) + my).astype(int)
    decor = 0.35 * smooth_curve(n, rng, 2) + 1.4 * tilt  # radians of speckle mixing
    gain_db = rng.uniform(-2, 2) + 0.8 * smooth_curve(n, rng, 2) - 4 * tilt
    return {
        "flex": flex,
        "ox": ox,
        "oy": oy,
        "rotation": rotation + 0.02 * tilt,
        "decor": decor,
        "gain_db": gain_db,
        "tilt": tilt,
        "off_plane": off_plane,
    }


def _degraded_runs(rng, n: int, fraction: float, avoid: np.ndarray) -> list[str | None]:
    """Pick ``round(fraction * n)`` poor frames in one or two contiguous runs, each one kind."""
    n_bad = int(round(fraction * n))
    out: list[str | None] = [None] * n
    if n_bad == 0:
        return out
    free = np.flatnonzero(~avoid) if (~avoid).sum() >= n_bad else np.arange(n)
    runs = [n_bad] if n_bad < 5 else [n_bad // 2, n_bad - n_bad // 2]
    taken = np.zeros(n, bool)
    for length in runs:
        kind = str(rng.choice(DEGRADATIONS))
        starts = [s for s in free if all(s + i in free and not taken[s + i] for i in range(length))]
        if not starts:  # fall back to any free frames
            idx = [int(i) for i in free if not taken[i]][:length]
        else:
            s0 = int(rng.choice(starts))
            idx = list(range(s0, s0 + length))
        for i in idx:
            out[i], taken[i] = kind, True
    return out


def _render_frames(scene, field_a, field_b, nerve, motion, degradation, rng, frames, masks):
    h, w = scene.frame_shape
    rows = np.arange(h)
    depth_mm = (rows + 0.5) * scene.spacing_mm
    # Round-trip attenuation of ~1 dB/cm/MHz at ~12 MHz is mostly undone by the TGC; what is
    # left is a gentle darkening with depth.
    atten_db = -0.22 * depth_mm - 1.5 * np.exp(-depth_mm / 0.6)
    # Electronic noise power; each frame shows a different window of it.
    noise = rng.exponential(1.0, (h + h // 2, w + w // 2)).astype(np.float32)
    noise_level = np.float32(PRESCALE * 10 ** ((FLOOR_DB + 3.0) / 10))
    canvas_h, canvas_w = field_a.shape
    power_levels, level_offsets, level_of_pixel = _speckle_levels(field_a, field_b, scene.gliding, motion)
    flat_power = power_levels.ravel()
    cols = np.arange(w)
    base = rows[:, None] * canvas_w + cols[None, :]
    run_seed = int(rng.integers(2**31))
    for t in range(frames.shape[0]):
        oy, ox = int(motion["oy"][t]), int(motion["ox"][t])
        # Small in-plane rotation as two integer shears: each row shifts sideways, each column
        # up or down. One flat gather then does translation and rotation together.
        row_shift = np.rint(motion["rotation"][t] * (rows - h / 2)).astype(np.intp)
        col_shift = np.rint(-motion["rotation"][t] * (cols - w / 2)).astype(np.intp)
        inside = (
            oy + col_shift.min() >= 0
            and oy + h - 1 + col_shift.max() < canvas_h
            and ox + row_shift.min() >= 0
            and ox + w - 1 + row_shift.max() < canvas_w
        )
        if inside:  # the margins are sized so this always holds; the clip below is a safety net
            idx = base + (row_shift[:, None] + (col_shift * canvas_w + (oy * canvas_w + ox))[None, :])
        else:
            r_idx = np.clip(oy + rows[:, None] + col_shift[None, :], 0, canvas_h - 1)
            idx = r_idx * canvas_w + np.clip(ox + cols[None, :] + row_shift[:, None], 0, canvas_w - 1)
        if level_of_pixel is None:  # all tissue glides alike: one speckle mixture per frame
            idx += level_offsets[t, 0]
        else:
            idx += np.take(level_offsets[t], np.take(level_of_pixel, idx))
        p = np.take(flat_power, idx)
        patch = nerve.render((h, w), oy, ox, row_shift, col_shift, float(motion["flex"][t]))
        if patch is not None:
            # Probe tilt makes the nerve look hypoechoic (anisotropy) before it leaves the plane.
            np_ = patch.power * np.float32(1.0 - 0.8 * motion["tilt"][t])
            region = p[patch.rows, patch.cols]
            region += patch.weight * (np_ - region)
            masks[t, patch.rows, patch.cols] = patch.mask
        gain = PRESCALE * 10 ** ((atten_db + motion["gain_db"][t]) / 10)
        p *= gain.astype(np.float32)[:, None]
        ny, nx = rng.integers(0, h // 2 + 1), rng.integers(0, w // 2 + 1)
        level = noise_level
        if degradation[t] is not None:
            level = _degrade(p, degradation[t], run_seed, scene, t, degradation, level)
        p += level * noise[ny : ny + h, nx : nx + w]
        grey_from_prescaled(p, out=frames[t])


#: Step (radians) of the speckle-mixing angle; neighbouring steps are cos^2 = 99.4% correlated,
#: so quantising it is invisible while every frame becomes a single gather.
MIX_STEP = 0.08


def _speckle_levels(field_a, field_b, gliding, motion):
    """Envelope power of ``cos(theta) A + sin(theta) B`` for every mixing angle the clip needs.

    The angle is ``decor[t]`` (elevational micro-motion, whole frame) plus ``1.3 * flex[t]`` times
    the tissue's gliding level (tendons, muscle decorrelate as fingers move). Angles are quantised
    to :data:`MIX_STEP`; each distinct one is mixed once on the canvas. Returns the stacked
    ``(levels, H, W) float32`` powers, per frame and gliding level the flat offset of its power
    canvas ``(T, n_gliding_levels) intp``, and the gliding level of each canvas pixel (flat uint8,
    or None when the whole canvas glides alike).
    """
    present = np.flatnonzero(np.bincount(gliding.ravel(), minlength=len(GLIDING_LEVELS)))
    glide_values = np.asarray(GLIDING_LEVELS)[present]
    theta = motion["decor"][:, None] + glide_values[None, :] * (1.3 * motion["flex"][:, None])
    # Coarser steps only for huge frames, to keep the stack under ~200 MB.
    max_levels = max(4, int(2e8 // (4 * field_a.size)))
    step_rad = MIX_STEP
    while len(np.unique(steps := np.rint(theta / step_rad).astype(int))) > max_levels:
        step_rad *= 1.5
    needed, slot = np.unique(steps, return_inverse=True)
    levels = np.empty((len(needed), *field_a.shape), np.float32)
    for i, step in enumerate(needed):
        s = field_a * np.float32(np.cos(step * step_rad)) + field_b * np.float32(np.sin(step * step_rad))
        np.multiply(s.real, s.real, out=levels[i])
        levels[i] += s.imag * s.imag
    offsets = slot.reshape(steps.shape).astype(np.intp) * field_a.size
    if len(present) == 1:
        return levels, offsets, None
    remap = np.zeros(len(GLIDING_LEVELS), np.uint8)
    remap[present] = np.arange(len(present))
    pixel_level = np.take(remap, gliding.ravel())
    return levels, offsets, pixel_level


def _degrade(p, kind, run_seed, scene, t, degradation, level):
    """Apply one kind of degradation to the power image ``p`` in place; returns the noise level."""
    h, w = p.shape
    # Parameters are drawn per run (seeded by the run's first frame) so a run is consistent.
    start = t
    while start > 0 and degradation[start - 1] == kind:
        start -= 1
    r = np.random.default_rng([run_seed, start, DEGRADATIONS.index(kind)])
    cols = np.arange(w, dtype=np.float32)
    if kind == "noise":
        # Poor coupling answered with more gain: weak echoes drowned in amplified noise.
        p *= np.float32(10 ** (-r.uniform(5, 9) / 10))
        return level * np.float32(10 ** (r.uniform(1.0, 1.5)))
    if kind == "dropout":
        # Probe edge lifted off the skin: no signal in a sector, only reverberation lines.
        width = r.uniform(0.3, 0.55) * w
        edge = width if r.random() < 0.5 else w - width
        inside = (cols < edge) if edge < w / 2 else (cols > edge)
        ramp = np.clip(np.abs(cols - edge) / 6.0, 0, 1)
        att = np.where(inside, 1 - 0.997 * ramp, 1.0).astype(np.float32)
        p *= att[None, :]
        depth = (np.arange(h) + 0.5) * scene.spacing_mm
        period = r.uniform(1.2, 2.0)
        reverb = np.exp(-depth / 2.0) * (np.mod(depth, period) < 0.3) * 0.8
        p += (PRESCALE * reverb[:, None] * (1 - att)[None, :]).astype(np.float32)
        return level
    # "shadow": an air bubble or a lifted edge casts a vertical shadow from near the skin down.
    c0 = r.uniform(0.1, 0.8) * w
    half = r.uniform(0.05, 0.1) * w
    start_row = int(r.uniform(1.0, 3.0) / scene.spacing_mm)
    att = 1 - r.uniform(0.85, 0.97) * np.clip((half - np.abs(cols - c0)) / max(1.5, 0.3 * half), 0, 1)
    p[start_row:] *= att.astype(np.float32)[None, :]
    return level
