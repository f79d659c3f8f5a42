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

from ..errors import InputError

FORMAT = "ultramn-checkpoint"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (see module docstring) atomically with ``torch.save``."""
    import io

    import torch

    from ..atomic import atomic_write_bytes

    path = Path(path)
    # serialise in memory, then write through atomic_write_bytes: torch.save writing to a full disk
    # raises a RuntimeError from its zip writer, where ours raises one OutputError naming the file
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "format_version": 1, **state}, buffer)
    atomic_write_bytes(path, buffer.getvalue())
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
    size = (int(size[0]), int(size[1]))
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


def predict_clip(model, frames: np.ndarray, *, window: int, input_size=None, device="cpu", chunk_frames: int = 64):
    """Run the model causally over a whole clip; probabilities at the clip's own frame size.

    Every output frame sees its full causal past: the clip goes through
    :meth:`StreamingUltraMN.process <napari_ultramn.model.stream.StreamingUltraMN.process>` in
    chunks of ``max(window, chunk_frames)`` frames, exactly as a live stream would see it.
    (Cutting the clip into independent windows would restart the temporal convolutions at every
    window start, blinding exactly the frames where a probe tilts out of plane to what came
    before.)

    ``frames``: ``(T, H, W)`` uint8 (or float in [0, 1]). Returns a dict of numpy arrays:
    ``nerve_prob (T, H, W) float32``, ``presence_prob (T,)``, ``plane_prob (T, P)`` (softmax of
    the per-frame head), ``clip_plane_prob (P,)`` (the clip head on the whole clip).
    """
    from .stream import StreamingUltraMN

    frames = np.asarray(frames)
    if frames.ndim != 3 or 0 in frames.shape:
        raise ValueError(f"frames must be a non-empty (T, H, W) array; got shape {frames.shape}")
    scale = 255.0 if frames.dtype == np.uint8 else 1.0
    x = frames.astype(np.float32) / scale
    h, w = x.shape[1:]
    if input_size is not None:
        x = resize_stack(x, input_size)
    stream = StreamingUltraMN(model.to(device).eval(), device=device)
    out = stream.process(x, chunk=max(int(window), int(chunk_frames)))
    seg = out["mask_prob"]
    if seg.shape[1:] != (h, w):
        seg = resize_stack(seg, (h, w))
    return {
        "nerve_prob": np.clip(seg, 0.0, 1.0).astype(np.float32),
        "presence_prob": out["presence"],
        "plane_prob": out["plane_probs"],
        "clip_plane_prob": out["clip_plane_probs"],
    }
