"""A project's annotations as tidy tables, the input of every agreement statistic.

* ``frame_pairs``: one row per rater pair x clip x frame both raters annotated: boundary metrics
  (:mod:`.masks`), both areas, both plane labels, ``unit`` ('mm' or 'px'), ``empty``.
* ``frame_labels`` / ``clip_labels``: subjects x raters plane labels (one column per rater, None
  where a rater gave no label), with ``clip_id``, ``participant`` (and ``frame``) columns.
* ``frame_areas``: subjects x raters areas (NaN where not annotated) with ``area_unit``.
* ``clips``: one row per clip: participant, spacing, unit, raters, each rater's quality.

Bad input raises :class:`~napari_ultramn.errors.InputError` naming the project or file: fewer
than two raters, raters with no clip in common, an annotation whose shape does not fit its clip
or whose plane labels the project does not have.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

from napari_ultramn.annotation import ClipAnnotation
from napari_ultramn.errors import InputError
from napari_ultramn.progress import Progress, ProgressGen

from ..labels import load_project_annotation
from .masks import boundary_metrics


@dataclass
class AgreementTables:
    raters: list[str]
    plane_labels: list[str]
    frame_pairs: pd.DataFrame
    frame_labels: pd.DataFrame
    clip_labels: pd.DataFrame
    frame_areas: pd.DataFrame
    clips: pd.DataFrame
    tolerance: dict[str, float]
    notes: list[str] = field(default_factory=list)


def clip_spacing(record: dict) -> tuple[float, float] | None:
    """The clip's (row, col) spacing in mm, or None when uncalibrated."""
    sp = record.get("spacing_mm")
    if sp is None or record.get("spacing_source") == "none":
        return None
    return float(sp[0]), float(sp[1])


def read_annotation(project, clip_id: str, rater: str) -> ClipAnnotation:
    """One rater's annotation of a clip; a missing file is an :class:`InputError` like a bad one."""
    path = project.annotations.path(clip_id, rater)
    if not path.exists():
        raise InputError(path, "annotation file not found")
    return load_project_annotation(project, clip_id, rater)


def load_clip(project, record: dict, raters: list[str]) -> dict[str, ClipAnnotation]:
    """``{rater: ClipAnnotation}`` of one registry clip, each checked against the clip's shape."""
    cid = record["clip_id"]
    want = (int(record["n_frames"]), tuple(int(s) for s in record["frame_shape"]))
    out = {}
    for rater in raters:
        ann = read_annotation(project, cid, rater)
        got = (ann.n_frames, tuple(ann.frame_shape))
        if got != want:
            raise InputError(
                project.annotations.path(cid, rater),
                f"annotation of {got[0]} frames of {got[1][0]}x{got[1][1]} does not match clip "
                f"'{cid}' ({want[0]} frames of {want[1][0]}x{want[1][1]}); re-annotate or remove it",
            )
        out[rater] = ann
    return out


def check_raters(project, annotations: dict) -> list[str]:
    """All raters (``annotations``: clip id -> its raters); raises a clear error when agreement
    cannot be measured."""
    by_rater: dict[str, list[str]] = {}
    for cid, anns in annotations.items():
        for rater in anns:
            by_rater.setdefault(rater, []).append(cid)
    raters = sorted(by_rater)
    if len(raters) < 2:
        found = f"only '{raters[0]}' ({len(by_rater[raters[0]])} clip(s))" if raters else "no annotations"
        raise InputError(project.root, f"agreement needs annotations from at least two raters; found {found}")
    if not any(len(anns) >= 2 for anns in annotations.values()):
        desc = "; ".join(f"{r}: {', '.join(sorted(c)[:3])}{' ...' if len(c) > 3 else ''}" for r, c in by_rater.items())
        raise InputError(
            project.root,
            f"raters labelled disjoint clips: no clip is annotated by two raters ({desc})",
        )
    return raters


