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
  see :func:`geometry`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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


def _per_window(values, ndim: int):
    """``(B,)`` -> ``(B, 1, ..., 1)`` broadcasting over a ``ndim``-dimensional batch."""
    return values.view(-1, *([1] * (ndim - 1)))


def intensity(frames, p: dict):
    """Gain, gamma and contrast (pivot: the window's mean) as one pointwise map -> float32 [0, 1]."""
    import torch

    if frames.dtype == torch.uint8:
        return _intensity_lut(frames, p)
    x = frames.float()
    g = [_per_window(p[k], x.ndim) for k in ("gain", "gamma", "contrast")]
    x = (x * g[0]).clamp_(0.0, 1.0).pow_(g[1])
    pivot = x.mean(dim=tuple(range(1, x.ndim)), keepdim=True)
    return x.sub_(pivot).mul_(g[2]).add_(pivot).clamp_(0.0, 1.0)


def _intensity_lut(frames, p: dict):
    """uint8 frames through a 256-entry table per window (the map is pointwise, so exact, and it
    is also the conversion to float: no ``pow`` per pixel)."""
    import torch

    b = frames.shape[0]
    levels = torch.arange(256, dtype=torch.float32, device=frames.device) / 255.0
    lut = (levels[None] * p["gain"][:, None]).clamp_(0.0, 1.0).pow_(p["gamma"][:, None])  # (B, 256)
    # the pivot from every 4th row and column (a window's mean is stable at 1/16 of the pixels):
    # its histogram per window, weighted by the table
    sub = frames[..., ::4, ::4].reshape(b, -1).long()
    offset = torch.arange(b, device=frames.device)[:, None] * 256
    hist = torch.bincount((sub + offset).reshape(-1), minlength=256 * b).view(b, 256).float()
    pivot = (hist * lut).sum(1, keepdim=True) / hist.sum(1, keepdim=True).clamp_(min=1)
    lut = lut.sub_(pivot).mul_(p["contrast"][:, None]).add_(pivot).clamp_(0.0, 1.0)
    if frames.device.type == "cpu":
        # numpy's take indexes with the uint8 array itself; torch's indexing first widens every
        # pixel to int64 (8x the bytes), about 5x slower on CPU. One take per window, not per frame.
        import numpy as np

        flat = frames.reshape(b, -1).numpy()
        table = lut.numpy()
        out = np.empty(flat.shape, np.float32)
        for i in range(b):
            np.take(table[i], flat[i], out=out[i])
        return torch.from_numpy(out).view(frames.shape)
    index = frames.reshape(b, -1).long() + offset
    return lut.reshape(-1)[index].view(frames.shape)


def geometry(frames, masks, p: dict):
    """One ``grid_sample`` per batch when a window in it gets an affine: frames bilinear, masks
    nearest; a flip alone is a flip. Returns the masks passed in when nothing moves.

    In a batch with an affine, a window without one gets the identity (or the flip) as its map,
    whose sampling points fall on pixel centres (exactly so for power-of-two sizes; within ~1e-6
    of a pixel otherwise): resampling it costs less than gathering the chosen windows out and
    scattering them back, and on a GPU it needs no host sync.
    """
    import torch
    import torch.nn.functional as F

    shape, (h, w) = frames.shape, frames.shape[-2:]
    if not bool(p["do_affine"].any()):
        if not bool(p["flip"].any()):
            return frames, masks
        if bool(p["flip"].all()):
            return frames.flip(-1), masks.flip(-1)
        flip = p["flip"].view(-1, *([1] * (len(shape) - 1)))
        return torch.where(flip, frames.flip(-1), frames), torch.where(flip, masks.flip(-1), masks)
    b = shape[0]
    grid = F.affine_grid(affine_theta(p, h, w), [b, 1, h, w], align_corners=False)
    frames = F.grid_sample(
        frames.reshape(b, -1, h, w), grid, mode="bilinear", padding_mode="zeros", align_corners=False
    ).view(shape)
    return frames, nearest(masks, grid)


