"""Check a built dataset before anyone trains or reports on it.

Every problem is collected (not just the first) as one readable line, so a data manager sees the
whole list at once. What is checked:

* the manifest and split file exist and match their schemas (a missing manifest means an
  incomplete build), and the manifest's signature matches its content;
* each split file's size and sha256 match the manifest; its attributes (format, split,
  vocabulary) are right;
* per clip: shapes and dtypes (frames/masks ``(T, H, W) uint8``, labels ``(T,)``), masks 0/1 and
  empty where a frame is unannotated, plane codes in ``[-1, len(vocabulary))``, provenance codes
  in ``[-1, len(provenances))``, the clip listed in the manifest with the same split and shape;
* leaks: a participant in two splits (or in a split other than the split file says); the same
  source file (``source_sha256``) in two clips; and the same patient under two pseudonyms, which
  identifiers can no longer show: two clips sharing identical frames (content fingerprints:
  a hash of each frame's pixels, skipping near-uniform frames that could match by chance) and,
  across splits, near-identical clips (perceptual fingerprints, :mod:`dataset_tools.fingerprint`:
  the same recording re-encoded, shifted, cropped or mirrored);
* the counts table in the manifest equals the counts recomputed from the files.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from napari_ultramn.errors import InputError
from napari_ultramn.output_folder import finish_interrupted_replace, signature_problem
from napari_ultramn.progress import Progress, ProgressGen, run_to_end
from napari_ultramn.schema import read_json

from .build import FORMAT, count_rows, sha256_file
from .fingerprint import clip_fingerprint, likely_duplicate_pairs
from .splits import SPLITS

#: frames whose pixel range is below this are skipped by fingerprinting (blank or uniform)
MIN_FINGERPRINT_RANGE = 16


def frame_fingerprints(frames: np.ndarray) -> list[bytes | None]:
    """One 16-byte content hash per frame; None for near-uniform frames."""
    out: list[bytes | None] = []
    for f in frames:
        if int(f.max()) - int(f.min()) < MIN_FINGERPRINT_RANGE:
            out.append(None)
        else:
            out.append(hashlib.blake2b(np.ascontiguousarray(f).tobytes(), digest_size=16).digest())
    return out


def _text(v):
    return v.decode() if isinstance(v, bytes) else v


def validate_dataset(folder: str | Path, fingerprints: bool = True, workers: int | None = 1) -> ProgressGen[list[str]]:
    """Yield Progress while checking; return the list of problems (empty = valid).

    ``workers`` (None: every core) processes compute the clips' frame fingerprints, most of the
    time a validation takes; the problems are the same for any number."""
    from napari_ultramn.io.h5 import load_h5py

    h5py = load_h5py()

    folder = Path(folder)
    finish_interrupted_replace(folder)  # a build killed between its two renames
    if not folder.is_dir():
        raise InputError(folder, "is not a folder")
    problems: list[str] = []
    try:
        manifest = read_json(folder / "manifest.json", "dataset_manifest")
    except InputError as exc:
        hint = " (an incomplete or interrupted build?)" if "not found" in str(exc) else ""
        return [f"{exc}{hint}"]
    if (unsigned := signature_problem(manifest)) is not None:
        problems.append(f"{folder / 'manifest.json'}: {unsigned}")
    try:
        split_doc = read_json(folder / manifest["split"]["file"], "split")
    except InputError as exc:
        problems.append(str(exc))
        split_doc = {"participants": {}}
    vocabulary, provenances = manifest["vocabulary"], manifest["provenances"]
    listed = {c["clip_id"]: c for c in manifest["clips"]}
    seen: dict[str, str] = {}
    participant_splits: dict[str, set] = defaultdict(set)
    sources: dict[str, list[str]] = defaultdict(list)
    prints: dict[bytes, set] = defaultdict(set)
    jobs: list[tuple[str, str, str, str]] = []  # (file, clip id, participant, split) to fingerprint
    written: list[dict] = []
    for i, entry in enumerate(manifest["files"]):
        path, split = folder / entry["file"], entry["split"]
        yield Progress(i, len(manifest["files"]), f"checking {entry['file']}")
        if not path.is_file():
            problems.append(f"{path}: listed in the manifest but missing")
            continue
        if path.stat().st_size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
            problems.append(f"{path}: checksum differs from the manifest (file changed or corrupt)")
        try:
            fh = h5py.File(path, "r")
        except OSError as exc:
            problems.append(f"{path}: is not a readable HDF5 file ({exc})")
            continue
        with fh:
            a = fh.attrs
            if _text(a.get("dataset_format")) != FORMAT or _text(a.get("split")) != split:
                problems.append(
                    f"{path}: attributes say dataset_format={_text(a.get('dataset_format'))!r}, "
                    f"split={_text(a.get('split'))!r}; expected {FORMAT!r}, {split!r}"
                )
            if json.loads(_text(a.get("vocabulary", "[]"))) != vocabulary:
                problems.append(f"{path}: plane vocabulary differs from the manifest's")
            for clip_id, g in fh.get("clips", {}).items():
                where = f"{path.name}:/clips/{clip_id}"
                if clip_id in seen:
                    problems.append(f"{where}: clip id also in {seen[clip_id]}")
                seen[clip_id] = split
                try:
                    info = _check_clip(g, where, vocabulary, provenances, problems)
                except (OSError, KeyError, ValueError) as exc:  # h5py on a damaged group or link
                    problems.append(f"{where}: cannot be read ({type(exc).__name__}: {exc})")
                    continue
                if info is None:
                    continue
                participant = info["participant"]
                participant_splits[participant].add(split)
                expected = split_doc["participants"].get(participant)
                if expected is not None and expected != split:
                    problems.append(
                        f"{where}: participant {participant} is in '{split}' but the "
                        f"split file assigns it to '{expected}'"
                    )
                if info["source_sha256"]:
                    sources[info["source_sha256"]].append(f"{clip_id} ({split})")
                entry_m = listed.get(clip_id)
                if entry_m is None:
                    problems.append(f"{where}: not listed in the manifest")
                elif (entry_m["split"], entry_m["n_frames"], list(entry_m["frame_shape"])) != (
                    split,
                    info["n_frames"],
                    info["frame_shape"],
                ):
                    problems.append(
                        f"{where}: manifest says {entry_m['split']}, {entry_m['n_frames']} "
                        f"frames of {entry_m['frame_shape']}; file has {split}, "
                        f"{info['n_frames']} frames of {info['frame_shape']}"
                    )
                written.append({**info, "clip_id": clip_id, "split": split})
                if fingerprints:
                    jobs.append((str(path), clip_id, participant, split))
    clip_prints = yield from _fingerprint_clips(jobs, prints, problems, workers)
    for clip_id in sorted(set(listed) - set(seen)):
        problems.append(f"{clip_id}: listed in the manifest but in no split file")
    for participant, splits in sorted(participant_splits.items()):
        if len(splits) > 1:
            problems.append(
                f"participant {participant} appears in several splits: {', '.join(s for s in SPLITS if s in splits)}"
            )
    for sha, clips in sorted(sources.items()):
        if len(clips) > 1:
            problems.append(f"source file sha256 {sha[:16]}... appears in several clips: {', '.join(clips)}")
    problems.extend(_shared_frames(prints))
    problems.extend(_near_duplicates(clip_prints, prints))
    if not problems and sorted(map(_key, count_rows(written))) != sorted(map(_key, manifest["counts"])):
        problems.append("manifest counts differ from the counts recomputed from the files")
    yield Progress(len(manifest["files"]), len(manifest["files"]), "done")
    return problems


def _fingerprint_clips(jobs, prints: dict, problems: list[str], workers) -> ProgressGen[list[dict]]:
    """Every clip's frame hashes into ``prints`` and its clip fingerprint, in ``workers`` processes;
    the fingerprint records in the order of ``jobs``."""
    from napari_ultramn.parallel import pool_map

    found: list[dict | None] = [None] * len(jobs)
    for n, (i, (frame_prints, clip_print, error)) in enumerate(pool_map(fingerprint_job, jobs, workers=workers), 1):
        path, clip_id, participant, split = jobs[i]
        yield Progress(n, len(jobs), f"fingerprinted {n} of {len(jobs)} clips")
        if error:
            problems.append(f"{Path(path).name}:/clips/{clip_id}: frames cannot be read ({error})")
            continue
        for fp in frame_prints:
            if fp is not None:
                prints[fp].add((participant, clip_id, split))
        found[i] = {"clip_id": clip_id, "participant": participant, "split": split, "fingerprint": clip_print}
    return [f for f in found if f is not None]


def fingerprint_job(_shared, job) -> tuple[list[bytes | None], str, str | None]:
    """A worker's task: one clip's frame hashes and clip fingerprint, read once; or the reason its
    frames cannot be read (a corrupt chunk is a problem of the dataset, not a crash)."""
    from napari_ultramn.io.h5 import load_h5py

    path, clip_id = job[0], job[1]
    try:
        with load_h5py().File(path, "r") as fh:
            frames = fh["clips"][clip_id]["frames"][()]
    except (OSError, KeyError, ValueError) as exc:
        return [], "", f"{type(exc).__name__}: {exc}"[:200]
    return frame_fingerprints(frames), clip_fingerprint(frames), None


def _key(row: dict) -> tuple:
    return tuple(row[k] for k in ("split", "plane", "side", "participants", "clips", "frames", "annotated_frames"))


def _shared_frames(prints: dict) -> list[str]:
    """Pairs of clips sharing identical frames; across participants = one patient, two pseudonyms."""
    pairs: dict[tuple, int] = defaultdict(int)
    for owners in prints.values():
        if len(owners) > 1:
            owners = sorted(owners)
            for i in range(len(owners)):
                for j in range(i + 1, len(owners)):
                    pairs[(owners[i], owners[j])] += 1
    out = []
    for ((pa, ca, sa), (pb, cb, sb)), n in sorted(pairs.items()):
        if pa != pb:
            out.append(
                f"participants {pa} (clip {ca}, {sa}) and {pb} (clip {cb}, {sb}) share {n} "
                "identical frame(s): likely the same patient under two pseudonyms"
            )
        else:
            out.append(
                f"clips {ca} ({sa}) and {cb} ({sb}) of participant {pa} share {n} identical "
                "frame(s): the same recording twice?"
            )
    return out


def _near_duplicates(clip_prints: list[dict], prints: dict) -> list[str]:
    """Near-identical clips of two participants in different splits (pairs sharing identical
    frames are already reported by :func:`_shared_frames`)."""
    exact = {frozenset(c for _, c, _ in owners) for owners in prints.values() if len(owners) > 1}
    split_of = {c["clip_id"]: c["split"] for c in clip_prints}
    out = []
    for p in likely_duplicate_pairs(clip_prints):
        if split_of[p.clip_a] != split_of[p.clip_b] and not any({p.clip_a, p.clip_b} <= e for e in exact):
            out.append(
                f"participants {p.participant_a} (clip {p.clip_a}, {split_of[p.clip_a]}) and "
                f"{p.participant_b} (clip {p.clip_b}, {split_of[p.clip_b]}) have near-identical clips "
                f"(fingerprint distance {p.distance:.3f}): likely the same patient under two "
                "pseudonyms, across splits"
            )
    return out


def _check_clip(g, where: str, vocabulary, provenances, problems: list[str]) -> dict | None:
    required = ("frames", "masks", "plane_labels", "provenance", "annotated")
    missing = [k for k in required if k not in g]
    if missing:
        problems.append(f"{where}: missing dataset(s) {', '.join(missing)}")
        return None
    frames, masks = g["frames"], g["masks"]
    if frames.ndim != 3 or frames.dtype != np.uint8:
        problems.append(f"{where}: frames must be (T, H, W) uint8, got {frames.shape} {frames.dtype}")
        return None
    t = frames.shape[0]
    if masks.shape != frames.shape or masks.dtype != np.uint8:
        problems.append(f"{where}: masks {masks.shape} {masks.dtype} do not match frames {frames.shape} uint8")
        return None
    labels = {k: g[k][()] for k in ("plane_labels", "provenance", "annotated")}
    for k, dtype in (("plane_labels", np.int16), ("provenance", np.int8), ("annotated", np.bool_)):
        if labels[k].shape != (t,) or labels[k].dtype != dtype:
            problems.append(f"{where}: {k} must be ({t},) {np.dtype(dtype)}, got {labels[k].shape} {labels[k].dtype}")
            return None
    m = masks[()]
    if m.max(initial=0) > 1:
        problems.append(f"{where}: masks hold values other than 0 and 1 (max {int(m.max())})")
    if m[~labels["annotated"]].any():
        problems.append(f"{where}: unannotated frames have non-empty masks")
    for k, n in (("plane_labels", len(vocabulary)), ("provenance", len(provenances))):
        bad = (labels[k] < -1) | (labels[k] >= n)
        if bad.any():
            problems.append(f"{where}: {k} out of range [-1, {n - 1}] at frame(s) {np.flatnonzero(bad)[:5].tolist()}")
    code = int(g.attrs.get("clip_plane_code", -1))
    if not -1 <= code < len(vocabulary):
        problems.append(f"{where}: clip_plane_code {code} out of range [-1, {len(vocabulary) - 1}]")
    spacing = g.attrs.get("spacing_mm")
    if spacing is not None and (len(spacing) != 2 or not np.all(np.asarray(spacing) > 0)):
        problems.append(f"{where}: spacing_mm must be two positive numbers, got {list(spacing)}")
    participant = _text(g.attrs.get("participant"))
    if not participant:
        problems.append(f"{where}: no participant attribute")
        return None
    plane = _text(g.attrs.get("clip_plane")) or _text(g.attrs.get("plane"))
    return {
        "participant": participant,
        "side": _text(g.attrs.get("side")),
        "plane": plane,
        "source_sha256": _text(g.attrs.get("source_sha256")),
        "n_frames": t,
        "frame_shape": list(frames.shape[1:]),
        "annotated_frames": int(labels["annotated"].sum()),
    }


def dataset_problems(folder: str | Path, fingerprints: bool = True) -> list[str]:
    """:func:`validate_dataset` run to the end (tests, scripts)."""
    return run_to_end(validate_dataset(folder, fingerprints))
