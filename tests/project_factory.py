"""Small synthetic annotation projects for tests: clips, a registry with demographics, 1-3 raters.

Reusable by every part that needs a project on disk::

    from tests.project_factory import make_project
    project = make_project(tmp_path / "proj", n_participants=6, raters=("r1", "r2", "r3"))

Each participant gets ``clips_per_participant`` clips alternating sides and cycling through the
planes, so a handful of participants already covers every plane and both sides. Frames are
seeded, spatially correlated speckle with a bright ring around an elliptic "nerve" that drifts
across the clip; each rater's masks are the true nerve shifted by a rater-specific pixel offset,
drawn on keyframes every ``keyframe_every`` frames and 'interpolated' in between. Everything is
deterministic in ``seed``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from napari_ultramn import DEFAULT_PLANES, NON_STANDARD
from napari_ultramn.annotation import ClipAnnotation, PlaneRange
from napari_ultramn.io.hdf5clip import write_hdf5_clip
from napari_ultramn.phantom import generate_clip
from napari_ultramn.project import Project

SEXES = ("F", "M")
AGE_BANDS = ("18-39", "40-59", "60+")
SITES = ("siteA", "siteB")
DEVICES = (("VendorA", "ModelX"), ("VendorB", "ModelY"))


def nerve_masks(n_frames: int, frame_shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """``(T, H, W) bool``: an ellipse drifting a few pixels over the clip."""
    h, w = frame_shape
    rows, cols = np.mgrid[0:h, 0:w]
    r0, c0 = rng.uniform(0.35, 0.65) * h, rng.uniform(0.3, 0.7) * w
    ar, ac = max(2.0, 0.15 * h), max(3.0, 0.2 * w)
    drift = rng.uniform(-0.1, 0.1) * w / max(n_frames, 1)
    out = np.empty((n_frames, h, w), dtype=bool)
    for t in range(n_frames):
        out[t] = ((rows - r0) / ar) ** 2 + ((cols - c0 - drift * t) / ac) ** 2 <= 1.0
    return out


def synthetic_frames(masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``(T, H, W) uint8``: speckle with a ~2-pixel grain fading with depth, a bright rim around
    the nerve, darker inside (close enough to B-mode for compression and loader figures)."""
    from scipy import ndimage

    speckle = ndimage.gaussian_filter(rng.gamma(2.0, 30.0, size=masks.shape), (0, 0.8, 0.8))
    depth = np.linspace(1.3, 0.6, masks.shape[1])[None, :, None]
    rim = np.stack([ndimage.binary_dilation(m, iterations=2) & ~m for m in masks])
    img = speckle * depth + 90.0 * rim - 20.0 * masks
    return np.clip(img, 0, 255).astype(np.uint8)


def rater_annotation(
    clip_id: str,
    rater: str,
    truth: np.ndarray,
    plane: str,
    offset: int,
    keyframe_every: int,
    quality: str = "ok",
    plane_ranges: list[PlaneRange] | None = None,
) -> ClipAnnotation:
    """One rater's annotation: the true masks shifted ``offset`` columns; keyframes drawn."""
    n, h, w = truth.shape
    ann = ClipAnnotation(
        clip_id=clip_id,
        rater=rater,
        n_frames=n,
        frame_shape=(h, w),
        clip_plane=plane,
        plane_ranges=plane_ranges or [],
        status="done",
        quality=quality,
    )
    for t in range(n):
        mask = np.roll(truth[t], offset, axis=1)
        prov = "drawn" if t % keyframe_every == 0 or t == n - 1 else "interpolated"
        ann.set_mask(t, mask, prov)
    return ann


