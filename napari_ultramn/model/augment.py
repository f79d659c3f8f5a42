"""Ultrasound-aware augmentation of a batch of clip windows, on the training device, seeded.

The loader only reads and decompresses (uint8); this runs after the batch has been moved to the
device (CPU or GPU), vectorised over the batch: one set of random parameters per window (per
sample ``b``), drawn from the ``torch.Generator`` passed in, so a run is reproducible for its seed.

What ultrasound allows and what it does not (the transforms and probabilities the per-window
augmentation in the loader's workers applied before, kept as they were; that version is now
``benchmarks/baseline_augment.py``, the benchmark's baseline):

* **Lateral (horizontal) flip** only (p 0.5). Rows are depth below the probe: the skin is always
  at the top and the signal fades with depth, so a vertical flip makes an image no scanner
  produces. A lateral flip is a left arm seen as a right arm.
* **Small rotation, scale and translation** (p 0.7) as *one* affine per window (probe tilt, zoom,
  slide held over a short clip): one ``affine_grid`` per window shared by its frames and masks;
  frames bilinear, masks nearest (labels stay 0/1). Outside the field of view is black, as
  outside a real sector.
* **Intensity** (p 0.8) on frames only: gain, gamma and contrast around the window's mean (one
  pointwise map, a 256-entry lookup table per window for uint8 frames), then after the geometry a
  depth attenuation ramp ``exp(-a * depth)`` (time-gain compensation set differently).
* **Speckle** (p 0.5): multiplicative ``x * (1 + sigma * n)`` with a 2-pixel grain, new noise
  in every frame (the probe moves between frames; the other parameters hold for the window).

Differences from the per-window version, none of which changes what a transform does or how often:

* The random stream is per batch, not per ``(seed, epoch, window index)``: the trainer seeds one
  generator per epoch from ``(seed, epoch, rank)`` and the loader's order is seeded too, so a run
  (and a resumed run) repeats exactly; a window's augmentation depends on the batch it falls in.
  CPU and CUDA generators give different streams (a run repeats on the same kind of device).
  On a CPU the windows are augmented one by one on a few threads (:mod:`.augment_cpu`), each with
  its speckle from its own seed, so the result does not depend on the thread count.
* The contrast pivot (the window's mean after gain and gamma) is taken from a 1/16 subsample
  (every 4th row and column) for uint8 frames, as before, and over all pixels for float frames.
* Masks are resampled at the nearest pixel with ``grid_sample``'s half-to-even rounding, where the
  old gather rounded half away from zero: the two differ only at points exactly between two pixels.
* Windows without an affine go through the same ``grid_sample`` with the identity (or flip) map;
  see :func:`.augment_batch.geometry`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .augment_batch import geometry, intensity, texture

#: Columns of the uniform draws per window, in the order they are taken from the generator.
_DRAWS = (
    "flip",
    "affine",
    "angle",
    "scale",
    "tx",
    "ty",
    "speckle",
    "sigma",
    "intensity",
    "gain",
    "attenuation",
    "gamma",
    "contrast",
)


def epoch_generator(seed: int, epoch: int, rank: int = 0, device="cpu"):
    """A generator on ``device`` for one epoch of one DDP rank: reproducible, and resuming at an
    epoch boundary continues the same stream. The three numbers are mixed by a SeedSequence so
    neighbouring seeds, epochs and ranks are not correlated streams."""
    import numpy as np
    import torch

    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch) & 0xFFFFFFFF, int(rank)])
    mixed = int(state.generate_state(1, dtype=np.uint64)[0]) & ((1 << 63) - 1)
    return torch.Generator(device=device).manual_seed(mixed)


@dataclass
class Augment:
    """Random ultrasound augmentations of a batch; each ``p_*`` is the chance per window.

    Call with ``frames (B, ..., H, W)`` uint8 or float in [0, 1] (the loader's ``(B, 1, T, H, W)``
    or ``(B, T, H, W)``), ``masks`` of the same shape, 0/1 in any dtype, on the same device, and a
    ``torch.Generator`` on that device. Returns ``(frames float32 in [0, 1], masks in their
    dtype)``, same shapes. Every frame and mask of one window gets the same geometry and the same
    intensity map.
    """

    p_flip: float = 0.5
    p_affine: float = 0.7
    rotate_deg: float = 10.0
    scale: tuple[float, float] = (0.9, 1.1)
    translate: float = 0.06  # fraction of the half-width / half-height
    p_speckle: float = 0.5
    speckle: float = 0.15  # largest std of the multiplicative noise
    gain: tuple[float, float] = (0.8, 1.25)
    attenuation: tuple[float, float] = (0.0, 0.7)  # exp(-a * depth/H), a in this range
    p_intensity: float = 0.8
    gamma: tuple[float, float] = (0.8, 1.25)
    contrast: tuple[float, float] = (0.85, 1.15)

    def __post_init__(self):
        for name in ("p_flip", "p_affine", "p_speckle", "p_intensity"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")
        for name in ("scale", "gain", "gamma", "contrast"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must be a range 0 < low <= high, got {(lo, hi)}")
        if not 0 <= self.attenuation[0] <= self.attenuation[1]:
            raise ValueError(f"attenuation must be a range 0 <= low <= high, got {self.attenuation}")
        if self.rotate_deg < 0 or self.translate < 0 or self.speckle < 0:
            raise ValueError("rotate_deg, translate and speckle must be >= 0")

    def sample(self, n: int, generator, device=None) -> dict:
        """The random parameters of ``n`` windows: ``(n,)`` tensors (booleans for the ``do_*``).

        One ``(n, 13)`` uniform draw in a fixed order, so the stream never depends on branches.
        Parameters of a transform not applied are set to its identity (gain 1, no attenuation...).
        """
        import torch

        u = torch.rand((n, len(_DRAWS)), generator=generator, device=device or generator.device)
        c = dict(zip(_DRAWS, u.unbind(1)))

        def between(x, lo, hi):
            return lo + (hi - lo) * x

        def log_between(x, lo, hi):
            return torch.exp(between(x, math.log(lo), math.log(hi)))

        do_int = c["intensity"] < self.p_intensity
        one = torch.ones_like(c["gain"])
        return {
            "flip": c["flip"] < self.p_flip,
            "do_affine": c["affine"] < self.p_affine,
            "angle": torch.deg2rad(between(c["angle"], -self.rotate_deg, self.rotate_deg)),
            "scale": log_between(c["scale"], *self.scale),
            "tx": between(c["tx"], -self.translate, self.translate),
            "ty": between(c["ty"], -self.translate, self.translate),
            "do_speckle": c["speckle"] < self.p_speckle,
            "sigma": between(c["sigma"], 0.0, self.speckle),
            "do_intensity": do_int,
            "gain": torch.where(do_int, between(c["gain"], *self.gain), one),
            "attenuation": torch.where(do_int, between(c["attenuation"], *self.attenuation), 0 * one),
            "gamma": torch.where(do_int, log_between(c["gamma"], *self.gamma), one),
            "contrast": torch.where(do_int, between(c["contrast"], *self.contrast), one),
        }

    def __call__(self, frames, masks, generator, out=None):
        """Augment a batch; ``out`` = ``(frames_out, masks_out)`` to write into (float32 frames,
        masks of any dtype, same shapes, on the same device): a trainer that reuses them each step
        saves a fresh batch's page faults (two 32 MB tensors at 8 x 16 x 256 x 256), about a third
        of the work on a CPU. Returns ``out`` or new tensors.

        On a CPU the windows go one by one over a few threads (:mod:`.augment_cpu`); on a GPU the
        whole batch goes through :meth:`batched`. Both apply the same transforms with the same
        parameters (:meth:`sample`); their speckle noise comes from different streams.
        """
        self._check(frames, masks, out)
        p = self.sample(frames.shape[0], generator, frames.device)
        if frames.device.type == "cpu":
            from napari_ultramn.model.augment_cpu import augment_windows, window_seeds

            return augment_windows(frames, masks, p, window_seeds(frames.shape[0], generator), out)
        return self._batched(frames, masks, p, generator, out)

    def batched(self, frames, masks, generator, out=None):
        """The whole batch through each transform at once, on any device (what a GPU runs)."""
        self._check(frames, masks, out)
        return self._batched(frames, masks, self.sample(frames.shape[0], generator, frames.device), generator, out)

    @staticmethod
    def _check(frames, masks, out) -> None:
        if frames.shape != masks.shape:
            raise ValueError(f"frames {tuple(frames.shape)} and masks {tuple(masks.shape)} differ in shape")
        if frames.ndim < 3:
            raise ValueError(f"frames must be (B, ..., H, W), got shape {tuple(frames.shape)}")
        if out is not None:
            import torch

            f, m = out
            if (
                f.shape != frames.shape
                or m.shape != masks.shape
                or f.dtype != torch.float32
                or not (f.is_contiguous() and m.is_contiguous())
            ):
                raise ValueError(
                    f"out must be contiguous float32 frames and masks of shape {tuple(frames.shape)}, "
                    f"got {f.dtype} {tuple(f.shape)} and {tuple(m.shape)}"
                )

    @staticmethod
    def _batched(frames, masks, p: dict, generator, out):
        import torch

        if out is None:
            out = (torch.empty(frames.shape, dtype=torch.float32, device=frames.device), torch.empty_like(masks))
        x, m = geometry(intensity(frames, p), masks, p)
        texture(x, p, generator, out=out[0])
        out[1].copy_(m)
        return out
