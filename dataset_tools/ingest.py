"""Register clips into an annotation project, de-identified (``ultramn ingest SOURCE PROJECT``).

The whole run holds the project lock (``Project``'s ``ProjectLock``): a second ingest into the same
project waits for the first (at most ``lock_timeout_s``, default 30 min, then stops with a message),
so both runs' clips reach the registry. Each clip is one registry transaction
(``registry.sqlite``); ``clips.json``, the registry's audit export, is written once at the end.
Before any clip is written the pseudonym key exists
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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from napari_ultramn import DEFAULT_PLANES
from napari_ultramn.atomic import remove_stale_temporaries
from napari_ultramn.errors import InputError
from napari_ultramn.io.open_clip import clip_kind
from napari_ultramn.progress import Progress, ProgressGen, relay
from napari_ultramn.project import (
    LOCK_TIMEOUT_S,
    Project,
    ProjectLock,
    check_plane_vocabulary,
    ensure_pseudonym_key,
)

from .fingerprint import likely_duplicate_pairs
from .ingest_mapping import MAPPING_COLUMNS, read_mapping  # noqa: F401  (re-exported)

if TYPE_CHECKING:
    from .phi_audit.report import AuditReport
from .ingest_source import (  # noqa: F401  (plane_from_text, imaging_area re-exported)
    IngestShared,
    SourceOutcome,
    imaging_area,
    ingest_source,
    plane_from_text,
)


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
    audit: AuditReport | None = None
    #: (files, bytes) of temporary files that killed writers had left in the project, now removed
    cleaned: tuple[int, int] = (0, 0)

    def line(self) -> str:
        recropped = f", {len(self.recropped)} re-cropped" if self.recropped else ""
        return f"{len(self.added)} added{recropped}, {len(self.skipped)} already present, {len(self.failed)} failed"


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
    return (
        f"; frame size {old_shape} -> {new_shape}: annotations by {', '.join(raters)} no longer "
        f"fit and were set aside as annotations/{clip_id}/*.json.recropped-{stamp}"
    )


def _relative(path: Path, base: Path, source: Path) -> str:
    """How a file is named to the user: its path relative to the SOURCE they gave."""
    if path == source:
        return str(source)
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)


def ingest(
    source: str | Path,
    project_dir: str | Path,
    *,
    mapping_csv: str | Path | None = None,
    planes: list[str] | None = None,
    keep_dicom: bool = False,
    no_crop: bool = False,
    lock_timeout_s: float = LOCK_TIMEOUT_S,
    workers: int | None = None,
) -> ProgressGen[IngestSummary]:
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
        return (yield from _ingest_locked(source, root, sources, mapping, planes, keep_dicom, no_crop, workers))
    finally:
        lock.release()


class _RegistryWriter:
    """Identifiers and registry records, written in batches: a registry rewritten once per clip
    costs O(clips) each time, O(clips^2) over a 5,000-clip ingest. A batch is written when it
    holds half as many records as the registry (at least ``min_batch``) or ``every_s`` has passed,
    and at the end, so the registry is rewritten O(log clips) times. Identifiers go first, so no
    registered clip lacks them; a clip file whose record was not yet written when a run died is
    not in the registry, and the next ingest redoes it (identifiers included)."""

    def __init__(self, project: Project, every_s: float = 60.0, min_batch: int = 64):
        self.project, self.every_s, self.min_batch = project, every_s, min_batch
        self.pending: list[dict] = []
        self.seen: list[tuple[str, str]] = []
        self.added: dict[str, dict] = {}  # this run's records by source sha256
        self.registered = len(project.clips())
        self.last = time.monotonic()

    def add(self, record: dict | None, seen) -> None:
        self.seen += seen
        if record is not None:
            self.pending.append(record)
            self.added.setdefault(record["source_sha256"], record)
        if (
            len(self.pending) >= max(self.min_batch, self.registered // 2)
            or time.monotonic() - self.last >= self.every_s
        ):
            self.flush()

    def flush(self) -> None:
        if self.seen:
            self.project.record_identifiers(self.seen)
            self.seen = []
        if self.pending:
            self.project.upsert_clips(self.pending)
            self.registered += len(self.pending)
            self.pending = []
        self.last = time.monotonic()


def _take(
    project: Project, registry: _RegistryWriter, summary: IngestSummary, rel: str, outcome: SourceOutcome
) -> None:
    """The parent's share of one source: identifiers, registry, summary (one writer)."""
    # identifiers also for a file already in the project, so a project ingested before
    # identifiers.json existed gets it filled by re-ingesting; and for a file that then failed
    first = registry.added.get(outcome.sha) if outcome.sha else None
    keep = outcome.status in ("added", "recropped") and first is None
    registry.add(outcome.record if keep else None, outcome.seen)
    if outcome.status == "failed":
        summary.failed.append((rel, outcome.note))
    elif first is not None or outcome.status == "skipped":
        # a second copy of a file added earlier in this run is a re-ingest: skipped
        clip_id = first["clip_id"] if first is not None else outcome.clip_id
        assert clip_id is not None  # a skipped source is a clip the project already has
        if outcome.record is not None and outcome.clip_id != clip_id:
            for stray in (
                project.root / "clips" / f"{outcome.clip_id}.h5",
                project.root / "dicom" / f"{outcome.clip_id}.dcm",
            ):
                stray.unlink(missing_ok=True)
        summary.skipped.append(clip_id)
    elif outcome.status == "recropped":
        assert outcome.clip_id and outcome.old_shape is not None and outcome.record is not None
        note = _recropped_annotations(project, outcome.clip_id, outcome.old_shape, outcome.record["frame_shape"])
        summary.recropped.append((outcome.clip_id, outcome.note + note))
    else:
        assert outcome.clip_id is not None  # an added source has its new clip's id
        summary.added.append(outcome.clip_id)


