"""Anatomy of the four standard planes as echogenicity maps, plus the median nerve's geometry.

Geometry is laid out in millimetres (depth from the skin, lateral distance from the probe centre)
on a *canvas* a little larger than the frame, so probe motion is a crop. Sizes follow the
ultrasound literature for adults: median nerve cross-section about 8-11 mm^2 at the wrist
(flattened oval just under the flexor retinaculum, flexor tendons around it in the carpal tunnel,
carpal bones below) and 6-9 mm^2 in the mid-forearm (rounder, deeper, in the fascial plane
between flexor digitorum superficialis and profundus, radius and ulna below).

Echogenicity levels are relative scatterer strengths (mean envelope power; the display maps
-26..+16 dB to black..white): bone shadow and vessels ~0.0005, fat 0.025, muscle 0.05, tendon 0.9
with fibrillar highlights, fascia 5, bone surface 35.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from .render import smooth_curve, smooth_noise

FAT, MUSCLE, TENDON, FASCIA, BONE, SHADOW = 0.025, 0.05, 0.9, 5.0, 35.0, 0.0005

#: How strongly tissue decorrelates with finger flexion; Scene.gliding holds indices into this.
GLIDING_LEVELS = (0.0, 0.6, 1.0)
MUSCLE_GLIDES, TENDON_GLIDES = 1, 2

#: imaging depth (mm) per plane; the wrist is imaged shallower than the forearm
DEPTH_MM = {
    "transverse_wrist": 22.0,
    "longitudinal_wrist": 22.0,
    "transverse_forearm": 28.0,
    "longitudinal_forearm": 28.0,
}


@dataclass
class NerveSpec:
    """Rest geometry of the median nerve in canvas pixels and how flexion moves it.

    ``kind`` 'oval' (transverse planes): centre ``(cy, cx)``, semi-axes ``a`` (lateral) and ``b``
    (depth) before tilt ``angle``; ``harmonics`` (k, amplitude, phase) perturb the radius so the
    outline is oval rather than a perfect ellipse. ``kind`` 'band' (longitudinal planes):
    centreline depth ``centre_y[col]`` and half-thickness ``half[col]`` per canvas column.
    ``glide`` is the (dy, dx) displacement at full finger flexion; ``flatten`` the fractional
    change of the depth axis (a widens by the same fraction, keeping the area roughly constant).
    """

    kind: str
    cy: float = 0.0
    cx: float = 0.0
    a: float = 0.0
    b: float = 0.0
    angle: float = 0.0
    harmonics: list[tuple[int, float, float]] = field(default_factory=list)
    centre_y: np.ndarray | None = None
    half: np.ndarray | None = None
    glide: tuple[float, float] = (0.0, 0.0)
    flatten: float = 0.0


@dataclass
class Scene:
    """Static tissue of one clip: echogenicity canvas, where flexion decorrelates it, the nerve."""

    plane: str
    spacing_mm: float
    frame_shape: tuple[int, int]
    margin: tuple[int, int]
    echogenicity: np.ndarray
    #: per canvas pixel, index into GLIDING_LEVELS: how much the tissue's speckle changes with
    #: finger flexion (tendons fully, muscle bellies partly, the rest not at all)
    gliding: np.ndarray
    nerve: NerveSpec


class _Canvas:
    """Echogenicity canvas with millimetre grids and painting helpers."""

    def __init__(self, shape, margin, frame_shape, sp, rng):
        self.rng = rng
        self.sp = sp
        rows = (np.arange(shape[0], dtype=np.float32) - margin[0] + 0.5) * sp
        cols = (np.arange(shape[1], dtype=np.float32) - margin[1] - frame_shape[1] / 2 + 0.5) * sp
        self.x1 = cols
        self.y, self.x = np.meshgrid(rows, cols, indexing="ij")
        self.e = np.full(shape, FAT, np.float32)
        self.gliding = np.zeros(shape, np.uint8)

    def curve(self, y0: float, bend: float = 0.0, wobble: float = 0.0, tilt: float = 0.0):
        """Depth (mm) per canvas column: y0 + tilt*x + bend*x^2 + smooth random wobble."""
        w = smooth_curve(len(self.x1), self.rng, 4) * wobble
        return (y0 + tilt * self.x1 + bend * self.x1**2 + w).astype(np.float32)

    def below(self, curve):
        return self.y >= curve[None, :]

    def line(self, curve, thick_mm: float, level: float, speckled: float = 0.5):
        """A specular interface (fascia, retinaculum, bone surface): bright, slightly beaded."""
        m = np.abs(self.y - curve[None, :]) < thick_mm / 2
        bead = 1 + speckled * self.bead[m]
        self.e[m] = np.maximum(self.e[m], level * np.clip(bead, 0.2, None))

    @functools.cached_property
    def bead(self) -> np.ndarray:
        """Short lateral streak noise shared by all interfaces (beaded look of specular echoes)."""
        return smooth_noise(self.e.shape, self.rng, (0.6, 3.0))

    def ellipse(self, cy, cx, ry, rx, angle=0.0) -> np.ndarray:
        """Boolean mask of a (rotated) ellipse, evaluated only in its bounding box."""
        out = np.zeros(self.e.shape, bool)
        r = max(rx, ry) + self.sp
        rows = np.flatnonzero(np.abs(self.y[:, 0] - cy) <= r)
        cols = np.flatnonzero(np.abs(self.x1 - cx) <= r)
        if len(rows) == 0 or len(cols) == 0:
            return out
        win = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        c, s = np.cos(angle), np.sin(angle)
        dy, dx = self.y[win] - cy, self.x[win] - cx
        u, v = (c * dx + s * dy) / rx, (-s * dx + c * dy) / ry
        out[win] = u * u + v * v < 1
        return out

    def septa(self, region, base: float, sigma=(0.7, 6.0), thresh=1.6, bright=0.6):
        """Hypoechoic tissue with thin bright streaks (fat septa, perimysium)."""
        n = smooth_noise(self.e.shape, self.rng, sigma)
        tex = base * (1 + 0.25 * n) + bright * (n > thresh)
        self.e[region] = tex[region]

    def striations(self, region, base: float, angle: float, period_mm=0.9, duty=0.8, bright=0.5):
        """Muscle fibres (pennate, longitudinal) or tendon fibrils: parallel broken bright lines."""
        c, s = np.cos(angle), np.sin(angle)
        across = -s * self.x + c * self.y
        along_noise = smooth_noise(self.e.shape, self.rng, (1.0, 8.0))
        phase = 2 * np.pi * across / period_mm + 1.5 * smooth_noise(self.e.shape, self.rng, (6, 6))
        lines = (np.cos(phase) > duty) & (along_noise > -0.6)
        tex = base * (1 + 0.2 * along_noise) + bright * lines
        self.e[region] = tex[region]

    def punctate(self, region, base: float, density=0.05, bright=1.2):
        """Tendon cut across: fibre bundles seen end-on as bright dots."""
        dots = self.rng.random(self.e.shape) < density
        self.e[region] = base
        self.e[region & dots] = bright

    def bone(self, curve, region=None):
        """Bright cortical surface and the acoustic shadow below it."""
        below = self.below(curve + 0.3)
        surface = np.abs(self.y - curve[None, :]) < 0.3
        if region is not None:
            below &= region
            surface &= region
        self.e[below] = SHADOW
        self.e[surface] = BONE * np.clip(1 + 0.3 * self.bead[surface], 0.3, None)


def build_scene(plane: str, rng: np.random.Generator, frame_shape: tuple[int, int]) -> Scene:
    """Lay out the anatomy of ``plane`` for one participant (sizes and positions drawn from rng)."""
    h, w = frame_shape
    depth = DEPTH_MM[plane] * rng.uniform(0.92, 1.08)
    sp = depth / h
    # Room for probe sway (4% of the width, 1.5% of the height) and a rotation up to 0.04 rad.
    margin = (int(np.ceil(0.015 * h + 0.025 * w)) + 3, int(np.ceil(0.04 * w + 0.025 * h)) + 3)
    shape = (h + 2 * margin[0], w + 2 * margin[1])
    cv = _Canvas(shape, margin, frame_shape, sp, rng)
    half_w = w * sp / 2
    # Skin: bright entry echo, then dermis.
    cv.line(cv.curve(0.25), 0.5, FASCIA, speckled=0.3)
    nerve = _LAYOUTS[plane](cv, rng, half_w)
    cv.e[cv.y < 0.0] = SHADOW  # gel / stand-off above the skin
    nerve = _to_pixels(nerve, cv, margin, frame_shape, sp)
    return Scene(plane, sp, frame_shape, margin, cv.e, cv.gliding, nerve)


def _transverse_wrist(cv: _Canvas, rng, half_w) -> NerveSpec:
    fat_bottom = cv.curve(rng.uniform(1.8, 2.4), wobble=0.2)
    cv.septa(cv.y < fat_bottom[None, :], FAT)
    retin = cv.curve(rng.uniform(2.6, 3.2), bend=0.008, wobble=0.15)
    tunnel = cv.below(retin)
    cv.septa(tunnel, 0.035, sigma=(1.5, 2.0), thresh=1.8, bright=0.3)
    cv.striations(cv.below(fat_bottom) & ~tunnel, 0.3, 0.0, period_mm=0.35, duty=0.5, bright=1.5)
    cv.line(retin, 0.6, FASCIA)
    a, b = rng.uniform(2.5, 3.1), rng.uniform(1.0, 1.3)
    cx = rng.uniform(-3.0, 0.5)
    cy = float(np.interp(cx, cv.x1, retin)) + b + 0.5
    # Flexor tendons in two rows under the nerve, flexor pollicis longus on the radial side.
    tendons = []
    for row_y, xs in ((cy + b + 2.6, (-6.5, -2.2, 2.2, 6.5)), (cy + b + 6.2, (-7.5, -3.0, 1.5, 6.0))):
        for x in xs:
            tendons.append((row_y + rng.uniform(-0.4, 0.4), x + rng.uniform(-0.7, 0.7)))
    tendons.append((cy + b + 5.5, -11.0 + rng.uniform(-0.8, 0.8)))
    glide = np.zeros(cv.e.shape, bool)
    for ty, tx in tendons:
        inside = cv.ellipse(ty, tx, rng.uniform(1.2, 1.5), rng.uniform(1.5, 1.9), rng.uniform(-0.3, 0.3))
        cv.punctate(inside, TENDON, density=0.08, bright=4.0)
        ring = cv.ellipse(ty, tx, 1.7, 2.1) & ~inside
        cv.e[ring & (cv.e < 0.3)] = 0.3  # paratenon
        glide |= inside
    cv.gliding[glide] = TENDON_GLIDES
    # Ulnar artery: anechoic circle superficial on the ulnar side, with the posterior acoustic
    # enhancement (less attenuation through blood) below it.
    ay, ax = retin.min() + 1.0, half_w * 0.75
    cv.e[(np.abs(cv.x - ax) < 0.9) & (cv.y > ay)] *= 1.8
    cv.e[cv.ellipse(ay, ax, 1.0, 1.0)] = SHADOW * 2
    if rng.random() < 0.85:  # palmaris longus tendon (absent in ~15% of people), above the retinaculum
        pl = cv.ellipse(float(np.interp(0.0, cv.x1, retin)) - 1.0, rng.uniform(-1.5, 1.5), 0.5, 1.3)
        cv.punctate(pl, TENDON, density=0.1, bright=4.0)
    floor = cv.curve(cy + b + 9.5 + rng.uniform(0, 1.5), bend=0.012, wobble=0.8)
    cv.bone(floor)
    return NerveSpec(
        "oval",
        cy=cy,
        cx=cx,
        a=a,
        b=b,
        angle=rng.uniform(-0.12, 0.12),
        glide=(rng.uniform(-0.2, 0.3), rng.uniform(0.8, 1.6)),
        flatten=rng.uniform(0.08, 0.16),
    )


def _transverse_forearm(cv: _Canvas, rng, half_w) -> NerveSpec:
    fat_bottom = cv.curve(rng.uniform(3.0, 4.5), wobble=0.4)
    cv.septa(cv.y < fat_bottom[None, :], FAT)
    between = cv.curve(rng.uniform(11.0, 14.0), bend=0.006, wobble=0.8)
    fds = cv.below(fat_bottom) & ~cv.below(between)
    fdp = cv.below(between)
    cv.septa(fds, MUSCLE, sigma=(1.2, 1.2), thresh=1.7, bright=1.0)  # "starry night" perimysium
    cv.septa(fdp, MUSCLE * 0.9, sigma=(1.2, 1.2), thresh=1.7, bright=1.0)
    cv.gliding[fds | fdp] = MUSCLE_GLIDES
    cv.line(fat_bottom, 0.5, FASCIA)
    cv.line(between, 0.4, FASCIA * 0.7)
    # A fascial septum between two FDS bellies, curving down to the intermuscular plane.
    sx = rng.uniform(-8, -4)
    slant = rng.uniform(0.3, 0.6)
    sep = (np.abs(cv.x - (sx + slant * cv.y + 0.4 * np.sin(cv.y * 0.7))) < 0.2) & fds & (cv.bead > -0.8)
    cv.e[sep] = FASCIA * 0.35
    a, b = rng.uniform(1.7, 2.1), rng.uniform(1.2, 1.5)
    cx = rng.uniform(-2.5, 2.5)
    cy = float(np.interp(cx, cv.x1, between))
    # Radius and ulna: two convex cortical arcs with shadow, interosseous membrane between.
    bone_y = cy + rng.uniform(9.0, 12.0)
    radius = cv.x < -2.5
    ulna = cv.x > 3.0
    arc_r = bone_y + 0.05 * (cv.x1 + 10.0) ** 2
    arc_u = bone_y + 1.0 + 0.06 * (cv.x1 - 10.0) ** 2
    cv.line(cv.curve(bone_y + 1.5, wobble=0.2), 0.3, FASCIA * 0.5)
    cv.bone(arc_r.astype(np.float32), radius)
    cv.bone(arc_u.astype(np.float32), ulna)
    return NerveSpec(
        "oval",
        cy=cy,
        cx=cx,
        a=a,
        b=b,
        angle=rng.uniform(-0.2, 0.2),
        glide=(rng.uniform(-0.4, 0.4), rng.uniform(0.4, 1.0)),
        flatten=rng.uniform(0.03, 0.08),
    )


def _longitudinal_wrist(cv: _Canvas, rng, half_w) -> NerveSpec:
    fat_bottom = cv.curve(rng.uniform(1.8, 2.4), wobble=0.2)
    cv.septa(cv.y < fat_bottom[None, :], FAT)
    retin = cv.curve(rng.uniform(2.6, 3.1), tilt=0.03, wobble=0.2)
    cv.striations(cv.below(fat_bottom), 0.15, 0.0, period_mm=0.4, duty=0.6, bright=0.8)
    cv.line(retin, 0.7, FASCIA)
    half0 = rng.uniform(1.1, 1.4)
    centre = retin + half0 + 0.4 + 0.02 * np.maximum(-cv.x1, 0)  # dives a little proximally
    # Tendons below the nerve: fibrillar horizontal bands (FDS then FDP), gliding with flexion.
    t_top = centre + half0 + 0.6
    t_mid = t_top + rng.uniform(2.5, 3.2)
    t_bot = t_mid + rng.uniform(2.5, 3.2)
    tend = cv.below(t_top) & ~cv.below(t_bot)
    cv.striations(tend, TENDON * 0.8, rng.uniform(-0.03, 0.03), period_mm=0.32, duty=0.3, bright=4.0)
    cv.line(t_mid, 0.3, 2.0)
    cv.gliding[tend] = TENDON_GLIDES
    below_t = cv.below(t_bot)
    cv.septa(below_t, 0.04, sigma=(1.0, 3.0), thresh=1.8, bright=0.3)
    # Lunate and capitate: two convex surfaces.
    bumps = t_bot + 2.5 + np.minimum(0.04 * (cv.x1 + 6) ** 2, 0.05 * (cv.x1 - 8) ** 2 + 0.5)
    cv.bone(bumps.astype(np.float32))
    notch = 1 - 0.18 * np.exp(-0.5 * ((cv.x1 - rng.uniform(-4, 4)) / 3.0) ** 2)  # under the retinaculum edge
    half = half0 * notch * (1 + 0.05 * smooth_curve(len(cv.x1), rng, 3))
    return NerveSpec(
        "band",
        centre_y=centre.astype(np.float32),
        half=half.astype(np.float32),
        glide=(rng.uniform(-0.15, 0.15), rng.uniform(2.0, 3.5)),
        flatten=rng.uniform(0.05, 0.1),
    )


def _longitudinal_forearm(cv: _Canvas, rng, half_w) -> NerveSpec:
    fat_bottom = cv.curve(rng.uniform(3.0, 4.5), wobble=0.4)
    cv.septa(cv.y < fat_bottom[None, :], FAT)
    between = cv.curve(rng.uniform(11.0, 14.0), tilt=rng.uniform(-0.06, 0.06), wobble=0.6)
    fds = cv.below(fat_bottom) & ~cv.below(between)
    fdp = cv.below(between)
    cv.striations(fds, MUSCLE, rng.uniform(0.15, 0.3), period_mm=1.1, duty=0.85, bright=0.8)
    cv.striations(fdp, MUSCLE * 0.9, -rng.uniform(0.15, 0.3), period_mm=1.1, duty=0.85, bright=0.8)
    cv.gliding[fds | fdp] = MUSCLE_GLIDES
    cv.line(fat_bottom, 0.5, FASCIA)
    half0 = rng.uniform(1.1, 1.4)
    cv.line(between - half0 - 0.3, 0.4, FASCIA * 0.6)
    cv.line(between + half0 + 0.3, 0.4, FASCIA * 0.6)
    cv.bone(cv.curve(between.mean() + rng.uniform(10.0, 13.0), tilt=rng.uniform(-0.05, 0.05), wobble=0.4))
    half = half0 * (1 + 0.06 * smooth_curve(len(cv.x1), rng, 3))
    return NerveSpec(
        "band",
        centre_y=between.astype(np.float32),
        half=half.astype(np.float32),
        glide=(rng.uniform(-0.2, 0.2), rng.uniform(1.0, 2.0)),
        flatten=rng.uniform(0.02, 0.05),
    )


_LAYOUTS = {
    "transverse_wrist": _transverse_wrist,
    "transverse_forearm": _transverse_forearm,
    "longitudinal_wrist": _longitudinal_wrist,
    "longitudinal_forearm": _longitudinal_forearm,
}


def _to_pixels(n: NerveSpec, cv: _Canvas, margin, frame_shape, sp) -> NerveSpec:
    """Convert a NerveSpec from millimetres (depth, lateral) to canvas pixel coordinates."""

    def row(mm):
        return mm / sp + margin[0] - 0.5

    def col(mm):
        return mm / sp + margin[1] + frame_shape[1] / 2 - 0.5

    glide = (n.glide[0] / sp, n.glide[1] / sp)
    if n.kind == "oval":
        harmonics = [(k, float(cv.rng.uniform(0.0, 0.06)), float(cv.rng.uniform(0, 2 * np.pi))) for k in (2, 3, 4)]
        return NerveSpec(
            "oval",
            cy=row(n.cy),
            cx=col(n.cx),
            a=n.a / sp,
            b=n.b / sp,
            angle=n.angle,
            harmonics=harmonics,
            glide=glide,
            flatten=n.flatten,
        )
    return NerveSpec(
        "band",
        centre_y=row(n.centre_y).astype(np.float32),
        half=(n.half / sp).astype(np.float32),
        glide=glide,
        flatten=n.flatten,
    )
