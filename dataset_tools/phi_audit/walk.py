"""Walk the folders, search every file by its kind, collect the report."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from napari_ultramn.errors import InputError
from napari_ultramn.progress import Progress, ProgressGen

from .containers import scan_dicom, scan_hdf5, scan_hdf5_frames
from .identifiers import SECRET_DIR, Identifier, Matcher
from .media import IMAGE_SUFFIXES, scan_image, scan_numpy, scan_video
from .report import AuditReport
from .text_scan import Scanner, looks_like_text

HDF5_SUFFIXES = {".h5", ".hdf5", ".hdf", ".he5", ".nc"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".m4v", ".mkv", ".wmv", ".webm", ".mpg", ".mpeg"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml", ".svg"}


def _in_secret(path: Path) -> bool:
    return SECRET_DIR in path.parts


def _files(root: Path) -> tuple[list[Path], list[Path]]:
    """``(files, folders)`` under ``root``, sorted, never entering a ``.secret`` folder."""
    if root.is_file():
        return [root], []
    files, folders = [], []
    for here, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != SECRET_DIR)
        folders += [Path(here) / d for d in dirs]
        files += [Path(here) / n for n in sorted(names)]
    return files, folders


def _is_dicom(path: Path) -> bool:
    if path.suffix.lower() in (".dcm", ".dicom"):
        return True
    try:
        with open(path, "rb") as fh:
            return fh.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def scan_file(scanner: Scanner, path: Path, file: str) -> None:
    """Search one file by what it is (suffix, then content)."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        scanner.json_file(path, file)
    elif suffix in (".jsonl", ".ndjson"):
        scanner.jsonl_file(path, file)
    elif suffix in (".csv", ".tsv"):
        scanner.csv_file(path, file)
    elif suffix in HTML_SUFFIXES:
        scanner.text_file(path, file, is_html=True, on_image=lambda data, where: scan_image(scanner, data, file, where))
    elif suffix in HDF5_SUFFIXES:
        scan_hdf5(scanner, path, file)
    elif _is_dicom(path):
        scan_dicom(scanner, path, file)
    elif suffix in IMAGE_SUFFIXES:
        scan_image(scanner, path, file)
    elif suffix in VIDEO_SUFFIXES:
        scan_video(scanner, path, file)
    elif suffix in (".npz", ".npy"):
        scan_numpy(scanner, path, file)
    elif looks_like_text(path):
        scanner.text_file(path, file)
    else:
        scanner.binary_strings(path, file)  # checkpoints, ONNX models, archives