def make_project(
    root: str | Path,
    *,
    n_participants: int = 6,
    clips_per_participant: int = 2,
    n_frames: int = 12,
    frame_shape: tuple[int, int] = (32, 40),
    raters: tuple[str, ...] = ("r1", "r2", "r3"),
    planes: tuple[str, ...] = DEFAULT_PLANES,
    spacing_mm: tuple[float, float] | None = (0.1, 0.1),
    keyframe_every: int = 4,
    unusable: tuple[str, ...] = (),
    short: dict[str, int] | None = None,
    unannotated: tuple[str, ...] = (),
    non_standard_tail: int = 2,
    seed: int = 0,
) -> Project:
    """Write a project under ``root`` and return it opened.

    Clip ids are ``p<participant>_c<k>`` (participant pseudonyms ``P000``...). ``unusable``: clip
    ids every rater flags unusable; ``short``: clip id -> frame count overriding ``n_frames``;
    ``unannotated``: clip ids no rater touched. The last ``non_standard_tail`` frames of odd
    clips are labelled non-standard (probe left the plane).
    """
    rng = np.random.default_rng(seed)
    short = short or {}
    project = Project.create(root, name=Path(root).name, planes=planes)
    records = []
    for p in range(n_participants):
        participant = f"P{p:03d}"
        manufacturer, model = DEVICES[p % len(DEVICES)]
        for k in range(clips_per_participant):
            clip_id = f"p{p}_c{k}"
            side = ("left", "right")[k % 2]
            plane = planes[(p + k // 2 + k) % len(planes)]
            t = short.get(clip_id, n_frames)
            truth = nerve_masks(t, frame_shape, rng)
            frames = synthetic_frames(truth, rng)
            source_sha = hashlib.sha256(f"{seed}-{clip_id}".encode()).hexdigest()
            meta = {
                "clip_id": clip_id,
                "participant": participant,
                "side": side,
                "plane": plane,
                "source_sha256": source_sha,
                "spacing_mm": spacing_mm,
                "spacing_source": "us_region" if spacing_mm else "none",
                "frame_time_ms": 40.0,
                "manufacturer": manufacturer,
                "device_model": model,
            }
            rel = f"clips/{clip_id}.h5"
            write_hdf5_clip(project.root / rel, frames, meta)
            records.append(
                {
                    "clip_id": clip_id,
                    "file": rel,
                    "participant": participant,
                    "side": side,
                    "plane": plane,
                    "source_sha256": source_sha,
                    "n_frames": t,
                    "frame_shape": list(frame_shape),
                    "spacing_mm": list(spacing_mm) if spacing_mm else None,
                    "spacing_source": meta["spacing_source"],
                    "frame_time_ms": 40.0,
                    "manufacturer": manufacturer,
                    "device_model": model,
                    "sex": SEXES[p % len(SEXES)],
                    "age_band": AGE_BANDS[p % len(AGE_BANDS)],
                    "site": SITES[(p // 2) % len(SITES)],
                    "source_kind": "dicom",
                }
            )
            if clip_id in unannotated:
                continue
            ranges = []
            if k % 2 == 1 and non_standard_tail and t > non_standard_tail:
                ranges = [PlaneRange(t - non_standard_tail, t, NON_STANDARD)]
            for i, rater in enumerate(raters):
                ann = rater_annotation(
                    clip_id,
                    rater,
                    truth,
                    plane,
                    offset=i - len(raters) // 2,
                    keyframe_every=keyframe_every,
                    quality="unusable" if clip_id in unusable else "ok",
                    plane_ranges=ranges,
                )
                project.annotations.save(ann)
    project.upsert_clips(records)
    project.export_registry()  # clips.json, as ingest leaves it
    return Project.open(root)


def registry_records(
    n_participants: int = 40, clips_per_participant: int = 3, seed: int = 0, planes: tuple[str, ...] = DEFAULT_PLANES
) -> list[dict]:
    """Registry-like records only (no files): for split tests at realistic sizes."""
    rng = np.random.default_rng(seed)
    out = []
    for p in range(n_participants):
        n_clips = int(rng.integers(1, clips_per_participant * 2))
        manufacturer, model = DEVICES[int(rng.integers(len(DEVICES)))]
        demo = {
            "sex": SEXES[int(rng.integers(2))],
            "age_band": AGE_BANDS[int(rng.integers(3))],
            "site": SITES[int(rng.integers(2))],
            "manufacturer": manufacturer,
            "device_model": model,
        }
        for k in range(n_clips):
            out.append(
                {
                    "clip_id": f"p{p}_c{k}",
                    "participant": f"P{p:03d}",
                    "side": ("left", "right")[int(rng.integers(2))],
                    "plane": planes[int(rng.integers(len(planes)))],
                    "n_frames": int(rng.integers(16, 64)),
                    **demo,
                }
            )
    return out


def disk(shape, center, radius):
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    return (rr - center[0]) ** 2 + (cc - center[1]) ** 2 <= radius**2


def make_clip_project(root, n_clips=3, n_frames=6, shape=(32, 40), spacing_mm=(0.1, 0.1), planes=None):
    """A small project of unannotated clips: a bright disk drifting right on noise; participants p0, p1, ...

    (The annotator's and session tests; :func:`make_project` makes annotated multi-rater projects.)"""
    project = Project.create(root, planes=planes) if planes else Project.create(root)
    rng = np.random.default_rng(7)
    records = []
    for i in range(n_clips):
        clip_id = f"c{i}"
        frames = rng.integers(0, 60, size=(n_frames, *shape), dtype=np.uint8)
        for t in range(n_frames):
            frames[t][disk(shape, (shape[0] // 2, 10 + t), 6)] = 200
        meta = {
            "clip_id": clip_id,
            "participant": f"p{i % 2}",
            "plane": project.planes[i % 2],
            "spacing_mm": spacing_mm,
            "spacing_source": "stored" if spacing_mm else "none",
            "source_sha256": f"{i:064x}",
        }
        write_hdf5_clip(project.root / "clips" / f"{clip_id}.h5", frames, meta)
        records.append(
            {
                "clip_id": clip_id,
                "file": f"clips/{clip_id}.h5",
                "participant": f"p{i % 2}",
                "side": "left",
                "plane": project.planes[i % 2],
                "source_sha256": f"{i:064x}",
                "n_frames": n_frames,
                "frame_shape": list(shape),
                "spacing_mm": list(spacing_mm) if spacing_mm else None,
                "spacing_source": "stored" if spacing_mm else "none",
            }
        )
    project.upsert_clips(records)
    return project


PHANTOM_FRAMES, PHANTOM_SIZE = 24, (96, 96)


def make_phantom():
    return generate_clip(
        "transverse_wrist",
        seed=3,
        n_frames=PHANTOM_FRAMES,
        size=PHANTOM_SIZE,
        degraded_fraction=0.0,
        out_of_plane_probability=0.0,
    )


def phantom_project(root, phantom) -> Project:
    """A project holding ``phantom`` as clip 'c0' (also used by the annotator's GUI test)."""
    project = Project.create(root)
    meta = {
        "clip_id": "c0",
        "participant": "p0",
        "plane": phantom.plane,
        "spacing_mm": phantom.spacing_mm,
        "spacing_source": "stored",
        "source_sha256": "0" * 64,
    }
    write_hdf5_clip(project.root / "clips" / "c0.h5", phantom.frames, meta)
    project.upsert_clips(
        [
            {
                "clip_id": "c0",
                "file": "clips/c0.h5",
                "participant": "p0",
                "side": "right",
                "plane": phantom.plane,
                "source_sha256": "0" * 64,
                "n_frames": phantom.n_frames,
                "frame_shape": list(phantom.frames.shape[1:]),
                "spacing_mm": list(phantom.spacing_mm),
                "spacing_source": "stored",
            }
        ]
    )
    return project


def drifted(phantom, t, per_frame=0.6):
    """The truth of frame ``t`` pushed right by a drift that grows with t (a propagation gone off)."""
    return np.roll(phantom.masks[t], int(round(per_frame * t)), axis=1)
