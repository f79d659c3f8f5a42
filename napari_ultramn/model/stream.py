"""Live inference: one ultrasound frame in, one mask, presence and plane estimate out.

UltraMNet's temporal convolutions are causal, so output frame t needs input frames <= t only.
:class:`StreamingUltraMN` keeps, for every causal temporal convolution, the last ``k - 1`` frames
of its input; each new frame then costs one frame's work and adds no window of buffering
latency. Outputs equal those of the full-window forward at the same frame (with the window
starting at the last ``reset()``), up to float rounding. The clip-plane estimate is the clip
head on the running mean of the frame features since ``reset()``, which is exactly what the
window forward computes over the same frames.

Works for every model of :func:`~napari_ultramn.model.network.build_model`; the 2D U-Net simply
has no state.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from napari_ultramn.model.blocks import fold_batchnorm
from napari_ultramn.model.frames_model import FramesModel


class StreamingUltraMN:
    """Run a trained model frame by frame.

    Args:
        model: an UltraMNet / UNet2D (any ``FramesModel``). The stream works on its own
            eval-mode copy (BatchNorm folded into the convolutions), so later training of
            ``model`` does not change a running stream.
        device: where to run; default: the model's device.
        channels_last: NHWC memory layout. On 2 CPU cores it made UltraMNet slower (its
            channel concatenations stride) and the 2D U-Net faster; worth a try on GPU.
        half: run in float16 (CUDA only).

    ``step(frame)`` takes an ``(H, W)`` frame (``(C, H, W)`` for multi-channel models):
    uint8 ndarray (0-255) or float ndarray/tensor in [0, 1], and returns
    ``mask_prob (H, W)``, ``presence`` (float), ``plane_probs (P,)`` (this frame's plane),
    ``clip_plane_probs (P,)`` (plane of the clip so far) and ``frame_index``. Arrays come back
    as numpy float32 for ndarray input and as tensors (on the model's device) for tensor input.
    """

    def __init__(
        self,
        model: FramesModel,
        device: str | torch.device | None = None,
        channels_last: bool = False,
        half: bool = False,
    ):
        if not hasattr(model, "forward_frames") or not hasattr(model, "heads"):
            raise TypeError(f"StreamingUltraMN needs a model from build_model(); got {type(model).__name__}")
        if device is None:
            device = next(model.parameters()).device
        self.device = torch.device(device)
        if half and self.device.type != "cuda":
            raise ValueError("half=True needs a CUDA device (float16 convolutions are slow or missing on CPU)")
        self.dtype = torch.float16 if half else torch.float32
        stream_model = fold_batchnorm(copy.deepcopy(model).eval())
        self.model = stream_model.to(self.device, self.dtype)
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.in_channels: int = model.in_channels
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next frame is frame 0 of a new clip."""
        self._cache: dict[int, torch.Tensor] = {}
        self._feature_sum: torch.Tensor | None = None
        self.frame_index = -1

    def _as_float(self, frame: Any) -> torch.Tensor:
        """uint8 (0-255) or float ([0, 1]) array/tensor -> float tensor on the device."""
        if isinstance(frame, np.ndarray):
            if frame.dtype == np.uint8:
                x = torch.from_numpy(np.ascontiguousarray(frame)).to(self.device)
                x = x.to(self.dtype) / 255.0
            elif np.issubdtype(frame.dtype, np.floating):
                x = torch.from_numpy(np.ascontiguousarray(frame)).to(self.device, self.dtype)
            else:
                raise ValueError(f"frame must be uint8 or float; got dtype {frame.dtype}")
        elif isinstance(frame, torch.Tensor):
            x = frame.to(self.device, self.dtype if frame.is_floating_point() else torch.float32)
            if not frame.is_floating_point():
                x = x / 255.0
        else:
            raise TypeError(f"frame must be a numpy array or a torch tensor; got {type(frame).__name__}")
        return x

    def _to_input(self, frame: Any) -> torch.Tensor:
        """One frame -> ``(1, C, H, W)``, checked."""
        x = self._as_float(frame)
        if x.ndim == 2 and self.in_channels == 1:
            x = x[None]
        if x.ndim != 3 or x.shape[0] != self.in_channels:
            want = "(H, W)" if self.in_channels == 1 else f"({self.in_channels}, H, W)"
            raise ValueError(f"frame must be {want}; got shape {tuple(frame.shape)}")
        # (1, C, 1, H, W) just for the model's size check (H, W divisible by 2**depth)
        self.model.check_input(x[None, :, None])
        x = x[None]
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    @torch.inference_mode()
    def step(self, frame: Any) -> dict[str, Any]:
        """Process the next frame; see the class docstring for what comes back."""
        x = self._to_input(frame)
        seg, features = self.model.forward_frames(x, 1, self._cache)
        presence, plane_frame = self.model.heads.per_frame(features)
        self._feature_sum = features if self._feature_sum is None else self._feature_sum + features
        self.frame_index += 1
        clip_logits = self.model.heads.clip(self._feature_sum / (self.frame_index + 1))
        out: dict[str, Any] = {
            "mask_prob": torch.sigmoid(seg[0, 0]).float(),
            "presence": float(torch.sigmoid(presence[0]).float()),
            "plane_probs": torch.softmax(plane_frame[0].float(), dim=-1),
            "clip_plane_probs": torch.softmax(clip_logits[0].float(), dim=-1),
            "frame_index": self.frame_index,
        }
        if isinstance(frame, np.ndarray):
            for key in ("mask_prob", "plane_probs", "clip_plane_probs"):
                out[key] = out[key].cpu().numpy()
        return out

    __call__ = step

    @torch.inference_mode()
    def process(self, frames: Any, chunk: int = 4) -> dict[str, Any]:
        """Run a whole clip ``(T, H, W)`` (uint8 or float in [0, 1]) on from the current state.

        Frames go through ``chunk`` at a time (batched convolutions, bounded memory); every frame
        is computed once, with all of its past, exactly as ``step`` would. On 2 CPU cores at
        256x256, chunks of 4 were fastest (~1.3x frame-by-frame; 16 is as slow as 1: the
        activations fall out of cache). Returns numpy
        ``mask_prob (T, H, W)``, ``presence (T,)``, ``plane_probs (T, P)`` and
        ``clip_plane_probs (P,)`` (plane of everything since ``reset()``).
        """
        if not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"chunk must be an int >= 1; got {chunk!r}")
        frames = np.asarray(frames)
        if frames.ndim != 3 or self.in_channels != 1:
            raise ValueError(f"frames must be (T, H, W) for a 1-channel model; got shape {frames.shape}")
        masks, presences, planes = [], [], []
        for start in range(0, len(frames), chunk):
            x = self._as_float(frames[start : start + chunk])
            self.model.check_input(x[None, None])
            x = x[:, None]  # (n, 1, H, W): the frames layout of forward_frames
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            seg, features = self.model.forward_frames(x, x.shape[0], self._cache)
            presence, plane_frame = self.model.heads.per_frame(features)
            total = features.sum(0, keepdim=True)
            self._feature_sum = total if self._feature_sum is None else self._feature_sum + total
            self.frame_index += x.shape[0]
            masks.append(torch.sigmoid(seg[:, 0].float()).cpu().numpy())
            presences.append(torch.sigmoid(presence.float()).cpu().numpy())
            planes.append(torch.softmax(plane_frame.float(), dim=-1).cpu().numpy())
        if self._feature_sum is None:
            raise ValueError("frames is empty")
        clip_logits = self.model.heads.clip(self._feature_sum / (self.frame_index + 1))
        return {
            "mask_prob": np.concatenate(masks),
            "presence": np.concatenate(presences),
            "plane_probs": np.concatenate(planes),
            "clip_plane_probs": torch.softmax(clip_logits[0].float(), -1).cpu().numpy(),
        }
