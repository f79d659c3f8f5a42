"""Register clips into an annotation project, de-identified (``ultramn ingest SOURCE PROJECT``).

For each DICOM file, video or frame folder under SOURCE:

1. sha256 of the source; a file already in the registry is skipped (re-ingest is a no-op).
2. Identity from the DICOM header (or the mapping CSV for videos and frame folders): the participant
   pseudonym is a keyed hash of PatientID (key in ``PROJECT/.secret``), dates are shifted per
   participant, age becomes a decade band, the institution a site pseudonym.
3. Side and plane from the mapping CSV if given, else from the file (laterality tags, series text).
4. Frames cropped to the ultrasound imaging region (burned-in text outside it goes) and written to
   ``PROJECT/clips/<clip_id>.h5`` with only whitelisted, non-identifying metadata.

Patient identifiers never leave this module: nothing it writes outside ``.secret`` contains them.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

from napari_ultramn import DEFAULT_PLANES
from napari_ultramn.errors import InputError
from napari_ultramn.io.clip import file_sha256
from napari_ultramn.io.open_clip import clip_kind
from napari_ultramn.progress import Progress, ProgressGen
from napari_ultramn.project import Project

from . import deid
from .fingerprint import clip_fingerprint

MAPPING_COLUMNS = ("file", "patient_id", "side", "plane", "sex", "age_band", "site")


@dataclass
class IngestSummary:
    added: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already in the project
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source name, problem)

    def line(self) -> str:
        return f"{len(self.added)} added, {len(self.skipped)} already present, {len(self.failed)} failed"


def find_sources(source: Path) -> list[Path]:
    """Clip files and frame folders under ``source`` (or ``source`` itself), sorted."""
    source = Path(source)
    if not source.exists():
        raise InputError(source, "source not found")
    if source.is_file() or clip_kind(source) == "frames":
        return [source]
    found = []
    for path in sorted(source.rglob("*")):
        if path.name.startswith(".") or path.name.lower() in ("study.csv", "dicomdir"):
            continue
        if path.is_dir():
            if clip_kind(path) == "frames":
                found.append(path)
        elif path.parent not in found and clip_kind(path) in ("dicom", "video"):
            found.append(path)
    return found


def read_mapping(path: Path | None, source_root: Path) -> dict[str, dict]:
    """CSV mapping ``file -> {patient_id, side, plane, ...}``; keys are paths relative to SOURCE and names."""
    if path is None:
        return {}
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or "file" not in reader.fieldnames:
                raise InputError(path, f"mapping CSV needs a 'file' column (columns: {', '.join(MAPPING_COLUMNS)})")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(path, f"cannot read mapping CSV ({exc})") from None
    mapping = {}
    for row in rows:
        key = row["file"].strip()
        clean = {k: (v.strip() or None) for k, v in row.items() if k != "file" and v is not None}
        mapping[key] = clean
        mapping[Path(key).name] = clean
    return mapping


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


def _dicom_identity(path: Path) -> dict:
    """Identifying and descriptive header fields, read without pixel data."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as exc:  # pydicom raises many types for corrupt headers
        raise InputError(path, f"DICOM header cannot be read ({type(exc).__name__}: {exc})") from None

    def get(kw):
        v = ds.get(kw)
        return None if v in (None, "") else str(v)

    lat = (get("ImageLaterality") or get("Laterality") or "").upper()
    text = " ".join(filter(None, (get(k) for k in ("SeriesDescription", "ImageComments", "ProtocolName",
                                                     "StudyDescription", "BodyPartExamined"))))
    return {
        "patient_id": get("PatientID"),
        "sex": get("PatientSex"),
        "age": get("PatientAge"),
        "birth_date": get("PatientBirthDate"),
        "study_date": get("StudyDate") or get("AcquisitionDate") or get("ContentDate"),
        "institution": get("InstitutionName"),
        "side": {"L": "left", "R": "right"}.get(lat[:1]) if lat[:1] in ("L", "R") else None,
        "text": text,
    }


