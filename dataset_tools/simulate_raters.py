"""Simulated raters: annotate a project from the phantom's ground truth, each with their own habits.

For every project clip the ground truth ``STUDY/ground_truth/<source_sha256>.npz`` (``masks (T, H, W)
bool`` in the project's cropped coordinates, ``plane_labels (T,)``, ``quality (T,)``) becomes one
:class:`~napari_ultramn.annotation.ClipAnnotation` per rater, saved in the project, with realistic,
different disagreement:

* every rater traces a *smoothly jittered* boundary: the ground truth's signed distance plus a
  low-pass random field (a hand never jitters pixel by pixel);
* rater 2 (``raters[1]``) is a slightly *larger tracer* (the boundary pushed outwards);
* rater 3 (``raters[2]``) is hurried: more jitter, some skipped frames, now and then the *wrong
  clip plane* (wrist and forearm swapped) and shifted non-standard ranges;
* keyframes are drawn every few frames (``'drawn'``) and the frames between are
  ``'interpolated'`` by blending the keyframes' signed distances, as the annotator does.

More than three raters cycle through these habits with fresh randomness. Seeded and deterministic.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from napari_ultramn import NON_STANDARD
from napari_ultramn.annotation import ClipAnnotation, PlaneRange
from napari_ultramn.errors import InputError
from napari_ultramn.progress import Progress, ProgressGen


@dataclass(frozen=True)
class RaterHabit:
    jitter_px: float  # amplitude of the smooth boundary displacement
    grow_px: float  # constant outward push of the boundary (a larger tracer)
    keyframe_every: int
    skip_fraction: float  # interpolated frames the rater never got to
    wrong_plane_p: float  # chance of giving the clip the wrong plane
    range_shift: int  # frames by which non-standard ranges may be misplaced


HABITS = (
    RaterHabit(0.6, 0.0, 4, 0.0, 0.0, 0),
    RaterHabit(0.8, 1.2, 5, 0.0, 0.0, 1),
    RaterHabit(1.3, 0.2, 6, 0.15, 0.25, 2),
)


def signed_distance(mask: np.ndarray) -> np.ndarray:
    """Positive inside, negative outside, in pixels (0 everywhere-negative for an empty mask)."""
    if not mask.any():
        return np.full(mask.shape, -1e3)
    return ndimage.distance_transform_edt(mask) - ndimage.distance_transform_edt(~mask)


def smooth_field(shape, rng: np.random.Generator, amplitude: float, sigma: float = 6.0) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    scale = field.std()
    return field * (amplitude / scale) if scale > 0 else field


def load_ground_truth(study_dir: Path, record: dict) -> dict:
    """The clip's ground truth, checked against the project's clip shape."""
    path = Path(study_dir) / "ground_truth" / f"{record['source_sha256']}.npz"
    if not path.is_file():
        raise InputError(path, f"no ground truth for clip '{record['clip_id']}' (source sha256 not in the study)")
    with np.load(path, allow_pickle=False) as npz:
        gt = {k: npz[k] for k in npz.files}
    if "masks" not in gt:
        raise InputError(path, "ground truth has no 'masks' array")
    want = (int(record["n_frames"]), *(int(s) for s in record["frame_shape"]))
    if tuple(gt["masks"].shape) != want:
        raise InputError(
            path,
            f"ground-truth masks of shape {tuple(gt['masks'].shape)} do not match clip '{record['clip_id']}' "
            f"{want} in the project's cropped coordinates",
        )
    gt["masks"] = gt["masks"].astype(bool)
    n = want[0]
    gt["plane_labels"] = [str(p) or None for p in gt.get("plane_labels", np.array([record.get("plane")] * n))]
    gt["quality"] = [str(q) for q in gt.get("quality", np.array(["ok"] * n))]
    return gt


def _runs(labels: list, value) -> list[tuple[int, int]]:
    runs, start = [], None
    for t, lab in enumerate([*labels, object()]):
        if lab == value and start is None:
            start = t
        elif lab != value and start is not None:
            runs.append((start, t))
            start = None
    return runs


def _wrong_plane(plane: str | None, planes: list[str], rng) -> str | None:
    if plane is None:
        return None
    swap = {"wrist": "forearm", "forearm": "wrist"}
    for a, b in swap.items():
        if a in plane and plane.replace(a, b) in planes:
            return plane.replace(a, b)
    others = [p for p in planes if p != plane]
    return str(rng.choice(others)) if others else plane


def simulate_clip(
    record: dict,
    gt: dict,
    rater: str,
    habit: RaterHabit,
    planes: list[str],
    rng: np.random.Generator,
    sdf: list[np.ndarray],
) -> ClipAnnotation:
    """One rater's annotation of one clip."""
    masks = gt["masks"]
    n, shape = masks.shape[0], masks.shape[1:]
    labels = gt["plane_labels"]
    standard = [p for p in labels if p and p != NON_STANDARD]
    clip_plane = Counter(standard).most_common(1)[0][0] if standard else record.get("plane")
    if rng.random() < habit.wrong_plane_p:
        clip_plane = _wrong_plane(clip_plane, planes, rng)
    ranges = []
    for start, stop in _runs(labels, NON_STANDARD):
        shift = int(rng.integers(-habit.range_shift, habit.range_shift + 1)) if habit.range_shift else 0
        s, e = max(0, start + shift), min(n, stop + shift)
        if e > s:
            ranges.append(PlaneRange(s, e, NON_STANDARD))
    qualities = Counter(gt["quality"]).most_common(1)[0][0]
    if qualities == "ok" and habit.wrong_plane_p and rng.random() < 0.1:
        qualities = "poor"
    ann = ClipAnnotation(
        record["clip_id"], rater, n, shape, clip_plane=clip_plane, plane_ranges=ranges, status="done", quality=qualities
    )
    keys = list(range(0, n, habit.keyframe_every))
    if keys[-1] != n - 1:
        keys.append(n - 1)
    traced = {}
    for t in keys:
        if masks[t].any():
            traced[t] = sdf[t] + habit.grow_px + smooth_field(shape, rng, habit.jitter_px)
        else:  # "no nerve visible" is an explicit, drawn answer
            traced[t] = np.full(shape, -1e3)
        ann.set_mask(t, traced[t] > 0, "drawn")
    for k0, k1 in zip(keys[:-1], keys[1:], strict=True):
        for t in range(k0 + 1, k1):
            if rng.random() < habit.skip_fraction:
                continue
            w = (t - k0) / (k1 - k0)
            ann.set_mask(t, (1 - w) * traced[k0] + w * traced[k1] > 0, "interpolated")
    return ann


