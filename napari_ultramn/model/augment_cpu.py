"""The CPU path of :class:`napari_ultramn.model.augment.Augment`: window by window, on a few threads.

On a GPU the whole batch goes through each transform in one launch. On a CPU that batching is what
made it slow: most kernels involved (``grid_sample`` over one window, the random normal draw, a
table lookup) run on one core whatever the batch, a whole batch's temporaries are fresh pages each
time, and deciding per window with tensors (``where``, ``any``, slices of 13 parameter tensors)
cost more than the arithmetic. Here the parameters become Python numbers once, each window takes
only the branches it drew, and the windows are spread over ``torch.get_num_threads()`` threads
(the kernels release the GIL). The transforms, their order and their probabilities are the
batched path's; the per-transform functions are shared with it where the shapes allow.

The result does not depend on the thread count: each window's speckle comes from its own
generator, seeded from the batch generator's stream (:func:`window_seeds`).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def window_seeds(n: int, generator) -> list[int]:
    """One seed per window from the batch generator (drawn after the parameters)."""
    import torch

    return torch.randint(0, 2**62, (n,), generator=generator, device=generator.device).tolist()


def augment_windows(frames, masks, params: dict, seeds: list[int], out=None):
    """``frames``/``masks`` ``(B, ..., H, W)`` on the CPU, ``params`` from ``Augment.sample``.

    Returns ``(float32 frames in [0, 1], masks)``: ``out`` when given (masks of any dtype), else
    new tensors (masks in their dtype).
    """
    import torch

    from napari_ultramn.model.augment_batch import affine_theta

    b, (h, w) = frames.shape[0], frames.shape[-2:]
    n_frames = frames[0].numel() // (h * w)
    thetas = affine_theta(params, h, w).tolist()
    keys = list(params)
    rows = [dict(zip(keys, values)) for values in zip(*(params[k].tolist() for k in keys))]
    if out is None:
        out = (torch.empty(frames.shape, dtype=torch.float32), torch.empty_like(masks))
    out_frames, out_masks = out
    flat = (b, n_frames, h, w)
    src_f, src_m = frames.reshape(flat), masks.reshape(flat)
    dst_f, dst_m = out_frames.view(flat), out_masks.view(flat)

    def one(i: int) -> None:
        _window(src_f[i], src_m[i], rows[i], thetas[i], seeds[i], dst_f[i], dst_m[i])

    # the costliest windows first (an affine, then speckle), so no thread is left with one at the end
    order = iter(sorted(range(b), key=lambda i: (rows[i]["do_affine"], rows[i]["do_speckle"]), reverse=True))
    taking = threading.Lock()

    def drain() -> None:
        while True:
            with taking:
                i = next(order, None)
            if i is None:
                return
            one(i)

    torch_threads = torch.get_num_threads()
    threads = min(b, max(1, torch_threads))
    if threads > 1:
        # the windows are the parallelism: an OpenMP team per elementwise op inside each thread only
        # spun against the other window (~10% of the CPU, measured). Our pool's threads take their
        # OpenMP setting from this, at their first op, and keep it; this thread gets its own back.
        torch.set_num_threads(1)
    helpers = [_pool(threads - 1).submit(drain) for _ in range(threads - 1)] if threads > 1 else []
    try:
        drain()  # this thread works too
    finally:
        wait(helpers)  # no helper still writing into ``out`` when this returns or raises
        if threads > 1:
            torch.set_num_threads(torch_threads)
    for helper in helpers:
        helper.result()  # re-raises a helper's error
    return out


def _pool(threads: int) -> ThreadPoolExecutor:
    """One pool per process and size (a forked DataLoader worker must not reuse its parent's,
    whose threads did not survive the fork)."""
    key = (os.getpid(), threads)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = ThreadPoolExecutor(threads, thread_name_prefix="augment")
        return pool


#: A window's frames go through the transforms a block at a time, about this many float32 bytes:
#: the block's temporaries then stay in cache between the passes (a 16-frame window at 256 x 256 is
#: 4 MB per pass; two threads working on whole windows evicted each other's). Set by the shapes
#: only, so the noise is drawn in the same pieces whatever the thread count.
BLOCK_BYTES = 1 << 20


def _window(frames, masks, q: dict, theta, seed: int, out, out_masks) -> None:
    """One window ``(F, H, W)``: intensity, geometry, attenuation and speckle into ``out``."""
    import torch

    n, h, w = frames.shape
    grid = _grid(theta, h, w) if q["do_affine"] else None
    if grid is not None:
        _nearest(masks, theta, out_masks)
    elif q["flip"]:  # flipping the uint8 input is a quarter of the bytes of flipping floats
        frames = frames.flip(-1)
        out_masks.copy_(masks.flip(-1))
    else:
        out_masks.copy_(masks)
    to_float = _intensity_map(frames, q)
    ramp = torch.exp(torch.arange(h, dtype=torch.float32) * (-q["attenuation"] / max(h - 1, 1)))
    sigma = q["sigma"] if q["do_speckle"] else 0.0
    generator = torch.Generator().manual_seed(seed) if sigma > 0 else None
    step = max(1, BLOCK_BYTES // (4 * h * w))
    for first in range(0, n, step):
        part = slice(first, first + step)
        # straight into the output when no resampling follows
        x = to_float(part, out[part] if grid is None else None)
        if grid is not None:
            x = torch.nn.functional.grid_sample(
                x[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False
            )[0]
        _texture(x, sigma, ramp if q["attenuation"] > 0 else None, generator, out[part])


def _intensity_map(frames, q: dict):
    """``to_float(part, into)``: the window's frames ``part`` after gain, gamma and contrast, as
    float32 (into ``into`` when not None)."""
    import torch

    if frames.dtype == torch.uint8 and q["do_intensity"]:
        table = _table(frames, q)
        return lambda part, into: _lookup(table, frames[part], into)
    if frames.dtype == torch.uint8:  # no intensity transform: x / 255, 4x cheaper than a lookup
        return lambda part, into: frames[part] / 255.0 if into is None else torch.div(frames[part], 255.0, out=into)
    # float frames: the contrast pivot is the mean of the whole window, so map it whole
    from napari_ultramn.model.augment_batch import intensity

    p = {k: torch.tensor([q[k]], dtype=torch.float32) for k in ("gain", "gamma", "contrast")}
    mapped = intensity(frames[None], p)[0]
    return lambda part, into: mapped[part] if into is None else into.copy_(mapped[part])


def _table(frames, q: dict):
    """Gain, gamma and contrast of a uint8 window as one 256-entry float32 table."""
    import numpy as np

    levels = np.arange(256, dtype=np.float64) / 255.0
    lut = np.clip(levels * q["gain"], 0.0, 1.0) ** q["gamma"]
    # the pivot (the window's mean after gain and gamma) from every 4th row and column, as the
    # batched path takes it
    hist = np.bincount(frames[..., ::4, ::4].contiguous().numpy().reshape(-1), minlength=256)
    pivot = float(hist @ lut) / max(int(hist.sum()), 1)
    return np.clip((lut - pivot) * q["contrast"] + pivot, 0.0, 1.0).astype(np.float32)


def _lookup(table, frames, out):
    """``table[frames]`` as float32 (into ``out`` when given)."""
    import numpy as np
    import torch

    target = torch.empty(frames.shape, dtype=torch.float32) if out is None else out
    # mode="wrap" skips the bounds check (a uint8 index is always in a 256-entry table): ~2x faster
    np.take(table, frames.contiguous().numpy().reshape(-1), out=target.numpy().reshape(-1), mode="wrap")
    return target


def _grid(theta, h: int, w: int):
    """``affine_grid(theta, align_corners=False)`` for one window, by broadcasting (``affine_grid``
    makes it with a batched matrix product with an inner size of 3, ~6x slower on a CPU)."""
    import torch

    xs, ys = _pixel_centres(h, w)
    (a, b, c), (d, e, f) = theta
    grid = torch.empty((1, h, w, 2), dtype=torch.float32)
    torch.add((xs * a)[None, :], (ys * b + c)[:, None], out=grid[0, ..., 0])
    torch.add((xs * d)[None, :], (ys * e + f)[:, None], out=grid[0, ..., 1])
    return grid


def _pixel_centres(h: int, w: int):
    """The output pixels' centres in normalised coordinates (``align_corners=False``): ``(xs, ys)``."""
    import torch

    xs = (torch.arange(w, dtype=torch.float32) * 2 + 1) / w - 1
    ys = (torch.arange(h, dtype=torch.float32) * 2 + 1) / h - 1
    return xs, ys


