"""Build a participant-split HDF5 training dataset from an annotation project.

Output folder (written aside as a hidden sibling ``.<name>.building-*`` and renamed into place
only when complete, so an interrupted build leaves nothing that looks like a dataset; one build at a
time per folder, an interrupted replace finished by the next run, leftovers of killed runs removed:
:class:`napari_ultramn.output_folder.OutputFolder`)::

    OUT_DIR/
      train.h5  validation.h5  test.h5   one file per split (an empty split still gets a file)
      split.json                         participant -> split (schemas/split.schema.json)
      manifest.json                      written last (schemas/dataset_manifest.schema.json),
                                         signed: ``--overwrite`` replaces only such a folder
      README.md                          the dataset card

Why one file per split rather than one file with a split attribute per clip: a training job
opens only ``train.h5`` and cannot read a test clip by mistake, checksums cover exactly one split,
and a split can be shipped or withheld (a held-out test set) as a single file.

Layout of each file: file attrs ``dataset_format="ultramn-dataset"``, ``dataset_format_version``
(not ``format``: a root ``format`` attribute marks a *single-clip* file to
``read_hdf5_clip``), ``split``,
``vocabulary`` (JSON list = the project's ``plane_labels``), ``provenances`` (JSON list),
``label_source``. One group per clip, ``/clips/<clip_id>/``, in the clip layout of
:mod:`napari_ultramn.io.hdf5clip` (frames ``(T, H, W) uint8`` + metadata attrs, written by
``write_clip_group``; spacing_mm is the spacing *after* resampling) plus:

==============  =============  ================================================================
masks           (T, H, W) u1   nerve mask 0/1 (all 0 on unannotated frames)
plane_labels    (T,) int16     index into ``vocabulary``; -1 unknown
provenance      (T,) int8      index into ``provenances``; -1 unannotated
annotated       (T,) bool      frame has a mask (an all-zero annotated mask = "no nerve here")
attrs           clip_plane, clip_plane_code (-1 unknown), quality, label_source, n_raters,
                original_frame_shape, original_spacing_mm
==============  =============  ================================================================

Image datasets are chunked one frame per chunk: reading a window of ``w`` frames touches exactly
``w`` chunks wherever it starts, which is what the training loader does. Masks are Blosc-LZ4
compressed (mostly zeros: ~30x smaller, and the fastest filter to write and read); frames use
``compression`` (:data:`napari_ultramn.io.h5.COMPRESSIONS`): ``"zstd"`` (default: Blosc-Zstd
level 1, as small as gzip and several times faster to write and read), ``"lz4"``, ``"gzip"``
(level 1: readable by any HDF5 tool without ``hdf5plugin``, for archiving and sharing), ``"lzf"``
or ``None``. Figures: benchmarks/bench_dataset.py.

Labels come from :func:`dataset_tools.consensus.clip_consensus` (``consensus='majority'`` or
``'staple'``) or from one rater (``rater='name'``). Clips are excluded, with the reason in the
manifest, when they have no consensus (too few raters) or no annotation by the rater, are flagged
unusable, are shorter than ``min_frames``, or cannot be resampled to a spacing (uncalibrated).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

from napari_ultramn import __version__
from napari_ultramn.annotation import PROVENANCES
from napari_ultramn.atomic import fsync_files
from napari_ultramn.errors import InputError, output_error
from napari_ultramn.io.h5 import compression_kwargs
from napari_ultramn.output_folder import (
    OutputFolder,
    is_temporary,
    listing,
    sign,
    signature_problem,
)
from napari_ultramn.progress import Progress, ProgressGen
from napari_ultramn.schema import load_json, write_json

from .build_clips import ClipJob, start_workers, write_clip, write_clips  # noqa: F401  (write_clip re-exported)
from .fingerprint import likely_duplicate_pairs
from .labels import (
    consensus_function,
    eligibility,
)
from .splits import (
    DEFAULT_RATIOS,
    SPLITS,
    apply_split,
    check_ratios,
    load_split,
    make_split,
    save_split,
    split_balance,
    suspected_duplicates,
)

FORMAT = "ultramn-dataset"
FORMAT_VERSION = 1
METHODS = ("majority", "staple")


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def digest_and_sync(paths: list[Path]) -> dict[Path, str]:
    """Path -> sha256 of each file, hashed while the disk takes it in (fsync): in threads, as
    both release the GIL (hashing uses every core, fsync waits on the disk); about half the time
    of hashing then syncing one file after another, all of it at the end of a build."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2 * len(paths)) as threads:
        synced = [threads.submit(fsync_files, [path]) for path in paths]
        digests = {path: threads.submit(sha256_file, path) for path in paths}
        for done in synced:
            done.result()
        return {path: digest.result() for path, digest in digests.items()}