def simulate_raters(
    project, study_dir, raters=("r1", "r2", "r3"), seed: int = 0, workers: int | None = None
) -> ProgressGen[None]:
    """Write every rater's annotation of every project clip (overwrites earlier simulated ones).

    Clips are annotated by ``workers`` processes (default all cores; 1: in this process); each
    clip's randomness is seeded by its place in the registry, so any number gives the same files.
    """
    from napari_ultramn.parallel import pool_map

    raters = list(raters)
    if len(set(raters)) != len(raters) or not raters:
        raise ValueError(f"raters must be distinct names, got {raters}")
    records = project.clips()
    if not records:
        raise InputError(project.root, "project has no clips to annotate")
    shared = (Path(project.root), Path(study_dir), raters, seed, project.planes)
    for n, (i, _) in enumerate(pool_map(simulate_one_clip, enumerate(records), shared=shared, workers=workers), 1):
        yield Progress(n, len(records), f"simulated {len(raters)} raters on {records[i]['clip_id']}")
    return None


def simulate_one_clip(shared: tuple, item: tuple[int, dict]) -> None:
    """Every rater's annotation of registry clip number ``i`` (a worker's task; each writes only
    its own clip's annotation files)."""
    from napari_ultramn.annotation import AnnotationStore

    root, study_dir, raters, seed, planes = shared
    i, rec = item
    store = AnnotationStore(root)
    gt = load_ground_truth(study_dir, rec)
    sdf = [signed_distance(m) for m in gt["masks"]]
    for j, rater in enumerate(raters):
        rng = np.random.default_rng([seed, i, j])
        store.save(simulate_clip(rec, gt, rater, HABITS[j % len(HABITS)], planes, rng, sdf))
