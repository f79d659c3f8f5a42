"""An annotation project folder: de-identified clips, a registry, and per-rater annotations.

Layout::

    PROJECT/
      project.json            name, plane vocabulary, settings      (schemas/project.schema.json)
      clips.json              registry of de-identified clips          (schemas/clips.schema.json)
      clips/<clip_id>.h5      frames cropped to the imaging region   (napari_ultramn.io.hdf5clip)
      annotations/<clip_id>/<rater>.json                              (schemas/annotation.schema.json)
      .secret/pseudonym.key   keyed-hash secret; never exported, never leaves the project

Nothing in the project except ``.secret/`` can identify a patient.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from . import DEFAULT_PLANES, NON_STANDARD, __version__
from .annotation.model import now_iso
from .annotation.store import AnnotationStore
from .errors import InputError
from .schema import read_json, write_json

PROJECT_FILE = "project.json"
CLIPS_FILE = "clips.json"


def _not_a_file(root: str | Path) -> Path:
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise InputError(root, "is a file, not a project folder")
    return root


class Project:
    """Open with :meth:`open` or make with :meth:`create`; every read and write is schema-checked."""

    def __init__(self, root: str | Path, config: dict, clips: list[dict]):
        self.root = Path(root)
        self.config = config
        self._clips = {c["clip_id"]: c for c in clips}
        self.annotations = AnnotationStore(self.root)

    # -- lifecycle -----------------------------------------------------------------------
    @classmethod
    def create(
        cls, root: str | Path, name: str | None = None, planes: tuple[str, ...] | list[str] = DEFAULT_PLANES
    ) -> Project:
        """Make a new project folder (or return the existing one unchanged)."""
        root = _not_a_file(root)
        if (root / PROJECT_FILE).exists():
            return cls.open(root)
        planes = list(planes)
        repeated = sorted({p for p in planes if planes.count(p) > 1})
        if not planes or repeated or NON_STANDARD in planes:
            why = (f"'{repeated[0]}' is given twice" if repeated else "it is empty" if not planes
                   else f"'{NON_STANDARD}' is always added")
            raise InputError(root, f"plane vocabulary must be unique names, without '{NON_STANDARD}': "
                             f"{why} in {planes}")
        config = {
            "format": "ultramn-project",
            "schema_version": 1,
            "name": name or root.name,
            "created": now_iso(),
            "software_version": __version__,
            "planes": planes,
            "non_standard_label": NON_STANDARD,
        }
        root.mkdir(parents=True, exist_ok=True)
        secret = root / ".secret"
        secret.mkdir(exist_ok=True)
        key_path = secret / "pseudonym.key"
        if not key_path.exists():
            key_path.write_text(secrets.token_hex(32) + "\n")
            key_path.chmod(0o600)
        write_json(root / CLIPS_FILE, {"schema_version": 1, "clips": []}, "clips")
        write_json(root / PROJECT_FILE, config, "project")
        return cls(root, config, [])

    @classmethod
    def open(cls, root: str | Path) -> Project:
        root = _not_a_file(root)
        if not (root / PROJECT_FILE).is_file():
            raise InputError(root, f"is not an UltraMN project (no {PROJECT_FILE})")
        config = read_json(root / PROJECT_FILE, "project")
        clips = read_json(root / CLIPS_FILE, "clips")["clips"] if (root / CLIPS_FILE).exists() else []
        return cls(root, config, clips)

    # -- vocabulary ----------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.config["name"]

    @property
    def planes(self) -> list[str]:
        """The standard planes of this project's protocol."""
        return list(self.config["planes"])

    @property
    def plane_labels(self) -> list[str]:
        """Every label a frame may carry: the standard planes, then the non-standard label."""
        return self.planes + [self.config.get("non_standard_label", NON_STANDARD)]

    # -- clips ---------------------------------------------------------------------------
    def clips(self) -> list[dict]:
        """Registry records, sorted by participant, side, plane, clip id."""
        return sorted(
            self._clips.values(),
            key=lambda c: (c.get("participant") or "", c.get("side") or "", c.get("plane") or "", c["clip_id"]),
        )

    def clip_ids(self) -> list[str]:
        return [c["clip_id"] for c in self.clips()]

    def clip_record(self, clip_id: str) -> dict:
        try:
            return self._clips[clip_id]
        except KeyError:
            raise InputError(self.root, f"project has no clip '{clip_id}'") from None

    def clip_path(self, clip_id: str) -> Path:
        return self.root / self.clip_record(clip_id)["file"]

    def open_clip(self, clip_id: str):
        """The de-identified clip, lazily (``napari_ultramn.io.Clip``)."""
        from .io.hdf5clip import read_hdf5_clip

        clip = read_hdf5_clip(self.clip_path(clip_id))
        rec = self.clip_record(clip_id)
        clip.participant, clip.side, clip.plane = rec.get("participant"), rec.get("side"), rec.get("plane")
        return clip

    def upsert_clips(self, records: list[dict]) -> None:
        """Add or replace registry records and write the registry atomically (schema-checked)."""
        merged = dict(self._clips)
        for rec in records:
            merged[rec["clip_id"]] = rec
        write_json(
            self.root / CLIPS_FILE,
            {"schema_version": 1, "clips": sorted(merged.values(), key=lambda c: c["clip_id"])},
            "clips",
        )
        self._clips = merged

    def pseudonym_key(self) -> bytes:
        """The secret of the keyed hash behind participant pseudonyms (ingest only)."""
        return bytes.fromhex((self.root / ".secret" / "pseudonym.key").read_text().strip())
