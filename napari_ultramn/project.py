"""An annotation project folder: de-identified clips, a registry, and per-rater annotations.

Layout::

    PROJECT/
      project.json            name, plane vocabulary, settings      (schemas/project.schema.json)
      registry.sqlite         registry of de-identified clips: SQLite (napari_ultramn.registry)
      clips.json              the registry exported for audit, after each ingest and by
                              `ultramn export-registry`; never read back (schemas/clips.schema.json)
      clips.json.bak-<time>   clips.json as it was when a project made before the database was
                              converted (once, on first open)
      clips/<clip_id>.h5      frames cropped to the imaging region   (napari_ultramn.io.hdf5clip)
      annotations/<clip_id>/<rater>.json                              (schemas/annotation.schema.json)
      views/<clip_id>/<rater>.json   a rater's window/level and display   (schemas/view.schema.json)
      model_doubt.json        the last pre-annotation's doubt per clip (schemas/model_doubt.schema.json)
      region_corrections.json imaging areas a person drew      (schemas/region_corrections.schema.json)
      .project.lock           held (flock) by ingest for its whole run, and while a project is made
                              or converted
      .secret/                mode 0700; never exported, never leaves the project
        pseudonym.key         keyed-hash secret (64 hex digits), mode 0600
        identifiers.json      every raw identifier ingest saw, for audits (schemas/identifiers.schema.json)

Nothing in the project except ``.secret/`` can identify a patient.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import secrets
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from . import DEFAULT_PLANES, NON_STANDARD, __version__
from .annotation.clip_annotation import now_iso
from .annotation.store import AnnotationStore
from .atomic import atomic_write_bytes
from .errors import ConflictError, InputError, output_error
from .holders import holder_info, read_holder
from .registry import REGISTRY_FILE, REGISTRY_VERSION, Registry
from .schema import read_json, validate, write_json

PROJECT_FILE = "project.json"
CLIPS_FILE = "clips.json"
LOCK_FILE = ".project.lock"
#: How long a writer waits for another (e.g. a second ingest) before giving up with a message.
LOCK_TIMEOUT_S = 1800.0


class ProjectLock:
    """Exclusive lock of a project for its writers (``flock`` on ``.project.lock``).

    Ingest holds it for its whole run, so two ingests into one project run one after the other
    (the registry itself needs no lock: each upsert is a SQLite transaction). The kernel releases a
    ``flock`` when its process dies (even ``kill -9``), so there are no stale locks to clean up.
    Re-entrant within one thread (ingest holds it while calling ``upsert_clips``); other threads and
    processes wait. The file holds who has it (``holders.holder_info``), for the waiting message.
    """

    # (lock path, process id, thread id) -> [fd, depth]; the pid keeps a forked child, which
    # inherits this dict and the descriptor, from believing it holds its parent's lock
    _held: dict[tuple[str, int, int], list] = {}

    def __init__(self, root: str | Path, timeout_s: float = LOCK_TIMEOUT_S):
        self.path = Path(root) / LOCK_FILE
        self.timeout_s = timeout_s

    @property
    def _key(self) -> tuple[str, int, int]:
        return (os.path.realpath(self.path), os.getpid(), threading.get_ident())

    def try_acquire(self) -> bool:
        """Take the lock if it is free (or already ours); never waits."""
        held = self._held.get(self._key)
        if held is not None:
            held[1] += 1
            return True
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # a read-only or full project folder: name the folder, not the lock
            raise output_error(exc, self.path.parent) from None
        if not _lock_fd(fd):
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        # no command line: an ingest's names the source folder, often a patient's name, and this
        # file stays in the project (which must hold no identifier)
        os.write(fd, json.dumps(holder_info(command="")).encode())
        self._held[self._key] = [fd, 1]
        return True

    def holder(self) -> str:
        """Who holds the lock, in words (best effort: the file may be mid-rewrite)."""
        info = read_holder(self.path) or {}
        if "pid" not in info or "hostname" not in info:
            return "another process"
        text = f"pid {info['pid']} on {info['hostname']}, since {info.get('acquired') or info.get('since')}"
        return text + (f", running `{info['command']}`" if info.get("command") else "")

    def waiting_message(self) -> str:
        return f"waiting for another writer of the project ({self.holder()}) to finish (at most {self.timeout_s:.0f} s)"

    def timeout_error(self) -> ConflictError:
        return ConflictError(
            f"{self.path.parent}: still in use by another writer ({self.holder()}) after waiting "
            f"{self.timeout_s:.0f} s; run again when it has finished"
        )

    def acquire(self) -> None:
        """Wait (polling) until the lock is ours; :class:`ConflictError` after ``timeout_s``."""
        deadline = time.monotonic() + self.timeout_s
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                raise self.timeout_error()
            time.sleep(0.2)

    def release(self) -> None:
        held = self._held.get(self._key)
        if held is None:
            return
        held[1] -= 1
        if held[1] == 0:
            del self._held[self._key]
            os.close(held[0])  # closing the descriptor releases the flock

    def __enter__(self) -> ProjectLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _lock_fd(fd: int) -> bool:
    """Non-blocking exclusive lock of an open file; False when someone else holds it."""
    try:
        import fcntl
    except ImportError:  # Windows: a byte-range lock of the first byte does the same job
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]  # Windows only
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def migrate_registry(root: str | Path) -> dict | None:
    """Convert a project made before the registry was a database (``clips.json`` only), once.

    Under the project lock, so a second process opening the project waits and then finds it done.
    ``clips.json`` is validated whole, copied to ``clips.json.bak-<UTC time>`` (never overwritten:
    the file to restore from) and left in place as the audit export; the database is built beside
    and renamed in (a crash leaves the project as it was), then ``project.json`` records
    ``registry_version``. Returns the new config, or None if another process converted it first.
    """
    root = Path(root)
    with ProjectLock(root):
        if (root / REGISTRY_FILE).exists():
            return None
        clips_path = root / CLIPS_FILE
        records = []
        if clips_path.exists():
            records = read_json(clips_path, "clips")["clips"]
            stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            data = clips_path.read_bytes()
            backup = root / f"{CLIPS_FILE}.bak-{stamp}"
            n = 1
            while not atomic_write_bytes(backup, data, exclusive=True):  # an earlier one this second
                backup, n = root / f"{CLIPS_FILE}.bak-{stamp}-{n}", n + 1
        Registry.create(root / REGISTRY_FILE, records, checked=True).close()
        config = {**read_json(root / PROJECT_FILE, "project"), "registry_version": REGISTRY_VERSION}
        write_json(root / PROJECT_FILE, config, "project")
        return config


def write_private(path: Path, data: bytes, *, replace: bool = True) -> bool:
    """Write a secret file atomically, readable by its owner only (mode 0600 from the start).

    ``replace=False`` never overwrites an existing ``path`` (returns False, nothing changed). A
    crash leaves the old file or the new one, never half of one.
    """
    return atomic_write_bytes(path, data, mode=0o600, exclusive=not replace)


def check_plane_vocabulary(root: str | Path, planes) -> list[str]:
    """The planes as a list, or one error (naming ``root``) for an empty or repeated vocabulary."""
    planes = list(planes)
    repeated = sorted({p for p in planes if planes.count(p) > 1})
    if not planes or repeated or NON_STANDARD in planes:
        why = (
            f"'{repeated[0]}' is given twice"
            if repeated
            else "it is empty"
            if not planes
            else f"'{NON_STANDARD}' is always added"
        )
        raise InputError(root, f"plane vocabulary must be unique names, without '{NON_STANDARD}': {why} in {planes}")
    return planes


def _not_a_file(root: str | Path) -> Path:
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise InputError(root, "is a file, not a project folder")
    return root


class Project:
    """Open with :meth:`open` or make with :meth:`create`; every read and write is schema-checked.

    The clip registry is ``registry.sqlite`` (:class:`napari_ultramn.registry.Registry`): every
    clip query goes to it, so a clip added by another process is seen at once.
    """

    def __init__(self, root: str | Path, config: dict, registry: Registry):
        self.root = Path(root)
        self.config = config
        self.registry = registry
        self.annotations = AnnotationStore(self.root)
        self._identifiers_known: set[tuple[str, str]] = set()  # cache of .secret/identifiers.json

    # -- lifecycle -----------------------------------------------------------------------
    @classmethod
    def create(
        cls, root: str | Path, name: str | None = None, planes: tuple[str, ...] | list[str] = DEFAULT_PLANES
    ) -> Project:
        """Make a new project folder (or return the existing one unchanged)."""
        root = _not_a_file(root)
        if (root / PROJECT_FILE).exists():
            return cls.open(root)
        planes = check_plane_vocabulary(root, planes)
        config = {
            "format": "ultramn-project",
            "schema_version": 1,
            "name": name or root.name,
            "created": now_iso(),
            "software_version": __version__,
            "planes": planes,
            "non_standard_label": NON_STANDARD,
            "registry_version": REGISTRY_VERSION,
        }
        root.mkdir(parents=True, exist_ok=True)
        with ProjectLock(root):
            if (root / PROJECT_FILE).exists():  # another process made it while we waited
                return cls.open(root)
            ensure_pseudonym_key(root)  # before anything else, so no clip exists without its key
            registry = Registry.create(root / REGISTRY_FILE)
            registry.export(root / CLIPS_FILE)
            write_json(root / PROJECT_FILE, config, "project")
        return cls(root, config, registry)

    @classmethod
    def open(cls, root: str | Path) -> Project:
        """Open a project; one with only ``clips.json`` (made before the registry was a database)
        is converted once (:func:`migrate_registry`)."""
        root = _not_a_file(root)
        if not (root / PROJECT_FILE).is_file():
            raise InputError(root, f"is not an UltraMN project (no {PROJECT_FILE})")
        config = read_json(root / PROJECT_FILE, "project")
        if not (root / REGISTRY_FILE).exists():
            config = migrate_registry(root) or config
        return cls(root, config, Registry.open(root / REGISTRY_FILE))

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
        """Registry records, sorted by participant, side, plane, clip id (fresh copies)."""
        return self.registry.all()

    def clip_ids(self) -> list[str]:
        """Clip ids in :meth:`clips` order, without reading the records."""
        return self.registry.ids()

    def n_clips(self) -> int:
        return self.registry.count()

    def clip_summaries(self) -> list[dict]:
        """``clip_id``, participant, side, plane, n_frames, source_sha256 of every clip, in
        :meth:`clips` order: what a list of clips shows, without decoding whole records."""
        return self.registry.summaries()

    def clip_record(self, clip_id: str) -> dict:
        rec = self.registry.get(clip_id)
        if rec is None:
            raise InputError(self.root, f"project has no clip '{clip_id}'")
        return rec

    def clip_path(self, clip_id: str) -> Path:
        return self.root / self.clip_record(clip_id)["file"]

    def open_clip(self, clip_id: str):
        """The de-identified clip, lazily (``napari_ultramn.io.Clip``)."""
        from .io.hdf5clip import read_hdf5_clip

        rec = self.clip_record(clip_id)
        clip = read_hdf5_clip(self.root / rec["file"])
        clip.participant, clip.side, clip.plane = rec.get("participant"), rec.get("side"), rec.get("plane")
        return clip

    def reload_clips(self) -> None:
        """Kept for callers written for the JSON registry: every query already reads the database,
        so there is nothing to re-read."""

    def upsert_clips(self, records: list[dict]) -> None:
        """Add or replace registry records: one transaction, each record schema-checked.

        Touches only these records (never a rewrite of the registry); records another process
        added meanwhile stay. ``clips.json``, the audit export, is not rewritten: call
        :meth:`export_registry` when a batch is done.
        """
        self.registry.upsert(records)

    def export_registry(self, path: str | Path | None = None) -> Path:
        """Write the registry as JSON for audit (default ``PROJECT/clips.json``; schema-checked,
        atomic, sorted by clip id) and return its path."""
        path = self.root / CLIPS_FILE if path is None else Path(path)
        self.registry.export(path)
        return path

    def set_config(self, **values) -> None:
        """Update project.json (schema-checked, atomic, under the project lock)."""
        with ProjectLock(self.root):
            config = {**read_json(self.root / PROJECT_FILE, "project"), **values}
            write_json(self.root / PROJECT_FILE, config, "project")
            self.config = config

    # -- secrets (ingest only) -------------------------------------------------------------
    def pseudonym_key(self) -> bytes:
        """The secret of the keyed hash behind participant pseudonyms; refused if unusable."""
        return read_pseudonym_key(self.root / SECRET_DIR / KEY_FILE)

    def record_identifiers(self, seen: Iterable[tuple[str, str]]) -> bool:
        """Merge ``(kind, raw value)`` pairs into ``.secret/identifiers.json`` (contract D).

        Written atomically with mode 0600 only when something new was seen; returns whether it was.
        The audit reads this file to prove none of these values reached anything we export.
        """
        path = self.root / SECRET_DIR / IDENTIFIERS_FILE
        seen = [(k, str(v)) for k, v in dict.fromkeys(seen) if v]
        if all(pair in self._identifiers_known for pair in seen):
            return False  # most files of a participant add nothing: no read, no write
        with ProjectLock(self.root):
            known = read_json(path, "identifiers")["identifiers"] if path.exists() else []
            have = {(i["kind"], i["value"]) for i in known}
            new = [pair for pair in seen if pair not in have]
            self._identifiers_known = have | set(new)
            if not new:
                return False
            obj = {"schema_version": 1, "identifiers": known + [{"kind": k, "value": v} for k, v in new]}
            validate(obj, "identifiers", path)
            _secret_dir(self.root)
            write_private(path, (json.dumps(obj, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))
        return True


SECRET_DIR = ".secret"
KEY_FILE = "pseudonym.key"
IDENTIFIERS_FILE = "identifiers.json"
#: Bytes of key a pseudonym needs: HMAC-SHA256 with less than its block of secret is guessable.
MIN_KEY_BYTES = 32
_KEY_WAY_ON = (
    "restore it from a backup of the project (a new key would give every participant a "
    "new pseudonym and break the link to clips already ingested)"
)


def _secret_dir(root: Path) -> Path:
    secret = Path(root) / SECRET_DIR
    secret.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret.chmod(0o700)  # also tightens a folder made by an older version or another tool
    return secret


def ensure_pseudonym_key(root: str | Path, create: bool = True) -> bytes:
    """The project's pseudonym key, created on first use: 32 random bytes as hex, mode 0600.

    Created atomically (a 0600 temporary file in ``.secret``, fsynced, then hard-linked to its name,
    which fails if another process got there first: then theirs is used), so a crash or a full disk
    never leaves a half-written key that a later ingest would trust. ``create=False`` (a project
    that already has clips) refuses a missing key instead: a new one would re-pseudonymise.
    """
    key_path = _secret_dir(Path(root)) / KEY_FILE
    if create and not key_path.exists():
        write_private(key_path, (secrets.token_hex(MIN_KEY_BYTES) + "\n").encode("ascii"), replace=False)
    return read_pseudonym_key(key_path)


def read_pseudonym_key(key_path: Path) -> bytes:
    """Read and check the key: missing, unreadable, empty, not hex or short keys are refused."""
    try:
        text = key_path.read_bytes().decode("ascii").strip()
    except FileNotFoundError:
        raise InputError(key_path, f"pseudonym key is missing: {_KEY_WAY_ON}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(key_path, f"pseudonym key cannot be read ({exc}): {_KEY_WAY_ON}") from None
    if not text:
        raise InputError(key_path, f"pseudonym key is empty (a full disk or an interrupted write?): {_KEY_WAY_ON}")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise InputError(key_path, f"pseudonym key is not hexadecimal: {_KEY_WAY_ON}") from None
    if len(key) < MIN_KEY_BYTES:
        raise InputError(
            key_path, f"pseudonym key is too short ({len(key)} bytes, at least {MIN_KEY_BYTES} needed): {_KEY_WAY_ON}"
        )
    return key
