"""napari writers for a nerve Labels layer: our annotation JSON, a PNG sequence, a DICOM SEG.

napari calls ``writer(path, data, attributes)`` with the layer's data and its attributes dict
(``name``, ``metadata``, ...); each returns the list of paths written. The annotator puts what a
writer needs into the layer metadata: ``clip_id``, ``rater``, ``provenance`` (one code per frame,
-1 unannotated), ``source_path`` and ``crop_region`` of the source DICOM. A Labels layer from
elsewhere still saves: every non-empty frame counts as 'drawn'. Any non-zero label is nerve.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .annotation.clip_annotation import PROVENANCES, ClipAnnotation
from .annotation.export import export_dicom_seg, export_png_sequence
from .errors import InputError
from .schema import write_json

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _masks(path, data) -> np.ndarray:
    """Labels data as ``(T, H, W) bool`` (a 2D layer is one frame)."""
    arr = np.asarray(data)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise InputError(path, f"can only save 2D or (frames, rows, cols) labels, got shape {arr.shape}")
    return arr != 0


def _safe_id(value: str, fallback: str) -> str:
    value = _UNSAFE.sub("_", str(value or "")).strip("_.-")[:64]
    return value or fallback


def labels_to_annotation(path, data, attributes: dict) -> ClipAnnotation:
    """Build the annotation a Labels layer holds (metadata from the annotator where present)."""
    meta = attributes.get("metadata") or {}
    masks = _masks(path, data)
    clip_id = _safe_id(meta.get("clip_id") or Path(path).stem or attributes.get("name"), "clip")
    rater = _safe_id(meta.get("rater"), "napari")
    ann = ClipAnnotation(clip_id, rater, masks.shape[0], masks.shape[1:], clip_plane=meta.get("clip_plane"))
    codes = meta.get("provenance")
    if codes is not None and len(codes) != masks.shape[0]:
        raise InputError(path, f"layer metadata 'provenance' has {len(codes)} entries for {masks.shape[0]} frames")
    for t in range(masks.shape[0]):
        code = -1 if codes is None else int(codes[t])
        if codes is None and masks[t].any():
            code = 0  # no provenance: a painted frame is a human keyframe
        if code >= 0:
            ann.set_mask(t, masks[t], PROVENANCES[code])
    ann.status = "in_progress" if ann.frames else "not_started"
    return ann


def write_annotation(path: str, data, attributes: dict) -> list[str]:
    """Save the layer as an UltraMN annotation JSON (schema-checked, atomic)."""
    ann = labels_to_annotation(path, data, attributes)
    out = Path(path)
    if out.suffix.lower() != ".json":
        out = out.with_suffix(".json")
    write_json(out, ann.to_json(), "annotation")
    return [str(out)]


def write_mask_pngs(path: str, data, attributes: dict) -> list[str]:
    """One PNG per frame (0 / 255) in the folder ``path`` without its '.png' extension."""
    out_dir = Path(path)
    if out_dir.suffix.lower() == ".png":
        out_dir = out_dir.with_suffix("")
    return [str(p) for p in export_png_sequence(_masks(path, data), out_dir)]


def write_dicom_seg(path: str, data, attributes: dict) -> list[str]:
    """A DICOM Segmentation referencing the clip's source DICOM (from the layer metadata)."""
    meta = attributes.get("metadata") or {}
    source = meta.get("source_path")
    if not source or not Path(source).is_file():
        raise InputError(
            path,
            "the layer does not name its source DICOM (metadata 'source_path'); "
            "open the clip from its DICOM file to export a Segmentation",
        )
    out = Path(path)
    if out.suffix.lower() != ".dcm":
        out = out.with_suffix(".dcm")
    written = export_dicom_seg(
        _masks(path, data), source, out, crop_region=meta.get("crop_region"), rater=str(meta.get("rater") or "")
    )
    return [str(written)]
