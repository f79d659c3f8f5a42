"""The forward contract every network here shares (UltraMNet and the baselines), in its own module
so the networks and the model registry can all import it without importing each other.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from napari_ultramn.model.blocks import CausalConv, PlaneHeads


def check_args(n_planes: int, in_channels: int, base_channels: int, depth: int) -> None:
    if not isinstance(n_planes, int) or n_planes < 2:
        raise ValueError(f"n_planes must be an int >= 2 (the plane labels including non_standard); got {n_planes!r}")
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be an int >= 1; got {in_channels!r}")
    if not isinstance(base_channels, int) or base_channels < 2:
        raise ValueError(f"base_channels must be an int >= 2; got {base_channels!r}")
    if not isinstance(depth, int) or not 1 <= depth <= 6:
        raise ValueError(f"depth must be an int from 1 to 6; got {depth!r}")


class FramesModel(nn.Module):
    """Shared forward contract of UltraMNet and the baselines.

    Subclasses implement ``forward_frames((B*T, C, H, W), n_frames, cache)`` returning the
    segmentation logits ``(B*T, 1, H, W)`` and the frame features ``(B*T, D)`` for ``self.heads``
    (a :class:`PlaneHeads`), and set ``self.depth``, ``self.in_channels`` and ``self._config``.
    """

    depth: int
    in_channels: int
    heads: PlaneHeads
    _config: dict[str, Any]

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments plus ``name``: ``model_from_config(model.config)`` rebuilds it."""
        return dict(self._config)

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> FramesModel:
        return cls(**{k: v for k, v in cfg.items() if k != "name"})

    @property
    def temporal_receptive_field(self) -> int:
        """How many frames (the current one included) can influence an output frame."""
        return 1 + sum(m.temporal_kernel - 1 for m in self.modules() if isinstance(m, CausalConv))

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ValueError unless ``x`` is ``(B, in_channels, T, H, W)`` with H, W fitting."""
        if torch.jit.is_tracing():  # export checks shapes itself; a traced check would freeze them
            return
        if x.ndim != 5:
            raise ValueError(f"expected input (B, C, T, H, W); got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channel(s); got shape {tuple(x.shape)}")
        m = 2**self.depth
        if x.shape[-2] % m or x.shape[-1] % m:
            raise ValueError(
                f"frame height and width must be divisible by 2**depth = {m}; got "
                f"{x.shape[-2]}x{x.shape[-1]} (pad or resize the frames)"
            )

    def forward_frames(
        self, frames: torch.Tensor, n_frames: int, cache: dict | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``(B, C, T, H, W)`` in [0, 1] -> dict of logits (see the module docstring)."""
        self.check_input(x)
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(-1, c, h, w)
        seg, features = self.forward_frames(frames, t)
        out = {"seg": seg.reshape(b, t, 1, h, w).transpose(1, 2)}
        out.update(self.heads(features.reshape(b, t, -1)))
        return out
