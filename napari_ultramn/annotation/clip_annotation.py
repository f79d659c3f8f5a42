"""The annotation of one clip by one rater, and its JSON form (``schemas/annotation.schema.json``).

A frame that is absent from :attr:`ClipAnnotation.frames` is *unannotated*. A present frame with an
all-zero mask is an explicit "no nerve visible here" (it counts for agreement and training).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import __version__
from ..vocabulary import HUMAN_PROVENANCES, PROVENANCES, QUALITIES, STATUSES  # noqa: F401 (API)
from .rle import rle_decode, rle_encode

# (the vocabularies are defined in napari_ultramn.vocabulary; imported here for the annotation's users)


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class FrameMask:
    """One frame's nerve mask ``(H, W) bool`` and where it came from.

    ``confidence`` is in [0, 1] for propagated and model masks; ``edited_fraction`` is, for
    'model_edited' and 'assisted', the fraction of the proposal's pixels the human changed
    (|A xor B| / |A or B|; 0 for an assisted proposal accepted as is).
    """

    mask: np.ndarray
    provenance: str = "drawn"
    confidence: float | None = None
    edited_fraction: float | None = None

    def __post_init__(self):
        if self.provenance not in PROVENANCES:
            raise ValueError(f"unknown provenance {self.provenance!r}; expected one of {PROVENANCES}")
        self.mask = np.asarray(self.mask, dtype=bool)
        if self.mask.ndim != 2:
            raise ValueError(f"a frame mask must be 2D (H, W), got shape {self.mask.shape}")

    @property
    def is_human(self) -> bool:
        return self.provenance in HUMAN_PROVENANCES


@dataclass
class PlaneRange:
    """Frames ``[start, stop)`` labelled ``plane`` (e.g. 'non_standard' where the probe left the plane)."""

    start: int
    stop: int
    plane: str


@dataclass
class ClipAnnotation:
    """Everything one rater said about one clip."""

    clip_id: str
    rater: str
    n_frames: int
    frame_shape: tuple[int, int]
    clip_plane: str | None = None
    plane_ranges: list[PlaneRange] = field(default_factory=list)
    frames: dict[int, FrameMask] = field(default_factory=dict)
    status: str = "not_started"
    quality: str = "ok"
    comment: str = ""
    modified: str = field(default_factory=now_iso)
    #: Seconds the rater was actively working on this clip, over all sessions (idle pauses
    #: excluded: :mod:`.controller`'s activity clock), and how many sessions that time came from.
    #: Files written before this was recorded load as 0 (unknown, not "no effort").
    active_seconds: float = 0.0
    work_sessions: int = 0

    # -- planes --------------------------------------------------------------------------
    def frame_plane(self, t: int) -> str | None:
        """The plane of frame ``t``: the last range covering it, else the clip's plane."""
        for r in reversed(self.plane_ranges):
            if r.start <= t < r.stop:
                return r.plane
        return self.clip_plane

    def frame_planes(self) -> list[str | None]:
        return [self.frame_plane(t) for t in range(self.n_frames)]

    def unknown_planes(self, vocabulary: list[str]) -> list[str]:
        """Plane labels used here (clip plane, ranges) that ``vocabulary`` (a project's
        ``plane_labels``) does not have, in order of first use: a typo or another protocol's
        label, which must not become a silent "unknown" (-1) in a dataset or agreement table."""
        used = [self.clip_plane, *(r.plane for r in self.plane_ranges)]
        return list(dict.fromkeys(p for p in used if p is not None and p not in vocabulary))

    # -- masks ---------------------------------------------------------------------------
    def set_mask(self, t: int, mask: np.ndarray, provenance: str = "drawn", **kw) -> None:
        if not 0 <= t < self.n_frames:
            raise IndexError(f"frame {t} out of range for a clip of {self.n_frames} frames")
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != tuple(self.frame_shape):
            raise ValueError(
                f"mask of shape {mask.shape} does not fit clip {self.clip_id} frames {tuple(self.frame_shape)}"
            )
        self.frames[t] = FrameMask(mask, provenance, **kw)

    def keyframes(self) -> list[int]:
        """Frames a human drew or edited, sorted."""
        return sorted(t for t, fm in self.frames.items() if fm.is_human)

    def mask_stack(self) -> tuple[np.ndarray, np.ndarray]:
        """``(masks (T, H, W) bool, annotated (T,) bool)``; unannotated frames are all False."""
        masks = np.zeros((self.n_frames, *self.frame_shape), dtype=bool)
        annotated = np.zeros(self.n_frames, dtype=bool)
        for t, fm in self.frames.items():
            masks[t] = fm.mask
            annotated[t] = True
        return masks, annotated

    def provenance_codes(self) -> np.ndarray:
        """``(T,) int8``: index into :data:`PROVENANCES`, -1 for unannotated frames."""
        codes = np.full(self.n_frames, -1, dtype=np.int8)
        for t, fm in self.frames.items():
            codes[t] = PROVENANCES.index(fm.provenance)
        return codes

    def touch(self) -> None:
        self.modified = now_iso()
        if self.status == "not_started":
            self.status = "in_progress"

    # -- JSON ----------------------------------------------------------------------------
    def to_json(self) -> dict:
        frames = {}
        for t in sorted(self.frames):
            fm = self.frames[t]
            entry: dict[str, Any] = {"provenance": fm.provenance, "rle": rle_encode(fm.mask)}
            if fm.confidence is not None:
                entry["confidence"] = round(float(fm.confidence), 4)
            if fm.edited_fraction is not None:
                entry["edited_fraction"] = round(float(fm.edited_fraction), 4)
            frames[str(t)] = entry
        return {
            "format": "ultramn-annotation",
            "schema_version": 1,
            "clip_id": self.clip_id,
            "rater": self.rater,
            "n_frames": int(self.n_frames),
            "frame_shape": [int(s) for s in self.frame_shape],
            "clip_plane": self.clip_plane,
            "plane_ranges": [{"start": int(r.start), "stop": int(r.stop), "plane": r.plane} for r in self.plane_ranges],
            "status": self.status,
            "quality": self.quality,
            "comment": self.comment,
            "modified": self.modified,
            "software_version": __version__,
            "active_seconds": round(float(self.active_seconds), 2),
            "work_sessions": int(self.work_sessions),
            "frames": frames,
        }

    @classmethod
    def from_json(cls, obj: dict) -> ClipAnnotation:
        """Build from an already schema-validated dict; raises ValueError for inconsistent masks."""
        shape = tuple(obj["frame_shape"])
        frames = {}
        for key, entry in obj.get("frames", {}).items():
            t = int(key)
            if not 0 <= t < obj["n_frames"]:
                raise ValueError(f"frame {t} is outside the clip's {obj['n_frames']} frames")
            try:
                mask = rle_decode(entry["rle"], shape)
            except ValueError as exc:
                raise ValueError(f"frame {t}: {exc}") from None
            frames[t] = FrameMask(mask, entry["provenance"], entry.get("confidence"), entry.get("edited_fraction"))
        return cls(
            clip_id=obj["clip_id"],
            rater=obj["rater"],
            n_frames=int(obj["n_frames"]),
            frame_shape=shape,
            clip_plane=obj.get("clip_plane"),
            plane_ranges=[PlaneRange(r["start"], r["stop"], r["plane"]) for r in obj.get("plane_ranges", [])],
            frames=frames,
            status=obj.get("status", "not_started"),
            quality=obj.get("quality", "ok"),
            comment=obj.get("comment", ""),
            modified=obj.get("modified", now_iso()),
            active_seconds=float(obj.get("active_seconds", 0.0)),
            work_sessions=int(obj.get("work_sessions", 0)),
        )
