"""Baselines that measure what the video design of UltraMNet buys.

- :class:`UNet2D`: a classic per-frame 2D U-Net (double 3x3 convs, concatenated skips) with the
  same forward contract as :class:`~napari_ultramn.model.network.UltraMNet`: frames are folded
  into the batch, segmentation from the decoder, presence/plane heads on the pooled bottleneck,
  the clip plane from the window-mean of the frame features. It has no temporal state, so it
  streams trivially.
- The "no temporal" ablation is ``UltraMNet(..., temporal_kernel=1)`` (``build_model(
  "ultramn_notemporal", ...)``): the same network and parameter count, blind to the past.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from napari_ultramn.model.blocks import (
    NORMS,
    SEG_PRIOR_BIAS,
    ConvNormAct,
    PlaneHeads,
    max_pool2x2,
)
from napari_ultramn.model.frames_model import FramesModel, check_args


def stage_widths(base_channels: int, depth: int) -> list[int]:
    """Channels per resolution level, full resolution first: ``base/2, base, 2 base, ...``."""
    return [max(base_channels // 2, 2)] + [base_channels * 2**i for i in range(depth)]


class DoubleConv(nn.Module):
    """Two 3x3 conv -> norm -> ReLU; ``(N, C_in, H, W) -> (N, C_out, H, W)``."""

    def __init__(self, in_channels: int, out_channels: int, norm: str):
        super().__init__()
        self.conv1 = ConvNormAct(in_channels, out_channels, norm)
        self.conv2 = ConvNormAct(out_channels, out_channels, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x, 1), 1)


class UNet2D(FramesModel):
    """Per-frame 2D U-Net: ``(B, C, T, H, W) -> {seg (B,1,T,H,W), presence (B,T), ...}`` logits.

    Widths ``base/2`` at full resolution, then ``base, 2 base, ...``: the deeper levels match
    UltraMNet's, and the full-resolution level (which UltraMNet replaces by space-to-depth) is
    kept at half width so the baseline still trains in minutes on CPU. H and W must be
    divisible by ``2**depth``.
    """

    def __init__(
        self, n_planes: int, in_channels: int = 1, base_channels: int = 16, depth: int = 3, norm: str = "batch"
    ):
        super().__init__()
        check_args(n_planes, in_channels, base_channels, depth)
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {norm!r}")
        self.depth = depth
        self.in_channels = in_channels
        self._config = {
            "name": "unet2d",
            "n_planes": n_planes,
            "in_channels": in_channels,
            "base_channels": base_channels,
            "depth": depth,
            "norm": norm,
        }
        widths = stage_widths(base_channels, depth)
        chans = [in_channels] + widths
        self.encoder = nn.ModuleList(DoubleConv(chans[i], chans[i + 1], norm) for i in range(depth + 1))
        self.decoder = nn.ModuleList(
            DoubleConv(widths[i + 1] + widths[i], widths[i], norm) for i in reversed(range(depth))
        )
        self.seg_head = nn.Conv2d(widths[0], 1, 1)
        assert self.seg_head.bias is not None  # Conv2d's default bias=True
        nn.init.constant_(self.seg_head.bias, SEG_PRIOR_BIAS)
        self.heads = PlaneHeads(widths[-1], n_planes)

    def forward_frames(
        self, frames: torch.Tensor, n_frames: int, cache: dict | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B*T, C, H, W) -> seg (B*T, 1, H, W), features (B*T, D)``; stateless per frame."""
        skips = []
        x = frames
        for i, stage in enumerate(self.encoder):
            if i:
                x = max_pool2x2(x)
            x = stage(x)
            skips.append(x)
        x = skips.pop()
        features = PlaneHeads.frame_features(x)
        for stage in self.decoder:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            x = stage(torch.cat([x, skips.pop()], dim=1))
        return self.seg_head(x), features