def nearest(masks, grid):
    """``masks (B, ..., H, W)`` sampled at the nearest pixel of ``grid (B, H, W, 2)`` (normalised
    x, y, align_corners=False), 0 outside: what ``grid_sample(mode="nearest")`` gives (the same
    half-to-even rounding), but one index per output pixel shared by the window's frames and a
    gather in the masks' own dtype, about 2x cheaper on CPU than a float ``grid_sample`` and the
    two conversions around it; labels stay exactly 0/1."""
    import torch

    b, (h, w) = masks.shape[0], masks.shape[-2:]
    ix = torch.round(((grid[..., 0] + 1) * w - 1) / 2)
    iy = torch.round(((grid[..., 1] + 1) * h - 1) / 2)
    inside = ((ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)).view(b, 1, h * w)
    index = (iy.clamp_(0, h - 1) * w + ix.clamp_(0, w - 1)).long().view(b, 1, h * w)
    flat = masks.reshape(b, -1, h * w)
    out = torch.gather(flat, 2, index.expand(-1, flat.shape[1], -1))
    return out.mul_(inside.to(out.dtype)).view(masks.shape)


def affine_theta(p: dict, h: int, w: int):
    """``(B, 2, 3)`` output->input maps in normalised coordinates (``affine_grid``'s ``theta``).

    Normalised coordinates are anisotropic for non-square frames: the rotation is made in pixel
    units (the ``aspect`` factors), so a disc stays a disc.
    """
    import torch

    identity = ~p["do_affine"]
    angle = torch.where(identity, 0.0, p["angle"])
    scale = torch.where(identity, 1.0, p["scale"])
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    tx, ty = torch.where(identity, 0.0, p["tx"]), torch.where(identity, 0.0, p["ty"])
    aspect = w / h
    fx = torch.where(p["flip"], -1.0, 1.0).to(cos.dtype)
    row0 = torch.stack([cos * fx, -sin / aspect, tx], dim=1)
    row1 = torch.stack([sin * aspect * fx, cos, ty], dim=1)
    return torch.stack([row0, row1], dim=1)


def texture(frames, p: dict, generator, out):
    """Depth attenuation (``a = 0`` where intensity is off) and speckle (``sigma = 0`` where it is
    off) as one multiplication into ``out``, then the clamp to [0, 1] (only speckle can leave it)."""
    import torch

    b, h = frames.shape[0], frames.shape[-2]
    depth = torch.arange(h, dtype=frames.dtype, device=frames.device) / max(h - 1, 1)
    ramp = torch.exp(-p["attenuation"][:, None] * depth[None])  # (B, H)
    sigma = torch.where(p["do_speckle"], p["sigma"], 0.0)
    attenuated = bool((p["attenuation"] > 0).any())
    if bool((sigma > 0).any()):
        noise = speckle_noise(frames.shape, sigma, generator)
        _multiply_grain(frames, noise, ramp if attenuated else None, out).clamp_(0.0, 1.0)
    elif attenuated:
        torch.mul(frames, ramp.view(b, *([1] * (frames.ndim - 3)), h, 1), out=out)
    else:
        out.copy_(frames)
    return out


def speckle_noise(shape, sigma, generator):
    """``1 + sigma * n`` at half resolution ``(B, F, ceil(H/2), ceil(W/2))``, ``F`` = the frames
    of a window: real speckle has a grain (it is not i.i.d. per pixel), and a quarter of the numbers.
    Drawn for every window of the batch (sigma 0: exactly 1)."""
    import torch

    b, (h, w) = shape[0], shape[-2:]
    noise = torch.randn(
        (b, math.prod(shape[1:-2]), (h + 1) // 2, (w + 1) // 2), generator=generator, device=sigma.device
    )
    return noise.mul_(sigma.view(b, 1, 1, 1)).add_(1.0)


def _multiply_grain(frames, noise, ramp, out):
    """``out = frames * noise (* ramp)``, each noise value covering a 2x2 block and the ramp a row.

    The noise is widened along rows only (half the frames' size) and broadcast over each pair of
    rows: a broadcast whose innermost dimension is the 2-pixel grain runs ~5x slower on CPU.
    """
    import torch
    import torch.nn.functional as F

    h, w = frames.shape[-2:]
    b, f, hh, _ = noise.shape
    if h % 2 == 0:
        wide = noise.repeat_interleave(2, dim=-1)[..., :w]
        torch.mul(frames.reshape(b, f, hh, 2, w), wide.view(b, f, hh, 1, w), out=out.view(b, f, hh, 2, w))
    else:
        big = F.interpolate(noise, scale_factor=2, mode="nearest")[..., :h, :w]
        torch.mul(frames.reshape(b, f, h, w), big, out=out.view(b, f, h, w))
    if ramp is not None:
        out.view(b, f, h, w).mul_(ramp.view(b, 1, h, 1))
    return out
