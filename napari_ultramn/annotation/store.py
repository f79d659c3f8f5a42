"""Per-rater, per-clip annotation files inside a project: ``annotations/<clip_id>/<rater>.json``.

Raters never share a file, so they never overwrite each other. Every save is schema-validated and
atomic. A corrupt or schema-invalid file is reported with its path and moved aside to
``<rater>.json.corrupt-<timestamp>`` only when the caller asks (never silently replaced).
"""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path

from ..errors import InputError
from ..schema import read_json, write_json
from .model import ClipAnnotation

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
        write_json(path, annotation.to_json(), "annotation")
        return path

    def raters(self, clip_id: str) -> list[str]:
        folder = self.root / clip_id
        return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []

    def clip_ids(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []

    def load_all(self, clip_id: str) -> dict[str, ClipAnnotation]:
        """Every rater's annotation of a clip (for agreement, consensus and review mode)."""
        return {r: a for r in self.raters(clip_id) if (a := self.load(clip_id, r)) is not None}

    def set_aside(self, clip_id: str, rater: str) -> Path:
        """Move a bad file out of the way (kept, never deleted) so work can restart; returns its new path."""
        path = self.path(clip_id, rater)
        stamp = _dt.datetime.now().strftime("%Y%m%dT%H%M%S")
        target = path.with_name(f"{path.name}.corrupt-{stamp}")
        path.rename(target)
        return target


def load_annotation_file(path: str | Path) -> ClipAnnotation:
    """Read one annotation file; any problem is one :class:`InputError` naming the file."""
    obj = read_json(path, "annotation")
    try:
        return ClipAnnotation.from_json(obj)
    except ValueError as exc:
        raise InputError(path, f"inconsistent annotation: {exc}") from None
