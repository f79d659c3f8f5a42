"""UltraMNet: a causal (2+1)D video U-Net with nerve segmentation, presence and plane heads.

Input ``(B, 1, T, H, W)`` float in [0, 1] (a clip window); output a dict of raw logits:

- ``seg``         ``(B, 1, T, H, W)`` nerve mask, from the decoder;
- ``presence``    ``(B, T)`` the nerve is visible in the frame;
- ``plane_frame`` ``(B, T, P)`` standard plane of each frame (P includes ``non_standard``);
- ``plane_clip``  ``(B, P)`` plane of the whole window.

Plane and presence heads read the deepest encoder features, as in the UltraMN paper. Temporal
convolutions are causal (they see the current and past frames only) and pooling is spatial only,
so output frame t depends on input frames <= t: per-frame outputs align with frames, and
:class:`~napari_ultramn.model.stream.StreamingUltraMN` runs the same weights one frame at a time.
Normalisation is per frame (BatchNorm2d by default), never pooled over time. The clip head
averages frame features over the window; a stream keeps that average as a running mean.

Speed (the stream must keep up with a scanner on 2 CPU cores at 256x256): full-resolution
stages dominate the cost of a U-Net, so UltraMNet has none. It enters by space-to-depth (each 2x2
pixel block becomes 4 channels at half resolution, lossless) and leaves by depth-to-space (4
logits per half-resolution position, one per pixel). Decoder stages add skips instead of
concatenating them, and project channels before upsampling, at the coarse resolution.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from napari_ultramn.model import MODEL_NAMES
from napari_ultramn.model.blocks import (
    NORMS,
    SEG_PRIOR_BIAS,
    ConvNormAct,
    PlaneHeads,
    TemporalResidual,
    make_norm,
    max_pool2x2,
)
from napari_ultramn.model.frames_model import FramesModel, check_args


class EncoderStage(nn.Module):
    """One resolution level: ``(B*T, C_in, H, W) -> (B*T, C_out, H, W)``.

    Factorised: 1x3x3 conv, causal kx1x1 temporal residual, 1x3x3 conv. Otherwise two causal
    kx3x3 (full 3D) convs.
    """

    def __init__(self, in_channels: int, out_channels: int, temporal_kernel: int, factorised: bool, norm: str):
        super().__init__()
        conv_k = 1 if factorised else temporal_kernel  # frames each 3x3 conv looks across
        self.conv1 = ConvNormAct(in_channels, out_channels, norm, conv_k)
        self.temporal = TemporalResidual(out_channels, temporal_kernel, norm) if factorised else None
        self.conv2 = ConvNormAct(out_channels, out_channels, norm, conv_k)

    def forward(self, x: torch.Tensor, n_frames: int, cache: dict | None = None) -> torch.Tensor:
        x = self.conv1(x, n_frames, cache)
        if self.temporal is not None:
            x = self.temporal(x, n_frames, cache)
        return self.conv2(x, n_frames, cache)


class DecoderStage(nn.Module):
    """Upsample coarse ``(B*T, C_in, h, w)`` and merge the skip ``(B*T, C_out, 2h, 2w)``.

    Projecting channels with a 1x1 conv *before* the nearest-neighbour upsampling costs a quarter
    of doing it after; the skip is added (not concatenated), which halves the 3x3 conv.
    """

    def __init__(self, in_channels: int, out_channels: int, norm: str):
        super().__init__()
        self.project = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.project_norm = make_norm(norm, out_channels)
        self.conv = ConvNormAct(out_channels, out_channels, norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor, n_frames: int) -> torch.Tensor:
        x = F.interpolate(self.project_norm(self.project(x)), scale_factor=2.0, mode="nearest")
        return self.conv(F.relu(x + skip), n_frames)


class UltraMNet(FramesModel):
    """Causal (2+1)D video U-Net; see the module docstring for shapes.

    Args:
        n_planes: number of plane labels, ``non_standard`` included (dataset manifest vocabulary).
        in_channels: image channels (1 for B-mode).
        base_channels: width of the first (half-resolution) level; each deeper level doubles it.
        depth: number of 2x spatial reductions (the lossless space-to-depth entry counts as the
            first); H and W must be divisible by ``2**depth``.
        temporal_kernel: frames seen by each causal temporal conv (1 = no temporal context:
            the "no temporal" ablation, same parameter count, per frame).
        factorised: (2+1)D convs (1x3x3 then kx1x1) if True, full causal kx3x3 convs if False.
        norm: per-frame normalisation, one of ``batch`` (default), ``group``, ``instance``.
    """

    def __init__(
        self,
        n_planes: int,
        in_channels: int = 1,
        base_channels: int = 16,
        depth: int = 3,
        temporal_kernel: int = 3,
        factorised: bool = True,
        norm: str = "batch",
    ):
        super().__init__()
        check_args(n_planes, in_channels, base_channels, depth)
        if not isinstance(temporal_kernel, int) or temporal_kernel < 1:
            raise ValueError(f"temporal_kernel must be an int >= 1; got {temporal_kernel!r}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {norm!r}")
        self.depth = depth
        self.in_channels = in_channels
        self._config = {
            "name": "ultramn" if temporal_kernel > 1 else "ultramn_notemporal",
            "n_planes": n_planes,
            "in_channels": in_channels,
            "base_channels": base_channels,
            "depth": depth,
            "temporal_kernel": temporal_kernel,
            "factorised": bool(factorised),
            "norm": norm,
        }
        widths = [base_channels * 2**i for i in range(depth)]
        # space-to-depth: each 2x2 pixel block becomes 4 channels at half resolution
        chans = [4 * in_channels] + widths
        self.encoder = nn.ModuleList(
            EncoderStage(chans[i], chans[i + 1], temporal_kernel, bool(factorised), norm) for i in range(depth)
        )
        self.decoder = nn.ModuleList(DecoderStage(widths[i + 1], widths[i], norm) for i in reversed(range(depth - 1)))
        # depth-to-space: 4 logits per half-resolution position = one per full-resolution pixel
        self.seg_head = nn.Conv2d(widths[0], 4, 1)
        assert self.seg_head.bias is not None  # Conv2d's default bias=True
        nn.init.constant_(self.seg_head.bias, SEG_PRIOR_BIAS)
        self.heads = PlaneHeads(widths[-1], n_planes)

    def forward_frames(
        self, frames: torch.Tensor, n_frames: int, cache: dict | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B*T, C, H, W) -> seg (B*T, 1, H, W), features (B*T, D)``; ``cache`` for streams."""
        skips = []
        x = F.pixel_unshuffle(frames, 2)
        for i, stage in enumerate(self.encoder):
            if i:
                x = max_pool2x2(x)
            x = stage(x, n_frames, cache)
            skips.append(x)
        x = skips.pop()
        features = PlaneHeads.frame_features(x)
        for stage in self.decoder:
            x = stage(x, skips.pop(), n_frames)
        return F.pixel_shuffle(self.seg_head(x), 2), features