def _prepare_out(folder: OutputFolder, overwrite: bool, project_root: Path) -> None:
    """Refuse an output we must not replace: not empty without ``overwrite``; with it, anything
    but a dataset this tool wrote (signed manifest, no file it does not list) or a precious place."""
    out_dir = folder.path
    if not out_dir.exists() or (out_dir.is_dir() and not any(out_dir.iterdir())):
        return
    if not overwrite:
        raise InputError(
            out_dir,
            "already exists and is not empty; choose another folder, or pass "
            "--overwrite to replace a dataset this tool built there",
        )
    folder.refuse_dangerous([(project_root, "the annotation project")])
    problem = replace_refusal(out_dir)
    if problem:
        raise InputError(
            out_dir, f"{problem}: not a dataset written by build-dataset, so it is not replaced; nothing was deleted"
        )


def replace_refusal(out_dir: Path) -> str | None:
    """Why ``out_dir`` is not a dataset this tool wrote (None if it is one)."""
    if not out_dir.is_dir():
        return "is a file"
    try:
        manifest = load_json(out_dir / "manifest.json")
    except InputError as exc:
        what = "no manifest.json" if exc.problem == "file not found" else f"an unreadable manifest.json ({exc.problem})"
        return f"holds {listing(out_dir)} and {what}"
    if not isinstance(manifest, dict) or manifest.get("format") != "ultramn-dataset-manifest":
        return f"holds {listing(out_dir)}; its manifest.json is not an UltraMN dataset manifest"
    problem = signature_problem(manifest)
    if problem:
        return f"holds {listing(out_dir)}; its manifest.json {problem}"
    split = manifest.get("split")
    listed = {
        "manifest.json",
        "README.md",
        str(split.get("file") if isinstance(split, dict) else None),
        *(str(f.get("file")) for f in manifest.get("files") or [] if isinstance(f, dict)),
    }
    extra = sorted(p.name for p in out_dir.iterdir() if p.name not in listed and not is_temporary(p.name))
    if extra:
        return f"holds {len(extra)} file(s) its manifest does not list ({', '.join(extra[:6])})"
    return None


def build_dataset(
    project_root,
    out_dir,
    *,
    consensus: str | None = "majority",
    rater: str | None = None,
    size=None,
    spacing_mm: float | None = None,
    ratios=DEFAULT_RATIOS,
    seed: int = 0,
    split_file=None,
    min_frames: int = 16,
    min_raters: int = 2,
    compression: str | None = "zstd",
    overwrite: bool = False,
    refuse_duplicates: bool = False,
    notify: Callable[[str], None] | None = None,
    workers: int | None = None,
) -> ProgressGen[dict]:
    """Build the dataset (see module docstring); yields Progress, returns the manifest dict.

    Raises :class:`ConflictError` if another build writes ``out_dir``; ``notify`` receives one-line
    reports of what this run cleaned up after interrupted ones (default: the log). ``workers``
    processes label and compress clips (default all cores; 1: in this process); the files hold
    the same bytes for any number.
    """
    from napari_ultramn.project import Project

    project = project_root if isinstance(project_root, Project) else Project.open(project_root)
    out_dir = Path(out_dir)
    if rater is not None:
        consensus = None
    elif consensus not in METHODS:
        raise ValueError(f"consensus must be one of {METHODS} (or give a rater), got {consensus!r}")
    else:
        consensus_function()  # fail now, not once per clip
    if size is not None and (len(size) != 2 or min(int(s) for s in size) < 1):
        raise ValueError(f"size must be two positive integers (H W), got {size}")
    if spacing_mm is not None and not spacing_mm > 0:
        raise ValueError(f"spacing_mm must be positive, got {spacing_mm}")
    compression_kwargs(compression)  # a ValueError naming the choices, before any work
    ratios = check_ratios(ratios)
    with OutputFolder(out_dir, notify=notify) as folder:
        _prepare_out(folder, overwrite, project.root)
        return (
            yield from _build(
                project,
                folder,
                consensus,
                rater,
                size,
                spacing_mm,
                ratios,
                seed,
                split_file,
                min_frames,
                min_raters,
                compression,
                refuse_duplicates,
                workers,
            )
        )


