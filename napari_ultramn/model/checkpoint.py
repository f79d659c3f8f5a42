"""Checkpoints that rebuild the model on their own, and running a trained model over a clip.

A checkpoint (``best.pt`` / ``last.pt`` in a run folder) is a dict::

    format="ultramn-checkpoint", format_version=1
    model_config    model.config: the constructor arguments (network.model_from_config rebuilds it)
    model_state     state_dict (never the DDP wrapper's: keys have no 'module.' prefix)
    plane_labels    the label vocabulary (index = plane code of the plane heads)
    input_size      (H, W) of the training frames; window: T of the training windows
    epoch, step     finished epoch (0-based) and optimizer steps so far
    optimizer, scheduler, scaler, rng     states for an exact resume
    metrics         validation metrics of that epoch; best_score; args (train_run arguments)
    plane_class_weights   the per-frame plane loss's class weights (one per label) or None; a
                    resume reuses them (absent in checkpoints from before weighting: unweighted)

Inference (:func:`predict_clip`) lives here rather than in the trainer so evaluation and
pre-annotation share one definition of "the model's output on a clip".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path
from ..errors import InputError

FORMAT = "ultramn-checkpoint"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (see module docstring) atomically with ``torch.save``."""
    import torch

    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "format_version": 1, **state}, tmp)
    return path


def resolve_checkpoint(run: str | Path, which: str = "best") -> Path:
    """``run`` is a run folder (-> best.pt, else last.pt) or a checkpoint file."""
    run = Path(run)
    if run.is_file():
        return run
    if not run.is_dir():
        raise InputError(run, "no such run folder or checkpoint")
    for name in (f"{which}.pt", "best.pt", "last.pt"):
        if (run / name).is_file():
            return run / name
    raise InputError(run, "has no checkpoint (best.pt or last.pt); train first")


def load_checkpoint(run: str | Path, which: str = "best") -> dict:
    """Read a checkpoint onto the CPU; corrupt or foreign files raise :class:`InputError`."""
    import torch

    path = resolve_checkpoint(run, which)
    try:
        # our checkpoints hold optimizer/RNG states and plain containers: weights_only=False
        # is needed for numpy RNG state; only open checkpoints you trust (as with any pickle).
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file to the user
        raise InputError(path, f"cannot read checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise InputError(path, "is not an UltraMN checkpoint")
    ckpt["path"] = str(path)
    return ckpt


def model_from_checkpoint(ckpt: dict | str | Path):
    """Rebuild the network from a checkpoint alone; returns ``(model in eval mode, ckpt)``."""
    from . import network

    if not isinstance(ckpt, dict):
        ckpt = load_checkpoint(ckpt)
    model = network.model_from_config(dict(ckpt["model_config"]))
    model.load_state_dict(ckpt["model_state"])
    model.eval()
    return model, ckpt


def resize_stack(stack: np.ndarray, size: tuple[int, int], order: int = 1) -> np.ndarray:
    """Resize ``(T, H, W)`` (or ``(T, C, H, W)``) to ``size``; identity when it already fits."""
    size = tuple(int(s) for s in size)
    if tuple(stack.shape[-2:]) == size:
        return stack
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32))
    squeeze = x.ndim == 3
    if squeeze:
        x = x[:, None]
    mode = "bilinear" if order else "nearest"
    kw = {"align_corners": False} if order else {}
    y = F.interpolate(x, size=size, mode=mode, **kw)
    return (y[:, 0] if squeeze else y).numpy()


def window_starts(n_frames: int, window: int) -> list[int]:
    """Start frames of windows covering ``n_frames``; the last window is aligned to the end."""
    if n_frames <= window:
        return [0]
    starts = list(range(0, n_frames - window + 1, window))
    if starts[-1] + window < n_frames:
        starts.append(n_frames - window)
    return starts


def predict_clip(model, frames: np.ndarray, *, window: int, input_size=None, device="cpu", batch_windows: int = 4):
    """Run the model over a whole clip in windows; probabilities at the clip's own frame size.

    ``frames``: ``(T, H, W)`` uint8 (or float in [0, 1]). Clips shorter than ``window`` are padded
    by repeating the last frame. Returns a dict of numpy arrays:
    ``nerve_prob (T, H, W) float32``, ``presence_prob (T,)``, ``plane_prob (T, P)`` (softmax of
    the per-frame head), ``clip_plane_prob (P,)`` (mean of the per-window clip heads).
    """
    import torch

    frames = np.asarray(frames)
    scale = 255.0 if frames.dtype == np.uint8 else 1.0
    x = frames.astype(np.float32) / scale
    n, h, w = x.shape
    if input_size is not None:
        x = resize_stack(x, input_size)
    if n < window:
        x = np.concatenate([x, np.repeat(x[-1:], window - n, axis=0)])
    starts = window_starts(len(x), window)
    seg_sum = np.zeros(x.shape, np.float32)
    pres_sum = np.zeros(len(x), np.float32)
    plane_sum = None
    count = np.zeros(len(x), np.float32)
    clip_probs = []
    model = model.to(device).eval()
    with torch.inference_mode():
        for i in range(0, len(starts), batch_windows):
            chunk = starts[i : i + batch_windows]
            batch = torch.from_numpy(np.stack([x[s : s + window] for s in chunk])[:, None]).to(device)
            out = model(batch)
            seg = torch.sigmoid(out["seg"].float())[:, 0].cpu().numpy()
            pres = torch.sigmoid(out["presence"].float()).cpu().numpy()
            plane = torch.softmax(out["plane_frame"].float(), -1).cpu().numpy()
            clip_probs.append(torch.softmax(out["plane_clip"].float(), -1).cpu().numpy())
            if plane_sum is None:
                plane_sum = np.zeros((len(x), plane.shape[-1]), np.float32)
            for j, s in enumerate(chunk):
                seg_sum[s : s + window] += seg[j]
                pres_sum[s : s + window] += pres[j]
                plane_sum[s : s + window] += plane[j]
                count[s : s + window] += 1
    seg = (seg_sum / count[:, None, None])[:n]
    if seg.shape[1:] != (h, w):
        seg = resize_stack(seg, (h, w))
    return {
        "nerve_prob": np.clip(seg, 0.0, 1.0).astype(np.float32),
        "presence_prob": (pres_sum / count)[:n],
        "plane_prob": (plane_sum / count[:, None])[:n],
        "clip_plane_prob": np.concatenate(clip_probs).mean(0),
    }
