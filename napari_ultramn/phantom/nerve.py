"""The median nerve: honeycomb fascicular texture, hyperechoic rim, and its exact mask per frame.

The nerve is rendered apart from the surrounding tissue because it moves relative to it: finger
flexion makes it glide (a few millimetres along its axis in longitudinal planes, about a
millimetre sideways in transverse ones) and flattens it slightly. Its speckle texture is made once
in the nerve's own rest frame; each frame maps pixels back into that frame (an affine map for the
oval cross-section, a per-column centreline/thickness for the longitudinal band), samples the
texture, and evaluates the *same* map for the ground-truth mask, so the mask is exact.

Mask definition: the outer boundary of the epineurium (the hyperechoic rim is inside the mask),
which is how sonographers trace the nerve for cross-sectional area.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import NerveSpec
from .render import analytic_speckle, power, smooth_noise

FASCICLE, INTERFASCICULAR, RIM, PERINEURAL = 0.012, 0.6, 2.5, 0.2
RIM_INNER = 0.82  # normalised radius where the epineurial rim starts
BLEND = 0.18  # beyond the boundary the nerve texture fades into the tissue over this much radius


@dataclass
class NervePatch:
    """One frame's nerve: ``rows``/``cols`` slices of the frame it covers and, on that patch,
    the exact ``mask`` (bool), the compositing ``weight`` (float32 0..1) and envelope ``power``."""

    rows: slice
    cols: slice
    mask: np.ndarray
    weight: np.ndarray
    power: np.ndarray


class NerveRenderer:
    """Builds the rest-frame texture once, then renders any frame's nerve patch cheaply."""

    def __init__(self, spec: NerveSpec, rng: np.random.Generator, psf: np.ndarray, canvas_width: int):
        self.spec = spec
        if spec.kind == "oval":
            self.ha = spec.a * (1 + spec.flatten) * (1 + BLEND + 0.15)
            self.hb = spec.b * (1 + BLEND + 0.15)
            ext = int(np.ceil(max(self.ha, self.hb))) + 4
            self.r0 = self.c0 = float(ext)
            yy, xx = np.mgrid[-ext : ext + 1, -ext : ext + 1].astype(np.float32)
            u, v = xx / spec.a, yy / spec.b
            rho = self._rho(u, v)
            e = self._texture(rho, self._oval_fascicles(xx, yy, rho, rng))
        else:
            assert spec.half is not None  # a band spec has its half-heights
            self.href = float(spec.half.max())
            ext = int(np.ceil(self.href * (1 + BLEND + 0.15))) + 4
            self.r0 = float(ext)
            self.c0 = float(abs(spec.glide[1]) + 8)
            width = canvas_width + 2 * int(self.c0) + 1
            yy, xx = np.mgrid[-ext : ext + 1, 0:width].astype(np.float32)
            v = yy / self.href
            e = self._texture(np.abs(v), self._band_fascicles(v, rng))
        self.texture = power(analytic_speckle(e, rng, psf))

    # -- rest-frame texture ---------------------------------------------------------------
    def _rho(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Normalised radius: 1 on the nerve outline ``r(theta) = 1 + sum a_k cos(k theta + phi_k)``.

        ``cos(k theta + phi)`` is the real part of ``exp(i phi) z^k`` with ``z = (u + iv)/|u + iv|``,
        which avoids an arctan2 and one cosine per harmonic on every pixel of every frame.
        """
        r = np.hypot(u, v)
        inv = np.float32(1.0) / np.maximum(r, np.float32(1e-6))
        z = (u * inv) + 1j * (v * inv)
        zk = np.ones_like(z)
        outline = np.ones_like(r)
        k_done = 0
        for k, amp, phase in sorted(self.spec.harmonics):
            while k_done < k:
                zk *= z
                k_done += 1
            outline += np.float32(amp) * (zk * np.complex64(np.exp(1j * phase))).real
        return r / outline

    @staticmethod
    def _texture(rho: np.ndarray, fascicles: np.ndarray) -> np.ndarray:
        e = np.where(fascicles, FASCICLE, INTERFASCICULAR).astype(np.float32)
        e[(rho > RIM_INNER) & (rho <= 1.0)] = RIM
        e[rho > 1.0] = PERINEURAL
        return e

    def _oval_fascicles(self, xx, yy, rho, rng) -> np.ndarray:
        """Hypoechoic round fascicles packed inside the rim (honeycomb in cross-section)."""
        s = self.spec
        area = np.pi * s.a * s.b
        r_mean = max(1.5, 0.25 * np.sqrt(s.a * s.b))
        squash = (s.b / s.a) ** 0.3  # fascicles are flattened with the nerve
        target = int(np.clip(0.55 * area / (np.pi * r_mean**2), 4, 40))
        out = np.zeros(xx.shape, bool)
        centres: list[tuple[float, float, float]] = []
        for _ in range(target * 30):
            if len(centres) >= target:
                break
            cx, cy = rng.uniform(-s.a, s.a), rng.uniform(-s.b, s.b)
            r = r_mean * rng.uniform(0.7, 1.3)
            iy, ix = int(round(cy + self.r0)), int(round(cx + self.c0))
            if rho[iy, ix] > RIM_INNER - 0.05 - r / max(s.a, s.b):
                continue
            if any((cx - x) ** 2 + (cy - y) ** 2 < (r + q + 0.8) ** 2 for x, y, q in centres):
                continue
            centres.append((cx, cy, r))
            out |= (xx - cx) ** 2 + ((yy - cy) / squash) ** 2 < r * r
        return out & (rho < RIM_INNER)

    def _band_fascicles(self, v: np.ndarray, rng) -> np.ndarray:
        """Longitudinal striations: hypoechoic fascicles separated by thin, broken bright lines
        of interfascicular epineurium (the "parallel linear echoes" of a nerve cut along)."""
        n = int(rng.integers(2, 5))
        levels = np.linspace(-0.55, 0.55, n) + rng.uniform(-0.06, 0.06, n)
        half_line = max(0.9 / self.href, 0.04)  # about two pixels wide
        along = smooth_noise(v.shape, rng, (0.5, 12.0))
        septa = np.zeros(v.shape, bool)
        for k in range(n):
            wobble = 0.05 * smooth_noise(v.shape, rng, (0.5, 30.0))
            septa |= (np.abs(v - levels[k] - wobble) < half_line) & (along > -0.9 + 0.4 * (k % 2))
        return ~septa & (np.abs(v) < RIM_INNER)

    # -- per frame ------------------------------------------------------------------------
    def render(
        self, frame_shape, oy: int, ox: int, row_shift: np.ndarray, col_shift: np.ndarray, flex: float
    ) -> NervePatch | None:
        """Nerve patch of the frame whose canvas origin is ``(oy, ox)``.

        Frame pixel ``(y, x)`` sees canvas pixel ``(y + oy + col_shift[x], x + ox + row_shift[y])``
        (integer offsets: a small in-plane probe rotation); ``flex`` in [0, 1] is finger flexion.
        Returns None if the nerve is entirely out of view.
        """
        s = self.spec
        h, w = frame_shape
        gy, gx = s.glide[0] * flex, s.glide[1] * flex
        dy_max = int(np.abs(col_shift).max()) if len(col_shift) else 0
        if s.kind == "oval":
            a, b = s.a * (1 + s.flatten * flex), s.b * (1 - s.flatten * flex)
            cy, cx = s.cy + gy - oy, s.cx + gx - ox
            ext = max(a, b) * (1 + BLEND) + 2
            r_lo, r_hi = max(0, int(cy - ext) - dy_max), min(h, int(np.ceil(cy + ext)) + 1 + dy_max)
            if r_hi <= r_lo:
                return None
            shift = row_shift[r_lo:r_hi]
            c_lo = max(0, int(cx - ext - shift.max()))
            c_hi = min(w, int(np.ceil(cx + ext - shift.min())) + 1)
            if c_hi <= c_lo:
                return None
            yy = np.arange(r_lo, r_hi, dtype=np.float32)[:, None] + (col_shift[None, c_lo:c_hi] - cy).astype(np.float32)
            xx = np.arange(c_lo, c_hi, dtype=np.float32)[None, :] + (shift[:, None] - cx).astype(np.float32)
            c, sn = np.float32(np.cos(s.angle)), np.float32(np.sin(s.angle))
            u = (c * xx + sn * yy) * np.float32(1 / a)
            v = (c * yy - sn * xx) * np.float32(1 / b)
            rho = self._rho(u, v)
            ty, tx = v * np.float32(s.b) + np.float32(self.r0), u * np.float32(s.a) + np.float32(self.c0)
        else:
            # Rows the band can touch, from 1D bounds first (cheap), then 2D on those rows only.
            centre_y, band_half = s.centre_y, s.half
            assert centre_y is not None and band_half is not None  # a band spec has both
            n_cols = len(centre_y)
            lo_c = np.clip(np.arange(w) + ox + row_shift.min(), 0, n_cols - 1)
            hi_c = np.clip(np.arange(w) + ox + row_shift.max(), 0, n_cols - 1)
            ext = float(band_half.max()) * (1 + BLEND) + 2 + dy_max
            c_min = min(centre_y[lo_c].min(), centre_y[hi_c].min()) + gy - oy
            c_max = max(centre_y[lo_c].max(), centre_y[hi_c].max()) + gy - oy
            r_lo, r_hi = max(0, int(c_min - ext)), min(h, int(np.ceil(c_max + ext)) + 1)
            if r_hi <= r_lo:
                return None
            c_lo, c_hi = 0, w
            cols = np.clip(np.arange(w)[None, :] + ox + row_shift[r_lo:r_hi, None], 0, n_cols - 1)
            centre = centre_y[cols] + (gy - oy - col_shift[None, :]).astype(np.float32)
            half = band_half[cols] * np.float32(1 - s.flatten * flex)
            v = (np.arange(r_lo, r_hi, dtype=np.float32)[:, None] - centre) / half
            rho = np.abs(v)
            ty = v * np.float32(self.href) + np.float32(self.r0)
            tx = cols.astype(np.float32) + np.float32(self.c0 - gx)
        mask = rho <= 1.0
        weight = np.clip((1.0 + BLEND - rho) / BLEND, 0.0, 1.0).astype(np.float32)
        return NervePatch(slice(r_lo, r_hi), slice(c_lo, c_hi), mask, weight, self._sample(ty, tx))

    def _sample(self, ty: np.ndarray, tx: np.ndarray) -> np.ndarray:
        """Bilinear lookup of the rest-frame texture (edge-clamped), float32 like ty."""
        th, tw = self.texture.shape
        ty = np.clip(ty, 0, th - 1.001)
        tx = np.clip(tx, 0, tw - 1.001)
        iy, ix = ty.astype(np.intp), tx.astype(np.intp)
        fy, fx = ty - iy, tx - ix
        flat = self.texture.ravel()
        i00 = iy * tw + ix
        top = np.take(flat, i00) * (1 - fx) + np.take(flat, i00 + 1) * fx
        bottom = np.take(flat, i00 + tw) * (1 - fx) + np.take(flat, i00 + tw + 1) * fx
        return (top * (1 - fy) + bottom * fy).astype(np.float32, copy=False)
