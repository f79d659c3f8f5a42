"""The whole-batch path of :class:`napari_ultramn.model.augment.Augment` (what a GPU runs): each
transform over every window of the batch at once, with the random parameters as ``(B,)`` tensors.

The CPU's window-by-window path (:mod:`.augment_cpu`) shares :func:`affine_theta`,
:func:`intensity` (float frames) and :func:`multiply_grain` with it.
"""

from __future__ import annotations

import math


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
        multiply_grain(frames, noise, ramp if attenuated else None, out).clamp_(0.0, 1.0)
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


def multiply_grain(frames, noise, ramp, out):
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
