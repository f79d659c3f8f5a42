"""BASELINE ONLY: the per-window augmentation the training loader ran in its workers until issue 16.

Kept verbatim (it was ``dataset_tools/augment.py``) for two readers: ``benchmarks/bench_augment.py``
times it against the batched on-device version (:mod:`napari_ultramn.model.augment`), and
``tests/test_model_augment.py`` checks that both give the same distributions. Nothing else imports
it; training uses :mod:`napari_ultramn.model.augment`.

Ultrasound-aware augmentation of clip windows, identical for frames and masks, seeded.

What ultrasound allows and what it does not:

* **Lateral (horizontal) flip** only. Rows are depth below the probe: the skin is always at the
  top and the signal fades with depth, so a vertical flip makes an image no scanner produces. A
  lateral flip is a left arm seen as a right arm, which is anatomy the model must handle anyway.
* **Small rotation, scale and translation** as *one* affine per window (probe tilt, zoom, slide
  held over a short clip): one sampling grid (``affine_grid``'s, from a cached base grid) shared
  by every frame and mask, then one ``grid_sample`` for the frames (bilinear); the masks are
  gathered at the nearest pixel of the same grid, so labels stay 0/1.
  Outside the field of view is black, as outside a real sector.
* **Intensity** on frames only: overall gain, gamma and contrast around the window's mean (one
  pointwise map; a 256-entry lookup table when frames come as uint8, which is also the
  conversion to float), a depth attenuation ramp ``exp(-a * depth)`` (time-gain compensation set
  differently) and multiplicative speckle ``x * (1 + sigma * n)`` with a 2-pixel grain.

Randomness comes only from the ``torch.Generator`` passed in; :func:`window_generator` seeds one
from ``(seed, epoch, index)`` so a window's augmentation is reproducible whatever worker draws it.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from napari_ultramn.model.augment import Augment as BatchAugment


def window_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed mixing the three numbers (SeedSequence avoids correlated neighbours)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch) & 0xFFFFFFFF, int(index)])
    return int(state.generate_state(1, dtype=np.uint64)[0]) & ((1 << 63) - 1)


def window_generator(seed: int, epoch: int, index: int):
    import torch

    return torch.Generator().manual_seed(window_seed(seed, epoch, index))


class Augment(BatchAugment):
    """Random ultrasound augmentations; each ``p_*`` is the chance that transform is applied.

    Call with ``frames (C, T, H, W)`` uint8 or float in [0, 1], ``masks (C', T, H, W)`` 0/1 of
    any dtype, and a ``torch.Generator``; returns ``(frames float32 in [0, 1], masks in their
    dtype)``, same shapes. uint8 in is the fast path the training loader used.

    The parameters, their defaults and their checks are the batched version's (inherited), so the
    two compare like with like; only ``__call__`` (one window) is the old one.
    """

    def __call__(self, frames, masks, generator):
        """``frames`` uint8 (fast path: intensity through a 256-entry lookup table) or float."""
        import torch

        def u(lo=0.0, hi=1.0):
            return lo + (hi - lo) * float(torch.rand((), generator=generator))

        # draw every parameter up front, in a fixed order, so the stream never depends on branches
        flip, do_affine = u() < self.p_flip, u() < self.p_affine
        angle = math.radians(u(-self.rotate_deg, self.rotate_deg))
        s = math.exp(u(math.log(self.scale[0]), math.log(self.scale[1])))
        tx, ty = u(-self.translate, self.translate), u(-self.translate, self.translate)
        do_speckle, sigma = u() < self.p_speckle, u(0.0, self.speckle)
        do_int = u() < self.p_intensity
        gain, atten = u(*self.gain), u(*self.attenuation)
        gamma = math.exp(u(math.log(self.gamma[0]), math.log(self.gamma[1])))
        contrast = u(*self.contrast)

        frames = self._intensity(frames, gain, gamma, contrast, do_int)
        if do_affine:
            frames, masks = self._affine(frames, masks, angle, s, tx, ty, flip)
        elif flip:
            frames, masks = frames.flip(-1), masks.flip(-1)
        h = frames.shape[-2]
        if do_int and atten > 0:
            depth = torch.arange(h, dtype=frames.dtype) / max(h - 1, 1)
            frames = frames * torch.exp(-atten * depth).view(h, 1)
        if do_speckle and sigma > 0:
            frames = frames * self._speckle(frames.shape, sigma, generator)
        return frames.clamp_(0.0, 1.0), masks

    @staticmethod
    def _intensity(frames, gain, gamma, contrast, enabled):
        """Gain, gamma and contrast (pivot: the window's mean) as one pointwise map -> float32."""
        import torch

        if frames.dtype == torch.uint8:
            if not enabled:
                return frames.float().div_(255.0)
            lut = (torch.arange(256, dtype=torch.float32) / 255.0 * gain).clamp_(0.0, 1.0).pow_(gamma)
            # the pivot from a strided subsample: a window's mean is stable at 1/16 of the pixels
            pivot = lut[frames[..., ::4, ::4].long()].mean()
            lut = lut.sub_(pivot).mul_(contrast).add_(pivot).clamp_(0.0, 1.0)
            # numpy's take indexes with the uint8 array directly (torch would need int64 first)
            return torch.from_numpy(np.take(lut.numpy(), frames.numpy()))
        frames = frames.float()
        if not enabled:
            return frames
        frames = (frames * gain).clamp_(0.0, 1.0).pow_(gamma)
        pivot = frames.mean()
        return frames.sub_(pivot).mul_(contrast).add_(pivot).clamp_(0.0, 1.0)

    @staticmethod
    def _speckle(shape, sigma, generator):
        """Multiplicative noise ``1 + sigma * n`` with a 2-pixel grain (real speckle is not i.i.d.
        per pixel), drawn at half resolution and enlarged - also 4x fewer random numbers."""
        import torch
        import torch.nn.functional as F

        *lead, h, w = shape
        noise = torch.randn((1, int(np.prod(lead)), (h + 1) // 2, (w + 1) // 2), generator=generator)
        noise = F.interpolate(noise, scale_factor=2, mode="nearest")[..., :h, :w].reshape(shape)
        return noise.mul_(sigma).add_(1.0)

    @staticmethod
    def _affine(frames, masks, angle, scale, tx, ty, flip):
        """One output->input affine for the whole window: frames bilinear, masks nearest."""
        import torch
        import torch.nn.functional as F

        h, w = frames.shape[-2:]
        cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
        # normalised coordinates are anisotropic for non-square frames: rotate in pixel units
        aspect = w / h
        fx = -1.0 if flip else 1.0
        theta = torch.tensor(
            [[cos * fx, -sin / aspect, tx], [sin * aspect * fx, cos, ty]], dtype=torch.float32
        ).unsqueeze(0)
        # = F.affine_grid(theta, [1, 1, h, w], align_corners=False), from a cached base grid
        grid = (_base_grid(h, w) @ theta[0].T).view(1, h, w, 2)
        f = F.grid_sample(
            frames.reshape(1, -1, h, w), grid, mode="bilinear", padding_mode="zeros", align_corners=False
        ).reshape(frames.shape)
        return f, _nearest(masks, grid[0])


@functools.lru_cache(maxsize=8)
def _base_grid(h: int, w: int):
    """``(H*W, 3)`` homogeneous pixel-centre coordinates in [-1, 1] (align_corners=False)."""
    import torch

    ys = (torch.arange(h, dtype=torch.float32) * 2 + 1) / h - 1
    xs = (torch.arange(w, dtype=torch.float32) * 2 + 1) / w - 1
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1), torch.ones(h * w)], dim=1)


def _nearest(masks, grid):
    """Nearest-neighbour resampling of ``masks (..., H, W)`` at ``grid (H, W, 2)`` (normalised x, y,
    align_corners=False), by a gather in the masks' own dtype: cheaper than ``grid_sample`` and
    labels stay exactly 0/1. Samples outside the frame are 0."""
    import torch

    h, w = masks.shape[-2:]
    ix = torch.round(((grid[..., 0] + 1) * w - 1) / 2).long()
    iy = torch.round(((grid[..., 1] + 1) * h - 1) / 2).long()
    inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    index = torch.where(inside, iy * w + ix, h * w).reshape(-1).numpy()  # h*w: a zero column
    flat = masks.reshape(-1, h * w).numpy()
    padded = np.concatenate([flat, np.zeros((flat.shape[0], 1), flat.dtype)], axis=1)
    return torch.from_numpy(np.take(padded, index, axis=1)).reshape(masks.shape)
