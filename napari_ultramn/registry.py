"""The clip registry of a project: an embedded SQLite database (``PROJECT/registry.sqlite``).

Why a database: the registry used to be one JSON file (``clips.json``) that every added clip
re-read, re-validated and rewrote whole, so ingest grew with the square of the project (2,000
clips: 11 minutes of registry writes before a frame was decoded). Here adding or replacing clips is
one transaction touching only those rows, readers query what they need, and two processes adding
clips at once both land (SQLite's own locking; writers wait ``BUSY_TIMEOUT_S``).

* Records are the JSON objects of ``schemas/clips.schema.json`` (``$defs/clip``), stored whole in
  ``record`` and validated on write, per upsert (never the whole registry). The columns beside it
  (participant, side, plane, n_frames, source sha256) exist only to be queried and indexed.
* ``PRAGMA user_version`` is the schema version (:data:`REGISTRY_VERSION`); a newer one is refused.
* Journal: WAL (readers never wait for a writer), except on a network file system, where WAL's
  shared memory does not work across machines, or where WAL cannot be set: then SQLite's rollback
  journal, and :attr:`Registry.journal_note` says so (also logged once).
* A damaged or foreign file is one :class:`InputError` naming it and the way on, never a SQLite
  traceback. ``clips.json`` stays as the audit export (:meth:`Registry.export`), written at the end
  of an ingest and by ``ultramn export-registry``, never per clip.

Qt-free; one connection per process (re-opened after a fork), shared by threads under a lock.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from .atomic import atomic_path, atomic_write_text
from .errors import ConflictError, InputError, OutputError
from .schema import validate

REGISTRY_FILE = "registry.sqlite"
#: Version of the database schema (``PRAGMA user_version``); bump with a migration in ``_MIGRATIONS``.
REGISTRY_VERSION = 1
#: How long a writer waits for another writer's transaction before giving up with a message.
BUSY_TIMEOUT_S = 60.0
#: File systems whose locking/shared memory WAL cannot rely on across machines (``/proc/mounts`` types).
NETWORK_FS = {
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "afs",
    "9p",
    "ceph",
    "glusterfs",
    "lustre",
    "gpfs",
    "beegfs",
    "davfs",
    "fuse.sshfs",
    "fuse.glusterfs",
    "fuse.rclone",
    "fuse.s3fs",
}
#: Columns that are copies of record fields, for queries (the record stays the truth).
INDEXED = ("participant", "side", "plane", "n_frames", "source_sha256")
#: ``Project.clips()``'s order: participant, side, plane, clip id (None sorts as "").
PROJECT_ORDER = "coalesce(participant, ''), coalesce(side, ''), coalesce(plane, ''), clip_id"

_SCHEMA = """
CREATE TABLE clips (
    seq INTEGER PRIMARY KEY,          -- insertion order; kept when a record is replaced
    clip_id TEXT NOT NULL UNIQUE,
    participant TEXT, side TEXT, plane TEXT, n_frames INTEGER, source_sha256 TEXT,
    record TEXT NOT NULL              -- the whole record, JSON (schemas/clips.schema.json $defs/clip)
);
CREATE INDEX clips_participant ON clips (participant);
CREATE INDEX clips_sha ON clips (source_sha256);
"""
_UPSERT = (
    "INSERT INTO clips (clip_id, participant, side, plane, n_frames, source_sha256, record) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (clip_id) DO UPDATE SET participant = excluded.participant, "
    "side = excluded.side, plane = excluded.plane, n_frames = excluded.n_frames, "
    "source_sha256 = excluded.source_sha256, record = excluded.record"
)
#: ``user_version`` -> SQL statements bringing it to the next version (none yet: 1 is the first).
_MIGRATIONS: dict[int, tuple[str, ...]] = {}

_log = logging.getLogger(__name__)
#: Connections a forked child inherited from its parent, kept alive so they are never finalized here.
_INHERITED: list[sqlite3.Connection] = []
_WAY_ON = (
    "restore it from a backup of the project, or move it (with any -wal and -shm file beside "
    "it) aside: the project is then rebuilt "
    "from clips.json (the last export) when next opened, and re-running ingest on the sources "
    "registers any clip added since"
)


def _row(rec: dict) -> tuple:
    return (rec["clip_id"], *(rec.get(k) for k in INDEXED), json.dumps(rec, ensure_ascii=False, separators=(",", ":")))


def network_fs(path: str | Path) -> str | None:
    """The file-system type of ``path`` if it is a network one (Linux ``/proc/self/mounts``), else None."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    here, best, kind = os.path.realpath(path), "", None
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        if (here == point or here.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, kind = point, parts[2]
    return kind if kind in NETWORK_FS else None


class Registry:
    """The clips of one project; open with :meth:`open`, make with :meth:`create`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.journal_mode = ""
        self.journal_note = ""  # why the rollback journal is used instead of WAL, if it is
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1

    # -- lifecycle -----------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, records: Iterable[dict] = (), *, checked: bool = False) -> Registry:
        """Build a new registry holding ``records`` and return it opened. ``checked``: the caller
        has already validated them (a converted clips.json: thousands of records, checked once).

        Built in a temporary file beside ``path`` and renamed in when complete, so a crash leaves
        no registry (the next open builds it again), never half of one. Replaces ``path``.
        """
        path = Path(path)
        records = list(records)
        if not checked:
            _validate(records, path)
        if not path.exists():  # journals of a registry moved aside would be applied to this one
            for stale in (path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal")):
                stale.unlink(missing_ok=True)
        try:
            with atomic_path(path, ".partial") as tmp:
                conn = sqlite3.connect(tmp, isolation_level=None)
                try:
                    conn.executescript(_SCHEMA)
                    with _transaction(conn):
                        conn.executemany(_UPSERT, [_row(r) for r in records])
                    conn.execute(f"PRAGMA user_version = {REGISTRY_VERSION}")
                finally:
                    conn.close()
        except sqlite3.Error as exc:
            raise _error(exc, path) from None
        return cls.open(path)

    @classmethod
    def open(cls, path: str | Path) -> Registry:
        """Open an existing registry (never creates one); checks its version at once."""
        registry = cls(path)
        registry._connection()
        return registry

    def close(self) -> None:
        """Close this process's connection (the last one to close checkpoints and removes the WAL
        file). Also done when the registry is dropped: a sqlite3 connection sits in a reference
        cycle, so without this it would stay open, its files too, until the garbage collector ran."""
        with self._lock:
            if self._conn is not None:
                if self._pid == os.getpid():
                    self._conn.close()
                else:  # inherited through fork: never closed here (that could checkpoint or
                    _INHERITED.append(self._conn)  # unlock under the parent's feet)
            self._conn, self._pid = None, -1

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter exit modules may be gone
            self.close()

    def __getstate__(self) -> dict:  # a Project sent to a worker process: it re-opens there
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        Registry.__init__(self, state["path"])

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        self.close()  # one inherited through fork is set aside, never used here
        if not self.path.is_file():
            raise InputError(self.path, f"clip registry not found: {_WAY_ON}")
        with self._errors():
            # mode=rw: never create an empty database where the registry should be
            conn = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=rw",
                uri=True,
                timeout=BUSY_TIMEOUT_S,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                self._check_version(conn)
                self._set_journal(conn)
                conn.execute("PRAGMA synchronous = FULL")  # a committed clip survives a power cut
            except BaseException:
                conn.close()
                raise
        self._conn, self._pid = conn, os.getpid()  # a forked child gets its own on first use
        return conn

    def _check_version(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > REGISTRY_VERSION:
            raise InputError(
                self.path,
                f"clip registry version {version} was written by a newer "
                f"napari-ultramn (this one reads up to {REGISTRY_VERSION}): upgrade it",
            )
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if version < 1 or "clips" not in tables:
            raise InputError(self.path, f"is not a clip registry (no clips table): {_WAY_ON}")
        while version < REGISTRY_VERSION:
            with _transaction(conn):
                for statement in _MIGRATIONS[version]:
                    conn.execute(statement)
                version += 1
                conn.execute(f"PRAGMA user_version = {version}")

    def _set_journal(self, conn: sqlite3.Connection) -> None:
        fs = network_fs(self.path.parent)
        mode, why = "wal", ""
        if fs:
            mode, why = "delete", f"on a network file system ({fs}), where WAL is unsafe across machines"
        try:
            got = conn.execute(f"PRAGMA journal_mode = {mode}").fetchone()[0].lower()
        except sqlite3.OperationalError as exc:  # e.g. no shared memory; another connection busy
            got, why = conn.execute("PRAGMA journal_mode").fetchone()[0].lower(), f"WAL refused ({exc})"
        if got != "wal" and not why:
            why = "this file system does not support WAL"
        if got != "wal" and got != mode:
            with contextlib.suppress(sqlite3.OperationalError):
                got = conn.execute("PRAGMA journal_mode = delete").fetchone()[0].lower()
        self.journal_mode = got
        if got != "wal" and why and not self.journal_note:
            self.journal_note = (
                f"{self.path}: using SQLite's rollback journal ({got}) instead of WAL: "
                f"{why}; safe, but readers wait while a clip is being added"
            )
            _log.warning(self.journal_note)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """SQLite's exceptions as our errors, naming the file and the way on."""
        try:
            yield
        except sqlite3.Error as exc:
            raise _error(exc, self.path) from None

    @contextlib.contextmanager
    def _use(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._errors():
            yield self._connection()

    # -- writes --------------------------------------------------------------------------
    def upsert(self, records: list[dict]) -> None:
        """Add or replace records (whole), validated, in one transaction; a replaced record keeps
        its place in insertion order."""
        records = list(records)
        if not records:
            return
        _validate(records, self.path)
        with self._use() as conn, _transaction(conn):
            conn.executemany(_UPSERT, [_row(r) for r in records])

    # -- queries -------------------------------------------------------------------------
    def _records(self, where: str = "", args: tuple = (), order: str = PROJECT_ORDER) -> list[dict]:
        with self._use() as conn:
            rows = conn.execute(f"SELECT record FROM clips {where} ORDER BY {order}", args).fetchall()
        return [json.loads(r[0]) for r in rows]

    def all(self, *, insertion_order: bool = False) -> list[dict]:
        """Every record, in ``Project.clips()`` order (or the order they were first added)."""
        return self._records(order="seq" if insertion_order else PROJECT_ORDER)

    def get(self, clip_id: str) -> dict | None:
        found = self._records("WHERE clip_id = ?", (clip_id,))
        return found[0] if found else None

    def find(self, **fields) -> list[dict]:
        """Records whose indexed fields equal the given values (``None`` matches null), in project order."""
        unknown = set(fields) - set(INDEXED) - {"clip_id"}
        if unknown:
            raise ValueError(f"cannot query by {sorted(unknown)}; indexed fields: {INDEXED}")
        where = " AND ".join(f"{k} IS ?" for k in fields)
        return self._records(f"WHERE {where}" if where else "", tuple(fields.values()))

    def summaries(self) -> list[dict]:
        """``clip_id`` and the indexed fields of every clip, in project order, without decoding records."""
        cols = ("clip_id", *INDEXED)
        with self._use() as conn:
            rows = conn.execute(f"SELECT {', '.join(cols)} FROM clips ORDER BY {PROJECT_ORDER}").fetchall()
        return [dict(zip(cols, r)) for r in rows]

    def ids(self) -> list[str]:
        with self._use() as conn:
            return [r[0] for r in conn.execute(f"SELECT clip_id FROM clips ORDER BY {PROJECT_ORDER}")]

    def count(self) -> int:
        with self._use() as conn:
            return conn.execute("SELECT count(*) FROM clips").fetchone()[0]

    # -- audit export ----------------------------------------------------------------------
    def export(self, path: str | Path) -> int:
        """Write every record to ``path`` as a ``clips.json`` (sorted by clip id, as the JSON registry
        always was; schema-checked, atomic), read in one consistent snapshot; a file that already
        says exactly this is left alone. Returns the number of clips."""
        path = Path(path)
        clips = self._records(order="clip_id")
        obj = {"schema_version": 1, "clips": clips}
        text = json.dumps(obj, indent=1) + "\n"  # as napari_ultramn.atomic.atomic_write_json
        with contextlib.suppress(OSError, UnicodeDecodeError):
            if path.read_text(encoding="utf-8") == text:
                return len(clips)  # unchanged (a re-ingest): the file was checked when written
        validate(obj, "clips", path)
        atomic_write_text(path, text)
        return len(clips)


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE``: take the write lock first (waiting the busy timeout), so two writers
    queue instead of failing when one upgrades a read to a write."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _validate(records: list[dict], path: Path) -> None:
    """Each record against the registry schema (only these records, not the whole registry)."""
    validate({"schema_version": 1, "clips": records}, "clips", path)
    twice = sorted(i for i, n in Counter(r["clip_id"] for r in records).items() if n > 1)
    if twice:
        raise InputError(path, f"clip ids given twice in one update: {twice}")


def _error(exc: sqlite3.Error, path: Path) -> Exception:
    """The user-facing error for a SQLite failure on the registry ``path``."""
    text = str(exc)
    if "locked" in text or "busy" in text:
        return ConflictError(
            f"{path}: another process kept the clip registry locked for over "
            f"{BUSY_TIMEOUT_S:.0f} s; run again when it has finished"
        )
    if "readonly" in text or "read-only" in text:
        return OutputError(path, f"cannot write the clip registry: {text}", errno.EROFS)
    if "disk is full" in text:
        return OutputError(path, "cannot write: no space left on the disk", errno.ENOSPC)
    if "unable to open" in text:
        return OutputError(
            path,
            f"cannot open the clip registry ({text}): check that the project "
            "folder is writable (SQLite writes a journal beside it)",
        )
    return InputError(path, f"clip registry is damaged or not a registry ({text}): {_WAY_ON}")