def measure_clip(shared: tuple, item: tuple[dict, list[str]]) -> tuple:
    """One clip's rows (pairs, frame labels, clip labels, areas, clip; and whether it is
    uncalibrated): a worker's task, reading only this clip's annotations."""
    view, raters, tolerance_mm, tolerance_px = shared
    rec, clip_raters = item
    cid = rec["clip_id"]
    pair_rows, flabel_rows, clabel_rows, area_rows, clip_rows = [], [], [], [], []
    anns = load_clip(view, rec, clip_raters)
    spacing = clip_spacing(rec)
    unit = "px" if spacing is None else "mm"
    tol = tolerance_px if spacing is None else tolerance_mm
    px_area = 1.0 if spacing is None else spacing[0] * spacing[1]
    part = rec.get("participant") or cid
    planes = {r: a.frame_planes() for r, a in anns.items()}
    clip_rows.append(
        {
            "clip_id": cid,
            "participant": part,
            "n_frames": rec["n_frames"],
            "spacing_row_mm": None if spacing is None else spacing[0],
            "spacing_col_mm": None if spacing is None else spacing[1],
            "unit": unit,
            "raters": "+".join(sorted(anns)),
            **{f"quality_{r}": anns[r].quality if r in anns else None for r in raters},
        }
    )
    clabel_rows.append(
        {"clip_id": cid, "participant": part, **{r: anns[r].clip_plane if r in anns else None for r in raters}}
    )
    areas = {r: {t: float(fm.mask.sum()) * px_area for t, fm in a.frames.items()} for r, a in anns.items()}
    for t in range(int(rec["n_frames"])):
        flabel_rows.append(
            {
                "clip_id": cid,
                "participant": part,
                "frame": t,
                **{r: planes[r][t] if r in planes else None for r in raters},
            }
        )
        if any(t in areas[r] for r in areas):
            area_rows.append(
                {
                    "clip_id": cid,
                    "participant": part,
                    "frame": t,
                    "area_unit": "mm2" if spacing else "px",
                    **{r: areas.get(r, {}).get(t, np.nan) for r in raters},
                }
            )
    for ra, rb in combinations(sorted(anns), 2):
        fa, fb = anns[ra].frames, anns[rb].frames
        for t in sorted(set(fa) & set(fb)):
            m = boundary_metrics(fa[t].mask, fb[t].mask, spacing, tol)
            pair_rows.append(
                {
                    "clip_id": cid,
                    "participant": part,
                    "frame": t,
                    "rater_a": ra,
                    "rater_b": rb,
                    "pair": f"{ra}-{rb}",
                    **m,
                    "tolerance": tol,
                    "area_a": areas[ra][t],
                    "area_b": areas[rb][t],
                    "area_unit": "mm2" if spacing else "px",
                    "plane_a": planes[ra][t],
                    "plane_b": planes[rb][t],
                    "provenance_a": fa[t].provenance,
                    "provenance_b": fb[t].provenance,
                }
            )
    return pair_rows, flabel_rows, clabel_rows, area_rows, clip_rows, spacing is None


def build_tables(
    project, tolerance_mm: float = 0.5, tolerance_px: float = 2.0, workers: int | None = None
) -> ProgressGen[AgreementTables]:
    """Load every annotation and compute per-frame, per-pair measurements (the slow part).

    Clips are measured by ``workers`` processes (default all cores; 1: in this process), each
    reading one clip at a time; rows are put back in registry order, so the tables are the same
    for any number of workers.
    """
    from napari_ultramn.parallel import pool_map

    from ..project_view import ProjectView

    who = {cid: project.annotations.human_raters(cid) for cid in project.clip_ids()}
    annotations = {cid: r for cid, r in who.items() if r}
    raters = check_raters(project, annotations)
    notes: list[str] = []
    ids = [cid for cid in project.clip_ids() if cid in annotations]
    items = [(project.clip_record(cid), annotations[cid]) for cid in ids]
    shared = (ProjectView.of(project), raters, tolerance_mm, tolerance_px)
    measured: list = [None] * len(ids)
    for n, (i, rows) in enumerate(pool_map(measure_clip, items, shared=shared, workers=workers), 1):
        measured[i] = rows
        yield Progress(n, len(ids), f"measured {ids[i]}")
    pair_rows, flabel_rows, clabel_rows, area_rows, clip_rows = ([r for m in measured for r in m[k]] for k in range(5))
    uncalibrated = [cid for cid, m in zip(ids, measured, strict=True) if m[5]]
    if uncalibrated:
        notes.append(
            f"{len(uncalibrated)} clip(s) have no pixel calibration ({', '.join(uncalibrated[:5])}"
            f"{' ...' if len(uncalibrated) > 5 else ''}): their distances are in pixels and areas in "
            "pixels, reported separately from calibrated clips (unit column 'px')."
        )
    single = [cid for cid, anns in annotations.items() if len(anns) < 2]
    if single:
        notes.append(f"{len(single)} clip(s) were annotated by one rater only and add nothing to agreement.")
    cols_pairs = [
        "clip_id",
        "participant",
        "frame",
        "rater_a",
        "rater_b",
        "pair",
        "dice",
        "iou",
        "hd",
        "hd95",
        "assd",
        "surface_dice",
        "tolerance",
        "unit",
        "empty",
        "area_a",
        "area_b",
        "area_unit",
        "plane_a",
        "plane_b",
        "provenance_a",
        "provenance_b",
    ]
    frame_pairs = pd.DataFrame(pair_rows, columns=cols_pairs)
    if frame_pairs.empty:
        notes.append("No frame carries masks from two raters: boundary and area agreement are not reported.")
    return AgreementTables(
        raters=raters,
        plane_labels=list(project.plane_labels),
        frame_pairs=frame_pairs,
        frame_labels=pd.DataFrame(flabel_rows),
        clip_labels=pd.DataFrame(clabel_rows),
        frame_areas=pd.DataFrame(area_rows, columns=["clip_id", "participant", "frame", "area_unit", *raters]),
        clips=pd.DataFrame(clip_rows),
        tolerance={"mm": tolerance_mm, "px": tolerance_px},
        notes=notes,
    )
