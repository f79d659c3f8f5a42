"""A clip's training labels: consensus or one rater's, checked for eligibility, resampled.

Split out of :mod:`dataset_tools.build` so the builder reads as "which clips, which split, write";
this module answers "what are this clip's frames and labels at the target geometry".
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from napari_ultramn.annotation.store import ADJUDICATED, MODEL_RATER, load_annotation_file
from napari_ultramn.errors import InputError


@dataclass
class ClipLabels:
    """A clip's labels from consensus or one rater, in the clip's own frame shape."""

    masks: np.ndarray  # (T, H, W) bool
    annotated: np.ndarray  # (T,) bool
    frame_planes: list  # (T,) str | None
    clip_plane: str | None
    quality: str
    provenance: np.ndarray  # (T,) int8
    n_raters: int


def _quality_flags(project, clip_id: str) -> dict[str, str]:
    """Rater -> quality, read from the JSON headers without decoding masks (cheap first pass)."""
    out = {}
    for rater in project.annotations.raters(clip_id):
        if rater == MODEL_RATER:  # proposals are not labels
            continue
        try:
            obj = json.loads(project.annotations.path(clip_id, rater).read_text(encoding="utf-8"))
            out[rater] = obj.get("quality", "ok") if isinstance(obj, dict) else "ok"
        except (OSError, ValueError):
            out[rater] = "ok"  # a broken file is reported when the labels are loaded
    return out


def eligibility(project, rec: dict, *, rater, min_raters, min_frames, spacing_mm) -> str | None:
    """Why the clip cannot be used (the reason recorded in the manifest), or None."""
    flags = _quality_flags(project, rec["clip_id"])
    if rater is None and ADJUDICATED in flags:  # an adjudicator's decision settles the clip
        rater = ADJUDICATED
    if rater is not None:
        if rater not in flags:
            return f"no annotation by rater '{rater}'"
        if flags[rater] == "unusable":
            return f"flagged unusable by rater '{rater}'"
    else:
        if len(flags) < min_raters:
            return f"no consensus: {len(flags)} rater(s), need {min_raters}"
        if sum(q == "unusable" for q in flags.values()) * 2 > len(flags):
            return "flagged unusable by the majority of raters"
    if rec["n_frames"] < min_frames:
        return f"too short for the window: {rec['n_frames']} frames < {min_frames}"
    if spacing_mm is not None and not rec.get("spacing_mm"):
        return f"uncalibrated (no spacing): cannot resample to {spacing_mm} mm"
    return None


def load_project_annotation(project, clip_id: str, rater: str):
    """One rater's :class:`ClipAnnotation` of a project clip, its plane labels checked against
    the project's vocabulary; any problem is one :class:`InputError` naming the file."""
    path = project.annotations.path(clip_id, rater)
    ann = load_annotation_file(path)
    unknown = ann.unknown_planes(project.plane_labels)
    if unknown:
        raise InputError(
            path, f"plane label {unknown[0]!r} is not in the project's vocabulary ({', '.join(project.plane_labels)})"
        )
    return ann


def clip_labels(project, clip_id: str, *, method: str | None, rater: str | None, min_raters: int = 2) -> ClipLabels:
    """Labels of one clip; raises ValueError (with the reason) when there are none.

    With a consensus method, an adjudicated annotation (review mode) is the clip's label when it
    exists; otherwise the human raters vote (model proposals never do).
    """
    if rater is None and project.annotations.exists(clip_id, ADJUDICATED):
        rater = ADJUDICATED
    if rater is not None:
        if not project.annotations.exists(clip_id, rater):
            raise ValueError(f"no annotation by rater '{rater}'")
        ann = load_project_annotation(project, clip_id, rater)
        masks, annotated = ann.mask_stack()
        return ClipLabels(masks, annotated, ann.frame_planes(), ann.clip_plane, ann.quality, ann.provenance_codes(), 1)
    clip_consensus = consensus_function()
    annotations = {r: load_project_annotation(project, clip_id, r) for r in project.annotations.human_raters(clip_id)}
    result = clip_consensus(annotations, method=method, min_raters=min_raters)
    if result is None:
        raise ValueError(f"no consensus: {len(annotations)} rater(s), need {min_raters}")
    return ClipLabels(
        np.asarray(result.masks, bool),
        np.asarray(result.annotated, bool),
        list(result.frame_planes),
        result.clip_plane,
        result.quality or "ok",
        np.asarray(result.provenance, np.int8),
        len(annotations),
    )


