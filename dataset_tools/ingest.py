"""Register clips into an annotation project, de-identified (``ultramn ingest SOURCE PROJECT``).

The whole run holds the project lock (``Project``'s ``ProjectLock``): a second ingest into the same
project waits for the first (at most ``lock_timeout_s``, default 30 min, then stops with a message),
so both runs' clips reach the registry. Before any clip is written the pseudonym key exists
(created 0600, atomically) and is checked; an empty, short or unreadable key stops the run. A bad
mapping CSV (``ingest_mapping``) stops it too, before anything is written.

For each DICOM file, video or frame folder under SOURCE:

1. sha256 of the source; a file already in the registry is skipped (re-ingest is a no-op), unless
   a saved region correction (``region_corrections``) differs from its recorded crop: then it is
   re-cropped in place (annotations kept if the frame size stays, else set aside and reported).
2. Identity from the DICOM header (a header cut short is refused as truncated) or the mapping CSV:
   the participant pseudonym is a keyed hash of PatientID (key in ``PROJECT/.secret``), dates are
   shifted per participant, age becomes a decade band, institution and site names become site
   pseudonyms. Every raw identifier seen goes to ``.secret/identifiers.json`` (mode 0600), for audits.
3. Side and plane from the mapping CSV if given, else from the file (laterality tags, series text).
4. The imaging area, first that applies: a saved correction > the mapping CSV's ``region`` >
   the DICOM ultrasound regions > pixel detection (``screen_region.detect_imaging_area``). A file
   whose area cannot be established with confidence is refused, naming the way on (a ``region``
   in the mapping CSV, or ``--no-crop``, which keeps it whole and is recorded in project.json and
   the clip record). A DICOM declaring ``BurnedInAnnotation`` without regions is never kept whole.
5. Frames cropped to the area, static overlays inside it blanked, written to
   ``PROJECT/clips/<clip_id>.h5`` with only whitelisted, non-identifying metadata; the record says
   how the area was found (``imaging_area``, ``crop_region``, source pixel coordinates).

A file that fails is reported by its path relative to SOURCE; the others still go in.
Patient identifiers never leave this module: nothing it writes outside ``.secret`` contains them.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_ultramn import DEFAULT_PLANES
from napari_ultramn.atomic import remove_stale_temporaries
from napari_ultramn.errors import InputError
from napari_ultramn.io.clip import Clip, Region, file_sha256
from napari_ultramn.io.open_clip import clip_kind
from napari_ultramn.progress import Progress, ProgressGen, relay
from napari_ultramn.project import (
    LOCK_TIMEOUT_S,
    Project,
    ProjectLock,
    check_plane_vocabulary,
    ensure_pseudonym_key,
)

from . import deid
from .fingerprint import clip_fingerprint, likely_duplicate_pairs
from .ingest_identity import dicom_identity
from .ingest_mapping import MAPPING_COLUMNS, mapping_row, read_mapping  # noqa: F401  (re-exported)

#: Frames decoded, cropped and blanked at a time (bounds the memory of the uncropped frames).
DECODE_BLOCK = 32
_REGION_WAY_ON = ("give its region in the mapping CSV (column region, 'x0 y0 x1 y1' in source "
                  "pixels)")


@dataclass
class IngestSummary:
    added: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already in the project
    recropped: list[tuple[str, str]] = field(default_factory=list)  # (clip id, what happened)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path relative to SOURCE, problem)
    #: clips of two participants with near-identical content, one of them new in this run: most
    #: likely one patient under two ids (dataset_tools.fingerprint.DuplicatePair)
    duplicates: list = field(default_factory=list)
    #: the PHI audit of what this run wrote (dataset_tools.phi_audit.AuditReport; None: nothing new)
    audit: object = None
    #: (files, bytes) of temporary files that killed writers had left in the project, now removed
    cleaned: tuple[int, int] = (0, 0)

    def line(self) -> str:
        recropped = f", {len(self.recropped)} re-cropped" if self.recropped else ""
        return (f"{len(self.added)} added{recropped}, {len(self.skipped)} already present, "
                f"{len(self.failed)} failed")


@dataclass(frozen=True)
class _Shared:
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


def find_sources(source: Path) -> list[Path]:
    """Clips under ``source`` (or ``source`` itself), sorted.

    Each folder's files are sorted out by :func:`napari_ultramn.io.open_clip.folder_sources`: a
    folder whose clip files are all images of one size is one frame-folder clip, a folder of
    single-frame DICOMs of one series is one clip, and every other DICOM, video, MetaImage/NRRD
    sequence or image file is a clip of its own. Hidden folders and files are skipped.
    """
    from napari_ultramn.io.open_clip import folder_sources

    source = Path(source)
    if not source.exists():
        raise InputError(source, "source not found")
    if source.is_file():
        return [source]
    found = []
    for folder in [source, *sorted(p for p in source.rglob("*") if p.is_dir())]:
        if not any(part.startswith(".") for part in folder.relative_to(source).parts):
            found += folder_sources(folder)
    return sorted(found)


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
        raise InputError(source, f"{what} {region.as_list()} (top, left, bottom, right) lies outside "
                                 f"the {w}x{h} frame")
    return region


def imaging_area(clip: Clip, source: Path, *, correction: Region | None, mapped: Region | None,
                 burned_in: bool, no_crop: bool):
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
        return area_from_region(_inside(correction, clip.frame_shape, source, "corrected region"),
                                sample, "corrected")
    if mapped is not None:
        return area_from_region(_inside(mapped, clip.frame_shape, source, "mapping CSV region"),
                                sample, "mapping")
    if clip.imaging_region is not None:  # DICOM SequenceOfUltrasoundRegions
        r, (h, w) = clip.imaging_region, clip.frame_shape
        r = Region(max(0, r.top), max(0, r.left), min(h, r.bottom), min(w, r.right))
        if r.height <= 0 or r.width <= 0:
            raise InputError(source, f"its ultrasound region lies outside the frame; {_REGION_WAY_ON}")
        return area_from_region(r, sample, "dicom-regions")
    if burned_in:
        raise InputError(source, "refused: the file declares burned-in annotation "
                                 f"(BurnedInAnnotation YES) and has no ultrasound region; {_REGION_WAY_ON} "
                                 "or save a region correction (--no-crop does not apply)")
    area = detect_imaging_area(sample)
    if area.confidence >= MIN_CONFIDENCE:
        return area
    if no_crop:
        return None
    raise InputError(source, f"refused: imaging area not found with confidence "
                             f"({area.confidence:.2f}: {area.reason}); {_REGION_WAY_ON}, or pass "
                             "--no-crop to keep whole frames")


def _cropped_frames(clip: Clip, area) -> np.ndarray:
    """(T, h, w) uint8: cropped to the area and blanked, decoded a block of frames at a time."""
    from napari_ultramn.io.screen_region import apply_imaging_area

    if area is None:
        return clip.to_array()
    r = area.region
    out = np.empty((clip.n_frames, r.height, r.width), np.uint8)
    for t0 in range(0, clip.n_frames, DECODE_BLOCK):
        block = np.stack([clip.frame(t) for t in range(t0, min(t0 + DECODE_BLOCK, clip.n_frames))])
        out[t0:t0 + len(block)] = apply_imaging_area(block, area)
    return out


def _identity(source: Path, kind: str | None) -> dict:
    """Header identity of a DICOM file, or of a single-frame series' first file in frame order."""
    if kind == "dicom":
        return dicom_identity(source)
    if kind == "dicom_series":
        from napari_ultramn.io.dicom_series import series_files

        return dicom_identity(series_files(source)[0])
    return {}


