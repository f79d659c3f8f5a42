"""Per-rater, per-clip annotation files inside a project: ``annotations/<clip_id>/<rater>.json``.

Raters never share a file, so they never overwrite each other. Every save is schema-validated and
atomic. A corrupt or schema-invalid file is reported with its path and moved aside to
``<rater>.json.corrupt-<timestamp>-<random>`` only when the caller asks (never silently replaced,
and never over an earlier set-aside file).
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import uuid
from pathlib import Path

from ..atomic import atomic_write_json
from ..errors import InputError, SchemaError
from ..schema import load_json, validate
from .clip_annotation import ClipAnnotation

#: Rater id of model pre-annotation proposals (napari_ultramn.model.preannotate).
MODEL_RATER = "model"
#: Rater id of the final annotation an adjudicator makes in review mode.
ADJUDICATED = "adjudicated"
#: Ids that are not raters: agreement and consensus never count them.
RESERVED_RATERS = (MODEL_RATER, ADJUDICATED)

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_id(kind: str, value: str) -> str:
    """Rater and clip ids become file names: allow letters, digits, '_', '.', '-' only."""
    if not isinstance(value, str) or not _SAFE_ID.match(value):
        raise ValueError(
            f"{kind} id {value!r} is not allowed: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return value


class AnnotationStore:
    """Reads and writes the annotation files of one project folder."""

    def __init__(self, project_root: str | Path):
        self.root = Path(project_root) / "annotations"

    def path(self, clip_id: str, rater: str) -> Path:
        return self.root / check_id("clip", clip_id) / f"{check_id('rater', rater)}.json"

    def exists(self, clip_id: str, rater: str) -> bool:
        return self.path(clip_id, rater).is_file()

    def load(self, clip_id: str, rater: str) -> ClipAnnotation | None:
        """The rater's annotation of the clip, ``None`` if there is none yet.

        Raises :class:`InputError` (path + problem) for a corrupt or schema-invalid file.
        """
        path = self.path(clip_id, rater)
        if not path.exists():
            return None
        return load_annotation_file(path)

    def save(self, annotation: ClipAnnotation) -> Path:
        """Validate against the schema and write atomically; returns the path."""
        path = self.path(annotation.clip_id, annotation.rater)
        obj = annotation.to_json()
        validate_annotation(obj, path)
        atomic_write_json(path, obj, indent=None)  # compact: run lengths would take a line each
        return path

    def raters(self, clip_id: str) -> list[str]:
        folder = self.root / clip_id
        return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []

    def human_raters(self, clip_id: str) -> list[str]:
        """Raters of a clip without the reserved ids: who counts for agreement and consensus."""
        return [r for r in self.raters(clip_id) if r not in RESERVED_RATERS]

    def clip_ids(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []

    def load_all(self, clip_id: str) -> dict[str, ClipAnnotation]:
        """Every rater's annotation of a clip (for agreement, consensus and review mode)."""
        return {r: a for r in self.raters(clip_id) if (a := self.load(clip_id, r)) is not None}

    def set_aside(self, clip_id: str, rater: str) -> Path:
        """Move a bad file out of the way (kept, never deleted) so work can restart; returns its new path.

        The new name carries the time to the microsecond and a random suffix, and is taken with
        ``os.link``, which fails rather than replace an existing file: two files set aside in the
        same instant (two windows, two machines on a shared folder) both survive.
        """
        path = self.path(clip_id, rater)
        while True:
            stamp = _dt.datetime.now().strftime("%Y%m%dT%H%M%S.%f")
            target = path.with_name(f"{path.name}.corrupt-{stamp}-{_random_suffix()}")
            try:
                try:
                    os.link(path, target)
                except FileExistsError:
                    raise
                except OSError:  # no hard links on this file system: an exclusive copy instead
                    with open(target, "xb") as out:
                        out.write(path.read_bytes())
                        out.flush()
                        os.fsync(out.fileno())
            except FileExistsError:
                continue
            path.unlink()
            return target


def _random_suffix() -> str:
    return uuid.uuid4().hex[:8]


def validate_annotation(obj: dict, path: str | Path | None = None) -> None:
    """Schema-check an annotation, with the run-length arrays checked by numpy.

    jsonschema walks every integer of every mask's run lengths, which made a 300-frame autosave
    ~90% validation (~350 ms). The schema checks the structure with the arrays emptied; a loop
    checks the arrays: whole non-negative numbers (their sum against the frame size is checked by
    ``rle_decode`` on load). A plain type loop costs ~3 ms for a full 300-frame clip.
    """
    frames = obj.get("frames") if isinstance(obj, dict) else None
    if not isinstance(frames, dict):
        validate(obj, "annotation", path)
        return
    skeleton = {
        **obj,
        "frames": {
            k: ({**v, "rle": []} if isinstance(v, dict) and isinstance(v.get("rle"), list) else v)
            for k, v in frames.items()
        },
    }
    validate(skeleton, "annotation", path)
    for key, entry in frames.items():
        counts = entry["rle"]
        # type() is int rejects bool (a subclass of int) as JSON Schema's "integer" does
        if not all(type(c) is int for c in counts) or (counts and min(counts) < 0):
            raise SchemaError(
                path,
                f"does not match schema 'annotation' at frames/{key}/rle: "
                "run lengths must be a flat list of non-negative integers",
            )


def load_annotation_file(path: str | Path) -> ClipAnnotation:
    """Read one annotation file; any problem is one :class:`InputError` naming the file."""
    obj = load_json(path)
    validate_annotation(obj, path)
    try:
        return ClipAnnotation.from_json(obj)
    except ValueError as exc:
        raise InputError(path, f"inconsistent annotation: {exc}") from None