def _nearest(masks, theta, out) -> None:
    """The masks ``(F, H, W)`` at the nearest source pixel of the affine, 0 outside, into ``out``:
    what :func:`~napari_ultramn.model.augment.nearest` takes from the grid, with the pixel
    coordinates made from ``theta`` directly (two broadcast sums instead of a dozen passes)."""
    import torch

    n, h, w = masks.shape
    (a, b, c), (d, e, f) = theta
    # grid x -> source column: ((x + 1) * w - 1) / 2, with x = a * xs + b * ys + c (see _grid)
    xs, ys = _pixel_centres(h, w)
    col = torch.round((xs * (a * w / 2))[None, :] + (ys * (b * w / 2) + ((c + 1) * w - 1) / 2)[:, None])
    row = torch.round((xs * (d * h / 2))[None, :] + (ys * (e * h / 2) + ((f + 1) * h - 1) / 2)[:, None])
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    # outside the frame: the index of an extra pixel that is 0
    index = torch.where(inside, row * w + col, float(h * w)).long().view(1, h * w).expand(n, -1)
    padded = torch.zeros((n, h * w + 1), dtype=masks.dtype)
    padded[:, : h * w] = masks.reshape(n, h * w)
    out.view(n, h * w).copy_(torch.gather(padded, 1, index))


def _texture(x, sigma: float, ramp, generator, out) -> None:
    """Depth attenuation (``ramp``, or None) and speckle (``sigma`` > 0) of frames ``(f, H, W)``
    into ``out``, then the clamp."""
    import torch

    from napari_ultramn.model.augment_batch import multiply_grain

    h, w = x.shape[-2:]
    if sigma > 0:
        noise = torch.randn((1, x.shape[0], (h + 1) // 2, (w + 1) // 2), generator=generator)
        multiply_grain(x[None], noise.mul_(sigma).add_(1.0), None if ramp is None else ramp[None], out[None])
        out.clamp_(0.0, 1.0)
    elif ramp is not None:
        torch.mul(x, ramp[:, None], out=out)
    elif x.data_ptr() != out.data_ptr():
        out.copy_(x)