def ingest_source(shared: _Shared, item: tuple[Path, str]) -> SourceOutcome:
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


def _ingest_source(shared: _Shared, source: Path, rel: str, out: SourceOutcome) -> SourceOutcome:
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
    area = imaging_area(clip, source, correction=correction, mapped=mapped.get("region"),
                        burned_in=ident.get("burned_in", False), no_crop=shared.no_crop)
    frames = _cropped_frames(clip, area)
    clip_id = out.clip_id = existing["clip_id"] if existing else f"{participant}-{sha[:8]}"
    meta = {
        "clip_id": clip_id, "participant": participant, "side": side, "plane": plane,
        "source_sha256": sha, "spacing_mm": clip.spacing_mm, "spacing_source": clip.spacing_source,
        "frame_time_ms": clip.frame_time_ms, "manufacturer": clip.manufacturer,
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
        "age_band": mapped.get("age_band") or deid.age_band(ident.get("age"), ident.get("birth_date"),
                                                           ident.get("study_date")),
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
        out.status = "recropped"
        out.note = f"re-cropped to its correction {correction.as_list()}"
        out.old_shape = existing["frame_shape"]
    return out


def _recropped_annotations(project: Project, clip_id: str, old_shape: list, new_shape: list) -> str:
    """Keep a re-cropped clip's annotations if its frame size is unchanged, else set them aside."""
    raters = project.annotations.raters(clip_id)
    if not raters:
        return ""
    if list(old_shape) == list(new_shape):
        return f"; annotations by {', '.join(raters)} kept (same frame size)"
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    for rater in raters:
        path = project.annotations.path(clip_id, rater)
        path.rename(path.with_name(f"{path.name}.recropped-{stamp}"))  # kept, never deleted
    return (f"; frame size {old_shape} -> {new_shape}: annotations by {', '.join(raters)} no longer "
            f"fit and were set aside as annotations/{clip_id}/*.json.recropped-{stamp}")


def _write_deidentified_dicom(root: Path, source, clip_id, participant, shift, key, frames, area) -> None:
    import pydicom

    from napari_ultramn.atomic import atomic_path

    ds = pydicom.dcmread(source)
    # the copy carries the same cropped, blanked pixels as the project clip (contract E); a clip
    # kept whole (--no-crop) keeps its original pixels
    deid.deidentify_dataset(ds, key, participant, shift, frames=None if area is None else frames,
                            crop_region=None if area is None else area.region.as_list())
    with atomic_path(root / "dicom" / f"{clip_id}.dcm") as tmp:
        ds.save_as(tmp, enforce_file_format=True)


def _relative(path: Path, base: Path, source: Path) -> str:
    """How a file is named to the user: its path relative to the SOURCE they gave."""
    if path == source:
        return str(source)
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)