def ingest_one(project: Project, source: Path, source_root: Path, mapping: dict[str, dict],
               keep_dicom: bool = False) -> tuple[str, str]:
    """Ingest one source; returns ``(status, clip_id)`` with status 'added' or 'skipped'."""
    from napari_ultramn.io import open_clip
    from napari_ultramn.io.hdf5clip import write_hdf5_clip

    sha = file_sha256(source)
    for rec in project.clips():
        if rec["source_sha256"] == sha:
            return "skipped", rec["clip_id"]
    kind = clip_kind(source)
    rel = str(source.relative_to(source_root)) if source != source_root else source.name
    mapped = mapping.get(rel) or mapping.get(source.name) or {}
    ident = _dicom_identity(source) if kind == "dicom" else {}
    patient_id = mapped.get("patient_id") or ident.get("patient_id")
    if not patient_id:
        raise InputError(source, "no patient id: the file has none; give one in the mapping CSV (column patient_id)")
    key = project.pseudonym_key()
    participant = deid.pseudonym(key, patient_id)
    shift = deid.date_shift_days(key, patient_id)
    side = mapped.get("side") or ident.get("side")
    if side not in (None, "left", "right"):
        raise InputError(source, f"side must be 'left' or 'right', got {side!r}")
    plane = mapped.get("plane") or plane_from_text(ident.get("text", ""), project.planes)
    if plane is not None and plane not in project.plane_labels:
        raise InputError(source, f"plane {plane!r} is not in the project vocabulary {project.plane_labels}")

    clip = open_clip(source, crop_to_region=True)
    frames = clip.to_array()
    clip_id = f"{participant}-{sha[:8]}"
    meta = {
        "clip_id": clip_id, "participant": participant, "side": side, "plane": plane,
        "source_sha256": sha, "spacing_mm": clip.spacing_mm, "spacing_source": clip.spacing_source,
        "frame_time_ms": clip.frame_time_ms, "manufacturer": clip.manufacturer,
        "device_model": clip.device_model,
    }
    write_hdf5_clip(project.root / "clips" / f"{clip_id}.h5", frames, meta)
    if keep_dicom and kind == "dicom":
        _write_deidentified_dicom(project, source, clip_id, participant, shift, key)
    record = {
        **{k: v for k, v in meta.items() if k != "spacing_mm"},
        "spacing_mm": None if clip.spacing_mm is None else [float(s) for s in clip.spacing_mm],
        "file": f"clips/{clip_id}.h5",
        "n_frames": int(frames.shape[0]),
        "frame_shape": [int(frames.shape[1]), int(frames.shape[2])],
        "crop_region": clip.extra.get("crop_region"),
        "sex": deid.normalise_sex(mapped.get("sex") or ident.get("sex")),
        "age_band": mapped.get("age_band") or deid.age_band(ident.get("age"), ident.get("birth_date"),
                                                           ident.get("study_date")),
        "site": mapped.get("site") or deid.site_pseudonym(key, ident.get("institution")),
        "study_date_shifted": deid.shift_date(ident.get("study_date"), shift),
        "source_kind": kind,
        "ingested_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "fingerprint": clip_fingerprint(frames),
    }
    project.upsert_clips([record])
    return "added", clip_id


def _write_deidentified_dicom(project, source, clip_id, participant, shift, key) -> None:
    import pydicom

    from napari_ultramn.atomic import atomic_path

    ds = pydicom.dcmread(source)
    deid.deidentify_dataset(ds, key, participant, shift)
    with atomic_path(project.root / "dicom" / f"{clip_id}.dcm") as tmp:
        ds.save_as(tmp, enforce_file_format=True)


def ingest(source: str | Path, project_dir: str | Path, *, mapping_csv: str | Path | None = None,
           planes: list[str] | None = None, keep_dicom: bool = False) -> ProgressGen[IngestSummary]:
    """Ingest every clip under ``source``; creates the project if needed. Yields progress.

    A file that fails is reported (name + problem) and skipped; the others still go in.
    """
    source = Path(source)
    root = Path(project_dir)
    if (root / "project.json").exists():
        project = Project.open(root)
    else:
        project = Project.create(root, planes=planes or DEFAULT_PLANES)
    sources = find_sources(source)
    mapping = read_mapping(mapping_csv, source if source.is_dir() else source.parent)
    summary = IngestSummary()
    base = source if source.is_dir() and clip_kind(source) != "frames" else source.parent
    for i, path in enumerate(sources):
        yield Progress(i, len(sources), f"ingesting {path.name}")
        try:
            status, clip_id = ingest_one(project, path, base, mapping, keep_dicom)
        except InputError as exc:
            summary.failed.append((path.name, exc.problem))
            continue
        (summary.added if status == "added" else summary.skipped).append(clip_id)
    yield Progress(len(sources), len(sources), summary.line())
    return summary
