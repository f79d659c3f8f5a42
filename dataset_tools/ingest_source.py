"""One source of an ingest, in a worker process (:func:`ingest_source`): steps 1-5 of
:mod:`dataset_tools.ingest` except what only the parent does (recording the identifiers seen,
the registry). Nothing here writes a file shared between sources.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_ultramn.errors import InputError
from napari_ultramn.io.clip import Clip, Region
from napari_ultramn.io.open_clip import clip_kind
from napari_ultramn.io.source_files import file_sha256

from . import deid
from .fingerprint import clip_fingerprint
from .ingest_identity import dicom_identity
from .ingest_mapping import mapping_row

#: Frames decoded, cropped and blanked at a time (bounds the memory of the uncropped frames).
DECODE_BLOCK = 32
_REGION_WAY_ON = "give its region in the mapping CSV (column region, 'x0 y0 x1 y1' in source pixels)"


@dataclass(frozen=True)
class IngestShared:
    """What every worker of one ingest run needs (sent to each worker process once)."""

    root: Path
    key: bytes
    mapping: dict[str, dict]
    corrections: dict[str, Region]
    keep_dicom: bool
    no_crop: bool
    planes: list[str]
    plane_labels: list[str]
    #: the registry when the run started, by source sha256: clip_id, crop_region, frame_shape
    by_sha: dict[str, dict] = field(default_factory=dict)


@dataclass
class SourceOutcome:
    """What a worker did with one source; the parent turns it into registry and summary entries."""

    status: str  # 'added', 'skipped', 'recropped' or 'failed'
    sha: str | None = None
    clip_id: str | None = None
    seen: list = field(default_factory=list)  # (kind, raw identifier) pairs, for .secret/
    record: dict | None = None  # the registry record of an added or re-cropped clip
    note: str = ""  # the problem of a failed source; what a re-crop did
    old_shape: list | None = None  # a re-cropped clip's frame size before


_PLANE_WORDS = (
    (r"\b(TRANSV\w*|TRANS|AXIAL|SAX|TRV|TS)\b", "transverse"),
    (r"\b(LONG\w*|SAGITTAL|LAX|LS)\b", "longitudinal"),
)
_LEVEL_WORDS = ((r"\b(WRIST|CARPAL\w*|CT|TUNNEL)\b", "wrist"), (r"\b(FOREARM|FA|PROX\w*)\b", "forearm"))


def plane_from_text(text: str, planes: list[str]) -> str | None:
    """Guess '<orientation>_<level>' from scanner text like 'MEDIAN N TRANSV WRIST R'."""
    text = text.upper().replace("_", " ")
    orient = next((name for pat, name in _PLANE_WORDS if re.search(pat, text)), None)
    level = next((name for pat, name in _LEVEL_WORDS if re.search(pat, text)), None)
    guess = f"{orient}_{level}" if orient and level else None
    return guess if guess in planes else None


def _inside(region: Region, frame_shape: tuple[int, int], source: Path, what: str) -> Region:
    h, w = frame_shape
    if region.top < 0 or region.left < 0 or region.bottom > h or region.right > w:
        raise InputError(source, f"{what} {region.as_list()} (top, left, bottom, right) lies outside the {w}x{h} frame")
    return region


def imaging_area(
    clip: Clip, source: Path, *, correction: Region | None, mapped: Region | None, burned_in: bool, no_crop: bool
):
    """The ``screen_region.ImagingArea`` to crop to (contract C's order), or None for --no-crop.

    Raises :class:`InputError` (one line, with the way on) where no area can be trusted.
    """
    from napari_ultramn.io.screen_region import (
        MIN_CONFIDENCE,
        area_from_region,
        detect_imaging_area,
    )

    sample = clip.frames  # lazy: screen_region decodes only the frames it samples
    if correction is not None:
        return area_from_region(_inside(correction, clip.frame_shape, source, "corrected region"), sample, "corrected")
    if mapped is not None:
        return area_from_region(_inside(mapped, clip.frame_shape, source, "mapping CSV region"), sample, "mapping")
    if clip.imaging_region is not None:  # DICOM SequenceOfUltrasoundRegions
        r, (h, w) = clip.imaging_region, clip.frame_shape
        r = Region(max(0, r.top), max(0, r.left), min(h, r.bottom), min(w, r.right))
        if r.height <= 0 or r.width <= 0:
            raise InputError(source, f"its ultrasound region lies outside the frame; {_REGION_WAY_ON}")
        return area_from_region(r, sample, "dicom-regions")
    if burned_in:
        raise InputError(
            source,
            "refused: the file declares burned-in annotation "
            f"(BurnedInAnnotation YES) and has no ultrasound region; {_REGION_WAY_ON} "
            "or save a region correction (--no-crop does not apply)",
        )
    area = detect_imaging_area(sample)
    if area.confidence >= MIN_CONFIDENCE:
        return area
    if no_crop:
        return None
    raise InputError(
        source,
        f"refused: imaging area not found with confidence "
        f"({area.confidence:.2f}: {area.reason}); {_REGION_WAY_ON}, or pass "
        "--no-crop to keep whole frames",
    )


def _cropped_frames(clip: Clip, area) -> np.ndarray:
    """(T, h, w) uint8: cropped to the area and blanked, decoded a block of frames at a time."""
    from napari_ultramn.io.screen_region import apply_imaging_area

    if area is None:
        return clip.to_array()
    r = area.region
    out = np.empty((clip.n_frames, r.height, r.width), np.uint8)
    for t0 in range(0, clip.n_frames, DECODE_BLOCK):
        block = np.stack([clip.frame(t) for t in range(t0, min(t0 + DECODE_BLOCK, clip.n_frames))])
        out[t0 : t0 + len(block)] = apply_imaging_area(block, area)
    return out


def _identity(source: Path, kind: str | None) -> dict:
    """Header identity of a DICOM file, or of a single-frame series' first file in frame order."""
    if kind == "dicom":
        return dicom_identity(source)
    if kind == "dicom_series":
        from napari_ultramn.io.dicom_series import series_files

        return dicom_identity(series_files(source)[0])
    return {}


def ingest_source(shared: IngestShared, item: tuple[Path, str]) -> SourceOutcome:
    """Ingest one source, in a worker process: everything but the registry and identifiers.

    ``item`` is ``(path, rel)`` (rel: the name shown to the user). Decodes, crops, blanks,
    compresses and fingerprints the clip and writes ``clips/<clip_id>.h5`` (and the DICOM copy);
    the parent records the identifiers seen and upserts the record (one writer). A problem with
    the file is returned as status 'failed' (the identifiers seen before it still count);
    an :class:`OutputError` (full disk) is raised and stops the run.
    """
    source, rel = item
    out = SourceOutcome("failed")
    try:
        return _ingest_source(shared, Path(source), rel, out)
    except InputError as exc:
        out.status, out.note, out.record = "failed", exc.problem, None
        return out


def _ingest_source(shared: IngestShared, source: Path, rel: str, out: SourceOutcome) -> SourceOutcome:
    from napari_ultramn.io import open_clip
    from napari_ultramn.io.hdf5clip import write_hdf5_clip

    sha = out.sha = file_sha256(source)
    correction = shared.corrections.get(sha)
    existing = shared.by_sha.get(sha)
    kind = clip_kind(source)
    mapped = mapping_row(shared.mapping, rel)
    ident = _identity(source, kind)
    out.seen = list(ident.get("identifiers", []))
    out.seen += [(k, mapped[k]) for k in ("patient_id", "site") if mapped.get(k)]
    if existing is not None and (correction is None or existing.get("crop_region") == correction.as_list()):
        out.status, out.clip_id = "skipped", existing["clip_id"]
        return out
    clip = open_clip(source)
    patient_id = mapped.get("patient_id") or ident.get("patient_id")
    if not patient_id:
        raise InputError(source, "no patient id: the file has none; give one in the mapping CSV (column patient_id)")
    participant = deid.pseudonym(shared.key, patient_id)
    shift = deid.date_shift_days(shared.key, patient_id)
    side = mapped.get("side") or ident.get("side")
    plane = mapped.get("plane") or plane_from_text(ident.get("text", ""), shared.planes)
    if plane is not None and plane not in shared.plane_labels:
        raise InputError(source, f"plane {plane!r} is not in the project vocabulary {shared.plane_labels}")
    area = imaging_area(
        clip,
        source,
        correction=correction,
        mapped=mapped.get("region"),
        burned_in=ident.get("burned_in", False),
        no_crop=shared.no_crop,
    )
    frames = _cropped_frames(clip, area)
    clip_id = out.clip_id = existing["clip_id"] if existing else f"{participant}-{sha[:8]}"
    meta = {
        "clip_id": clip_id,
        "participant": participant,
        "side": side,
        "plane": plane,
        "source_sha256": sha,
        "spacing_mm": clip.spacing_mm,
        "spacing_source": clip.spacing_source,
        "frame_time_ms": clip.frame_time_ms,
        "manufacturer": clip.manufacturer,
        "device_model": clip.device_model,
    }
    write_hdf5_clip(shared.root / "clips" / f"{clip_id}.h5", frames, meta)
    if shared.keep_dicom and kind == "dicom":
        _write_deidentified_dicom(shared.root, source, clip_id, participant, shift, shared.key, frames, area)
    out.record = {
        **{k: v for k, v in meta.items() if k != "spacing_mm"},
        "spacing_mm": None if clip.spacing_mm is None else [float(s) for s in clip.spacing_mm],
        "file": f"clips/{clip_id}.h5",
        "n_frames": int(frames.shape[0]),
        "frame_shape": [int(frames.shape[1]), int(frames.shape[2])],
        "crop_region": None if area is None else area.region.as_list(),
        "imaging_area": None if area is None else area.to_record(),
        "no_crop": area is None,
        "sex": deid.normalise_sex(mapped.get("sex") or ident.get("sex")),
        "age_band": mapped.get("age_band")
        or deid.age_band(ident.get("age"), ident.get("birth_date"), ident.get("study_date")),
        # a site name from the CSV is pseudonymised exactly like a DICOM institution
        "site": deid.site_pseudonym(shared.key, mapped.get("site") or ident.get("institution")),
        "study_date_shifted": deid.shift_date(ident.get("study_date"), shift),
        "source_kind": kind,
        "ingested_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "fingerprint": clip_fingerprint(frames),
    }
    if existing is None:
        out.status = "added"
    else:
        out.status = "recropped"  # only a correction re-crops a clip already in the project
        assert correction is not None
        out.note = f"re-cropped to its correction {correction.as_list()}"
        out.old_shape = existing["frame_shape"]
    return out


def _write_deidentified_dicom(root: Path, source, clip_id, participant, shift, key, frames, area) -> None:
    import pydicom

    from napari_ultramn.atomic import atomic_path

    ds = pydicom.dcmread(source)
    # the copy carries the same cropped, blanked pixels as the project clip (contract E); a clip
    # kept whole (--no-crop) keeps its original pixels
    deid.deidentify_dataset(
        ds,
        key,
        participant,
        shift,
        frames=None if area is None else frames,
        crop_region=None if area is None else area.region.as_list(),
    )
    with atomic_path(root / "dicom" / f"{clip_id}.dcm") as tmp:
        ds.save_as(tmp, enforce_file_format=True)