def ingest(source: str | Path, project_dir: str | Path, *, mapping_csv: str | Path | None = None,
           planes: list[str] | None = None, keep_dicom: bool = False, no_crop: bool = False,
           lock_timeout_s: float = LOCK_TIMEOUT_S, workers: int | None = None) -> ProgressGen[IngestSummary]:
    """Ingest every clip under ``source``; creates the project if needed. Yields progress.

    ``no_crop`` keeps whole frames of files whose imaging area cannot be established (recorded).
    A file that fails is reported (path relative to ``source`` + problem) and skipped; the others
    still go in. Waits up to ``lock_timeout_s`` for another ingest into the same project.
    ``workers`` processes decode and write clips (default all cores, :mod:`napari_ultramn.parallel`;
    1: in this process); the result is the same for any number.
    """
    source = Path(source)
    root = Path(project_dir)
    mapping = read_mapping(mapping_csv)  # a bad CSV stops the run before anything is written
    sources = find_sources(source)
    if root.exists() and not root.is_dir():
        raise InputError(root, "is a file, not a project folder")
    if planes is not None and not (root / "project.json").exists():
        check_plane_vocabulary(root, planes)  # before the folder is made
    root.mkdir(parents=True, exist_ok=True)
    lock = ProjectLock(root, lock_timeout_s)
    deadline = time.monotonic() + lock_timeout_s
    while not lock.try_acquire():
        if time.monotonic() >= deadline:
            raise lock.timeout_error()
        yield Progress(0, len(sources), lock.waiting_message())
        time.sleep(0.5)
    try:
        return (yield from _ingest_locked(source, root, sources, mapping, planes, keep_dicom, no_crop,
                                          workers))
    finally:
        lock.release()


class _RegistryWriter:
    """Registry upserts batched (every ``every_s`` seconds and at the end): a registry rewritten
    once per clip costs O(clips) each, O(clips^2) over a 5,000-clip ingest. A clip file whose
    record was not yet written when a run died is not in the registry: the next ingest redoes it."""

    def __init__(self, project: Project, every_s: float = 2.0):
        self.project, self.every_s = project, every_s
        self.pending: list[dict] = []
        self.added: dict[str, dict] = {}  # this run's records by source sha256
        self.last = time.monotonic()

    def add(self, record: dict) -> None:
        self.pending.append(record)
        self.added.setdefault(record["source_sha256"], record)
        if time.monotonic() - self.last >= self.every_s:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.project.upsert_clips(self.pending)
            self.pending = []
        self.last = time.monotonic()