def read_clip_frames(project, clip_id: str) -> np.ndarray:
    """The project clip's frames in one read (the lazy Clip reads frame by frame)."""
    from napari_ultramn.io.h5 import load_h5py

    h5py = load_h5py()

    try:
        with h5py.File(project.clip_path(clip_id), "r") as fh:
            if "frames" in fh:
                return fh["frames"][()]
    except OSError:
        pass  # not a plain project clip file: let open_clip report or handle it
    return project.open_clip(clip_id).to_array()


def consensus_function():
    try:
        from .consensus import clip_consensus
    except ImportError:
        raise InputError(
            None,
            "consensus is not available in this installation "
            "(dataset_tools.consensus); build from one rater with --rater",
        ) from None
    return clip_consensus


def target_geometry(shape, spacing, size=None, spacing_mm=None):
    """``(scaled (h, w), output (H, W), output spacing)`` for resampling a ``shape`` frame.

    ``spacing_mm`` alone rescales to that spacing; ``size`` alone stretches to that shape (the
    stored spacing follows); both rescale to the spacing, then crop/pad to the size - columns
    centred, rows from the top, because depth below the skin is meaningful.
    """
    h, w = shape
    if spacing_mm is not None:
        scaled = (max(1, round(h * spacing[0] / spacing_mm)), max(1, round(w * spacing[1] / spacing_mm)))
        out_spacing = (float(spacing_mm), float(spacing_mm))
        return scaled, tuple(size) if size else scaled, out_spacing
    if size is not None:
        size = (int(size[0]), int(size[1]))
        out_spacing = None if spacing is None else (spacing[0] * h / size[0], spacing[1] * w / size[1])
        return size, size, out_spacing
    return (h, w), (h, w), None if spacing is None else (float(spacing[0]), float(spacing[1]))


def resample(frames: np.ndarray, masks: np.ndarray, scaled, out_shape):
    """Frames (antialiased bilinear = area-like when shrinking), masks (bilinear, >= 0.5), then crop/pad."""
    if tuple(frames.shape[1:]) != tuple(scaled):
        import torch
        import torch.nn.functional as F

        with torch.no_grad():
            f = torch.from_numpy(frames).float()[:, None]
            f = F.interpolate(f, size=tuple(scaled), mode="bilinear", antialias=True, align_corners=False)
            frames = f[:, 0].add_(0.5).clamp_(0, 255).to(torch.uint8).numpy()
            m = torch.from_numpy(masks.astype(np.float32))[:, None]
            m = F.interpolate(m, size=tuple(scaled), mode="bilinear", align_corners=False)
            masks = (m[:, 0] >= 0.5).numpy()
    if tuple(scaled) != tuple(out_shape):
        frames, masks = _crop_pad(frames, out_shape), _crop_pad(masks, out_shape)
    return frames, masks


def _crop_pad(a: np.ndarray, out_shape) -> np.ndarray:
    H, W = out_shape
    out = np.zeros((a.shape[0], H, W), dtype=a.dtype)
    h, w = min(H, a.shape[1]), min(W, a.shape[2])
    src_c, dst_c = max(0, (a.shape[2] - W) // 2), max(0, (W - a.shape[2]) // 2)
    out[:, :h, dst_c : dst_c + w] = a[:, :h, src_c : src_c + w]
    return out


def plane_codes(values, vocabulary: list[str]) -> np.ndarray:
    index = {v: i for i, v in enumerate(vocabulary)}
    return np.array([index.get(v, -1) if v is not None else -1 for v in values], dtype=np.int16)