def audit_paths(
    paths, identifiers: list[Identifier], *, burned_text: bool = True, workers: int | None = 1
) -> ProgressGen[AuditReport]:
    """Search every file under ``paths`` (projects, datasets, reports, run folders, single files)
    for ``identifiers``, identifier-shaped values and burned-in text. Yields progress; returns
    the :class:`AuditReport` (``report.hits`` empty = clean). ``.secret`` folders, the project's
    key store, are never read or reported. ``burned_text=False`` skips the pixels (decoding every
    clip's sample frames is most of the time an audit takes). ``workers`` > 1 (None: every core)
    searches the frame stacks of HDF5 files (a dataset's clips, a project's clips) in that many
    processes: the same hits as one process finds (those in pixels listed after the others)."""
    from napari_ultramn.parallel import resolve_workers

    workers = resolve_workers(workers)
    roots = [Path(p) for p in paths]
    if not roots:
        raise InputError(None, "nothing to audit: give at least one path")
    for root in roots:
        if not root.exists():
            raise InputError(root, "not found")
        if _in_secret(root.resolve()):
            raise InputError(root, f"is inside {SECRET_DIR}/, the project's key store: audit-phi never reads it")
    matcher = _matcher_for(identifiers)
    scanner = Scanner(matcher, pixels=burned_text)
    if burned_text and workers > 1:
        scanner.deferred_frames = []
    report = AuditReport(
        paths=[scanner.redact(str(r)) for r in roots],
        identifiers_searched=len(matcher.identifiers) - len(matcher.unsearchable),
    )
    report.notes += [f"identifier {i.kind} {i.masked()} not searched: {why}" for i, why in matcher.unsearchable]
    if not burned_text:
        report.notes.append("pixels not searched for burned-in text (burned_text=False)")
    work = []
    for root in roots:
        files, folders = _files(root)
        base = root.parent
        for folder in [root] * root.is_dir() + folders:
            rel = str(folder.relative_to(base))
            scanner.value(folder.name, rel + "/", "folder name")
        work += [(f, str(f.relative_to(base))) for f in files]
    for i, (path, file) in enumerate(work):
        yield Progress(i, len(work), f"auditing {scanner.redact(file)}")
        scanner.value(path.name, file, "file name")
        try:
            scan_file(scanner, path, file)
        except InputError as exc:
            scanner.add("unreadable", file, "whole file", exc.problem)
        except Exception as exc:  # a corrupt file of any kind: it could not be proven clean
            scanner.add("unreadable", file, "whole file", f"{type(exc).__name__}: {exc}"[:200])
        report.files_scanned += 1
    if scanner.deferred_frames:
        yield from _scan_deferred_frames(scanner, identifiers, workers)
    yield Progress(len(work), len(work), "audit done")
    report.hits = scanner.hits
    return report


def _scan_deferred_frames(scanner: Scanner, identifiers, workers: int) -> ProgressGen[None]:
    """The frame stacks ``scanner`` left, searched in ``workers`` processes; hits in job order."""
    from napari_ultramn.parallel import pool_map

    jobs = scanner.deferred_frames or []
    found: list = [None] * len(jobs)
    # this process searches the first stacks while the workers start (a stack reads at most
    # MAX_SAMPLED_FRAMES frames: nothing here that could exhaust memory and take it down)
    results = pool_map(frames_job, jobs, shared=identifiers, workers=workers, help_while_starting=True)
    for n, (i, hits) in enumerate(results, 1):
        found[i] = hits
        yield Progress(n, len(jobs), f"searched {n} of {len(jobs)} frame stacks for burned-in text")
    for hits in found:
        for hit in hits:
            scanner.add(hit.category, hit.file, hit.location, hit.what)


#: the last Matcher built, with the identifiers it was built for. Building one parses every
#: identifier's variants (~70 ms for 800): built per frame stack, or per block of files an ingest
#: audits, that was most of an audit's CPU and grew with the square of the cohort (blocks x
#: identifiers, both in proportion to the clips).
_last_matcher: tuple[tuple[Identifier, ...], Matcher] | None = None
_last_matcher_lock = threading.Lock()


def _matcher_for(identifiers) -> Matcher:
    """A Matcher for ``identifiers``, the last one again when they are the same (by value: a list
    changed in place gets a new one)."""
    global _last_matcher
    key = tuple(identifiers)
    with _last_matcher_lock:
        if _last_matcher is None or _last_matcher[0] != key:
            _last_matcher = (key, Matcher(list(key)))
        return _last_matcher[1]


def frames_job(identifiers, job) -> list:
    """A worker's task: the burned-in-text hits of one HDF5 frame stack (``(path, name, file, where)``)."""
    scanner = Scanner(_matcher_for(identifiers))
    try:
        scan_hdf5_frames(scanner, job)
    except Exception as exc:  # a corrupt stack could not be proven clean
        scanner.add("unreadable", job[2], job[3], f"{type(exc).__name__}: {exc}"[:200])
    return scanner.hits


def audit_project(project_root, *, burned_text: bool = True) -> ProgressGen[AuditReport]:
    """Audit one project against the identifiers its ingests recorded (what ingest runs last)."""
    from .identifiers import load_identifiers

    return (yield from audit_paths([project_root], load_identifiers(project_root), burned_text=burned_text))