def _take(project: Project, registry: _RegistryWriter, summary: IngestSummary, rel: str,
          outcome: SourceOutcome) -> None:
    """The parent's share of one source: identifiers, registry, summary (one writer)."""
    # also for a file already in the project, so a project ingested before identifiers.json
    # existed gets it filled by re-ingesting; and for a file that then failed
    project.record_identifiers(outcome.seen)
    first = registry.added.get(outcome.sha)
    if outcome.status == "failed":
        summary.failed.append((rel, outcome.note))
    elif first is not None or outcome.status == "skipped":
        # a second copy of a file added earlier in this run is a re-ingest: skipped
        clip_id = first["clip_id"] if first is not None else outcome.clip_id
        if outcome.record is not None and outcome.clip_id != clip_id:
            for stray in (project.root / "clips" / f"{outcome.clip_id}.h5",
                          project.root / "dicom" / f"{outcome.clip_id}.dcm"):
                stray.unlink(missing_ok=True)
        summary.skipped.append(clip_id)
    elif outcome.status == "recropped":
        note = _recropped_annotations(project, outcome.clip_id, outcome.old_shape,
                                      outcome.record["frame_shape"])
        registry.add(outcome.record)
        summary.recropped.append((outcome.clip_id, outcome.note + note))
    else:
        registry.add(outcome.record)
        summary.added.append(outcome.clip_id)


def _audit_written(project: Project, clip_ids: list[str]):
    """``audit-phi`` over what this run wrote (registry, project file, new clips and DICOM copies),
    against the identifiers ingest has seen: the proof, every run, that none of them got through."""
    from .phi_audit import audit_paths, load_identifiers

    root = project.root
    files = [root / "clips.json", root / "project.json"] + [project.clip_path(c) for c in clip_ids]
    files += [p for c in clip_ids if (p := root / "dicom" / f"{c}.dcm").exists()]
    return (yield from audit_paths(files, load_identifiers(root)))


def _ingest_locked(source, root, sources, mapping, planes, keep_dicom, no_crop,
                   workers) -> ProgressGen[IngestSummary]:
    from napari_ultramn.parallel import pool_map, resolve_workers
    from napari_ultramn.region_corrections import load_corrections

    project = Project.create(root, planes=planes or DEFAULT_PLANES)  # opens it if it exists
    project.reload_clips()  # what an ingest that held the lock before us added
    # a project with clips whose key has gone is refused, never given a new key
    key = ensure_pseudonym_key(root, create=not project.clips())
    by_sha = {r["source_sha256"]: {k: r.get(k) for k in ("clip_id", "crop_region", "frame_shape")}
              for r in project.clips()}  # fixed while we hold the lock
    shared = _Shared(project.root, key, mapping, load_corrections(root), keep_dicom, no_crop,
                     project.planes, project.plane_labels, by_sha)
    if no_crop and not project.config.get("no_crop"):
        project.set_config(no_crop=True)
    summary = IngestSummary(cleaned=remove_stale_temporaries(root))
    base = source if source.is_dir() and clip_kind(source) != "frames" else source.parent
    items = [(path, _relative(path, base, source)) for path in sources]
    workers = resolve_workers(workers)
    yield Progress(0, len(items), f"ingesting {len(items)} file(s) with {min(workers, len(items))} worker(s)")
    registry = _RegistryWriter(project)
    try:
        # in the sources' order, so that of two identical files the first one wins, as in one process
        for i, outcome in pool_map(ingest_source, items, shared=shared, workers=workers, ordered=True):
            _take(project, registry, summary, items[i][1], outcome)
            yield Progress(i + 1, len(items), f"ingested {items[i][1]}")
    finally:  # what was written is registered, also when the run stops early
        registry.flush()
    new = set(summary.added) | {clip_id for clip_id, _ in summary.recropped}
    if new:
        yield Progress(len(sources), len(sources), "looking for the same recording under two participants")
        summary.duplicates = [p for p in likely_duplicate_pairs(project.clips(), project)
                              if p.clip_a in new or p.clip_b in new]
        summary.audit = yield from relay(_audit_written(project, sorted(new)), lambda p: Progress(
            len(sources), len(sources), f"PHI audit: {p.message}"))
    yield Progress(len(sources), len(sources), summary.line())
    return summary