def _audit_written(project: Project, clip_ids: list[str], workers: int):
    """``audit-phi`` over what this run wrote (registry, project file, new clips and DICOM copies),
    against the identifiers ingest has seen: the proof, every run, that none of them got through.

    Reading each clip's sample frames for burned-in text is most of an audit's time, so the
    files are audited in ``workers`` processes, a block at a time, and the reports merged."""
    from napari_ultramn.parallel import pool_map

    from .phi_audit import load_identifiers

    root = project.root
    files = [root / "clips.json", root / "project.json"] + [project.clip_path(c) for c in clip_ids]
    files += [p for c in clip_ids if (p := root / "dicom" / f"{c}.dcm").exists()]
    blocks = [files[i : i + 8] for i in range(0, len(files), 8)]
    reports: list = [None] * len(blocks)
    for n, (i, report) in enumerate(pool_map(audit_block, blocks, shared=load_identifiers(root), workers=workers), 1):
        reports[i] = report
        yield Progress(n, len(blocks), f"audited {sum(len(b) for b in blocks[:n])} of {len(files)} files")
    merged = reports[0]
    for report in reports[1:]:
        merged.paths += report.paths
        merged.hits += report.hits
        merged.files_scanned += report.files_scanned
        merged.notes += [note for note in report.notes if note not in merged.notes]
    return merged


def audit_block(identifiers, files):
    """A worker's task: the audit report of a few files."""
    from napari_ultramn.progress import run_to_end

    from .phi_audit import audit_paths

    return run_to_end(audit_paths(files, identifiers))


def _ingest_locked(source, root, sources, mapping, planes, keep_dicom, no_crop, workers) -> ProgressGen[IngestSummary]:
    from napari_ultramn.parallel import pool_map, resolve_workers
    from napari_ultramn.region_corrections import load_corrections

    project = Project.create(root, planes=planes or DEFAULT_PLANES)  # opens it if it exists
    project.reload_clips()  # what an ingest that held the lock before us added
    # a project with clips whose key has gone is refused, never given a new key
    key = ensure_pseudonym_key(root, create=not project.clips())
    by_sha = {
        r["source_sha256"]: {k: r.get(k) for k in ("clip_id", "crop_region", "frame_shape")} for r in project.clips()
    }  # fixed while we hold the lock
    shared = IngestShared(
        project.root,
        key,
        mapping,
        load_corrections(root),
        keep_dicom,
        no_crop,
        project.planes,
        project.plane_labels,
        by_sha,
    )
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
    project.export_registry()  # clips.json, the audit export: once per run (unchanged: not rewritten)
    if new:
        yield Progress(len(sources), len(sources), "looking for the same recording under two participants")
        summary.duplicates = likely_duplicate_pairs(project.clips(), project, involving=new)
        summary.audit = yield from relay(
            _audit_written(project, sorted(new), workers),
            lambda p: Progress(len(sources), len(sources), f"PHI audit: {p.message}"),
        )
    yield Progress(len(sources), len(sources), summary.line())
    return summary