def build_model(name: str, n_planes: int, **kwargs: Any) -> FramesModel:
    """Build ``ultramn``, ``ultramn_notemporal`` (temporal_kernel=1) or ``unet2d`` by name."""
    if name == "ultramn":
        return UltraMNet(n_planes, **kwargs)
    if name == "ultramn_notemporal":
        if kwargs.setdefault("temporal_kernel", 1) != 1:
            raise ValueError(
                f"ultramn_notemporal has temporal_kernel=1; got temporal_kernel={kwargs['temporal_kernel']!r}"
            )
        return UltraMNet(n_planes, **kwargs)
    if name == "unet2d":
        from napari_ultramn.model.baselines import UNet2D

        return UNet2D(n_planes, **kwargs)
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")


def model_from_config(cfg: dict[str, Any]) -> FramesModel:
    """Rebuild a model from its ``config`` (``{'name': ..., **constructor arguments}``)."""
    if "name" not in cfg:
        raise ValueError(f"model config has no 'name' (one of {', '.join(MODEL_NAMES)}): {cfg!r}")
    kwargs = {k: v for k, v in cfg.items() if k != "name"}
    if "n_planes" not in kwargs:
        raise ValueError(f"model config has no 'n_planes': {cfg!r}")
    return build_model(cfg["name"], kwargs.pop("n_planes"), **kwargs)
