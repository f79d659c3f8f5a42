"""napari sample data: one phantom clip per standard plane, with its ground-truth nerve mask.

Each function returns layer data tuples ``[(frames, kwargs, "image"), (mask, kwargs, "labels")]``
with the scale in mm. Small (48 frames of 192x192) so it opens in well under a second; never
imports torch.
"""

from __future__ import annotations

import numpy as np

SAMPLE_FRAMES = 48
SAMPLE_SIZE = (192, 192)
SAMPLE_SEED = 2024


def _layers(plane: str) -> list[tuple]:
    from .phantom import generate_clip

    clip = generate_clip(plane, SAMPLE_SEED, n_frames=SAMPLE_FRAMES, size=SAMPLE_SIZE)
    scale = (1.0, *clip.spacing_mm)
    metadata = {
        "plane": plane,
        "spacing_mm": list(clip.spacing_mm),
        "frame_time_ms": clip.frame_time_ms,
        "plane_labels": list(clip.plane_labels),
        "quality": list(clip.quality),
        "source": f"phantom seed {SAMPLE_SEED}",
    }
    title = plane.replace("_", " ")
    return [
        (clip.frames, {"name": f"phantom {title}", "scale": scale, "metadata": metadata}, "image"),
        (
            clip.masks.astype(np.uint8),
            {"name": "nerve (ground truth)", "scale": scale, "metadata": {"plane": plane}},
            "labels",
        ),
    ]


def transverse_wrist():
    return _layers("transverse_wrist")


def transverse_forearm():
    return _layers("transverse_forearm")


def longitudinal_wrist():
    return _layers("longitudinal_wrist")


def longitudinal_forearm():
    return _layers("longitudinal_forearm")