def _build(
    project,
    folder: OutputFolder,
    consensus,
    rater,
    size,
    spacing_mm,
    ratios,
    seed,
    split_file,
    min_frames,
    min_raters,
    compression,
    refuse_duplicates,
    workers,
) -> ProgressGen[dict]:
    """The build proper, with ``folder`` locked; the result is installed only when complete."""
    from napari_ultramn.io.h5 import create_h5

    from .dataset_summary import dataset_card

    start_workers(workers)  # the pool's imports overlap the checks and the split below
    label_source = f"rater:{rater}" if rater else f"consensus:{consensus}"
    vocabulary = project.plane_labels

    excluded, eligible = [], []
    records = project.clips()
    for i, rec in enumerate(records):
        reason = eligibility(
            project, rec, rater=rater, min_raters=min_raters, min_frames=min_frames, spacing_mm=spacing_mm
        )
        if reason:
            excluded.append(_excl(rec, reason))
        else:
            eligible.append(rec)
        yield Progress(i + 1, len(records), f"checking {rec['clip_id']}")
    # the same patient under two pseudonyms (near-identical clips) stays in one split
    pairs = likely_duplicate_pairs(eligible, project)
    if split_file is not None:
        split = load_split(split_file)
        clip_split = apply_split(split, eligible, split_file)
    else:
        if not eligible:
            raise InputError(
                project.root, "no clip can be used: " + "; ".join(sorted({e["reason"] for e in excluded})[:5])
            )
        split = make_split(eligible, ratios, seed, duplicate_pairs=pairs, refuse_duplicates=refuse_duplicates)
        clip_split = apply_split(split, eligible)

    try:  # a read-only or full folder is named as the user gave it, not by the hidden name
        tmp = folder.new_building_dir()
    except OSError as exc:
        raise output_error(exc, folder.path) from None
    try:
        written: list[dict] = []
        with contextlib.ExitStack() as stack:
            files = {}
            for s in SPLITS:
                fh = stack.enter_context(create_h5(tmp / f"{s}.h5", shown=folder.path / f"{s}.h5"))
                fh.attrs.update(
                    {
                        "dataset_format": FORMAT,
                        "dataset_format_version": FORMAT_VERSION,
                        "split": s,
                        "vocabulary": json.dumps(vocabulary),
                        "provenances": json.dumps(list(PROVENANCES)),
                        "label_source": label_source,
                    }
                )
                fh.create_group("clips")
                files[s] = fh
            yield from write_clips(
                project,
                eligible,
                clip_split,
                files,
                tmp,
                written,
                excluded,
                ClipJob(consensus, rater, min_raters, size, spacing_mm, vocabulary, label_source, compression),
                workers,
            )
        if not written:
            raise InputError(
                project.root, "no clip could be written: " + "; ".join(sorted({e["reason"] for e in excluded})[:5])
            )
        yield Progress(len(eligible), len(eligible) + 1, "checksums")
        digests = digest_and_sync([tmp / f"{s}.h5" for s in SPLITS])
        save_split(tmp / "split.json", split)
        manifest = _manifest(
            project,
            digests,
            written,
            excluded,
            split,
            vocabulary,
            label_source,
            dict(
                consensus=consensus,
                rater=rater,
                size=list(size) if size else None,
                spacing_mm=spacing_mm,
                min_frames=min_frames,
                min_raters=min_raters,
                compression=compression,
                split_file=str(split_file) if split_file else None,
            ),
        )
        manifest["suspected_duplicates"] = suspected_duplicates(pairs, split["participants"])
        (tmp / "README.md").write_text(dataset_card(manifest), encoding="utf-8")
        # the data must be on disk before the manifest says it is complete (the split files are)
        fsync_files(p for p in tmp.iterdir() if p not in digests)
        manifest["signature"] = sign(manifest)  # marks the folder as ours for a later --overwrite
        write_json(tmp / "manifest.json", manifest, "dataset_manifest")  # last: marks completeness
        folder.install(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    yield Progress(len(eligible) + 1, len(eligible) + 1, "done")
    return manifest


def _excl(rec: dict, reason: str) -> dict:
    return {"clip_id": rec["clip_id"], "participant": rec.get("participant"), "reason": reason}


def count_rows(written: list[dict]) -> list[dict]:
    """Counts per split / plane / side (participants, clips, frames, annotated frames)."""
    groups: dict[tuple, dict] = defaultdict(
        lambda: {"participants": set(), "clips": 0, "frames": 0, "annotated_frames": 0}
    )
    for w in written:
        g = groups[(w["split"], w["plane"] or "unknown", w["side"] or "unknown")]
        g["participants"].add(w["participant"])
        g["clips"] += 1
        g["frames"] += w["n_frames"]
        g["annotated_frames"] += w["annotated_frames"]
    order = {s: i for i, s in enumerate(SPLITS)}
    return [
        {"split": k[0], "plane": k[1], "side": k[2], **v, "participants": len(v["participants"])}
        for k, v in sorted(groups.items(), key=lambda kv: (order[kv[0][0]], kv[0][1], kv[0][2]))
    ]


def _manifest(project, digests, written, excluded, split, vocabulary, label_source, params) -> dict:
    """The manifest; ``digests``: each split file's path -> sha256 (:func:`digest_and_sync`)."""
    files = []
    for path, digest in digests.items():
        s = path.stem
        mine = [w for w in written if w["split"] == s]
        files.append(
            {
                "split": s,
                "file": path.name,
                "sha256": digest,
                "bytes": path.stat().st_size,
                "clips": len(mine),
                "participants": len({w["participant"] for w in mine}),
                "frames": sum(w["n_frames"] for w in mine),
            }
        )
    frame_planes = {s: dict(sum((w["frame_planes"] for w in written if w["split"] == s), Counter())) for s in SPLITS}
    return {
        "format": "ultramn-dataset-manifest",
        "schema_version": 1,
        "dataset_format_version": FORMAT_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "software_version": __version__,
        "project": {"name": project.name, "clips_in_registry": project.n_clips()},
        "label_source": {
            "method": "rater" if params["rater"] else "consensus",
            "consensus": params["consensus"],
            "rater": params["rater"],
            "min_raters": params["min_raters"],
            "description": label_source,
        },
        "split": {
            "file": "split.json",
            "method": split["method"],
            "seed": split["seed"],
            "ratios": split["ratios"],
            "balance": split_balance(
                [project.clip_record(w["clip_id"]) for w in written], {w["clip_id"]: w["split"] for w in written}
            ),
        },
        "vocabulary": list(vocabulary),
        "provenances": list(PROVENANCES),
        "build": params,
        "files": files,
        "counts": count_rows(written),
        "frame_planes": frame_planes,
        "clips": [
            {
                k: w[k]
                for k in (
                    "clip_id",
                    "split",
                    "participant",
                    "side",
                    "plane",
                    "n_frames",
                    "frame_shape",
                    "annotated_frames",
                )
            }
            for w in written
        ],
        "excluded": excluded,
        "deidentification": deidentification_summary(project, [w["clip_id"] for w in written]),
    }


def deidentification_summary(project, clip_ids: list[str]) -> dict:
    """How each clip's frames were made safe: where its imaging area came from, and which clips
    were kept whole with ``ingest --no-crop`` (so the manifest and card say so)."""
    sources: Counter = Counter()
    uncropped = []
    for clip_id in clip_ids:
        rec = project.clip_record(clip_id)
        area = rec.get("imaging_area") or {}
        if rec.get("no_crop"):
            uncropped.append(clip_id)
            sources["none (ingest --no-crop)"] += 1
        else:
            # clips ingested before imaging areas were recorded were cropped to DICOM regions or not at all
            sources[area.get("source") or ("dicom-regions" if rec.get("crop_region") else "unknown")] += 1
    return {"imaging_area_sources": dict(sources), "uncropped_clips": uncropped}
