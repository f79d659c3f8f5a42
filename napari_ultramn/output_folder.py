"""An output folder that a command replaces as a whole: one writer at a time, a replace that
survives a kill at any instant, leftovers of killed runs cleaned, and nothing else ever deleted.

Everything lives beside the output ``OUT`` in its parent folder::

    OUT.lock                    held with fcntl.flock while a run writes OUT (the kernel releases it
                                when the process dies, even on kill -9); records host, pid, process
                                start time and command for the message a second writer gets
    .OUT.building-<id>/         the new version, written completely before it replaces OUT
    .OUT.old-<id>/              the previous version, for the instant between the two renames
    .OUT.replace.json           the journal of a replace in progress (schemas/replace_journal)

A replace is: write the journal (naming the building and old folders), rename OUT to the old name,
rename the building folder to OUT, delete the old one, delete the journal. Whoever takes the lock
next and finds a journal finishes the job: the new version was complete before the journal was
written, so a rename that did not happen is done (or, if the new version has vanished, the old one
is put back). Then folders and temporary files named after OUT whose run is gone are deleted and
counted ("removed 2 leftovers of interrupted runs (1.2 GB)"): only while this run holds the lock,
so never under a live run.

What may be replaced is the caller's decision (a dataset checks its signed manifest, see
:func:`sign`); :meth:`OutputFolder.refuse_dangerous` refuses whatever the caller says for the file
system root, the home folder, the current folder, the installation and the caller's inputs.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from .atomic import fsync_dir
from .errors import ConflictError, InputError
from .holders import describe_holder, holder_info, holder_state, read_holder, unlock_hint

try:
    import fcntl
except ImportError:  # Windows: the lock falls back to checking the recorded holder
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

#: a keyed hash brands a manifest as written by this tool; the key is public, so this tells our
#: folders from a user's (a stray ``manifest.json``), it does not authenticate against forgery
_SIGNATURE_KEY = b"napari-ultramn signed manifest v1"
_SIGNATURE_PREFIX = "hmac-sha256:"
#: errors of file systems without flock (some network mounts): fall back to the holder check
_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


def sign(manifest: dict) -> str:
    """Signature of a manifest: HMAC-SHA256 of its canonical JSON without the ``signature`` key."""
    body = {k: v for k, v in manifest.items() if k != "signature"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return _SIGNATURE_PREFIX + hmac.new(_SIGNATURE_KEY, text.encode("utf-8"), hashlib.sha256).hexdigest()


def signature_problem(manifest) -> str | None:
    """None when the manifest carries a valid signature, else what is wrong, in words."""
    if not isinstance(manifest, dict) or "signature" not in manifest:
        return "has no signature (written by hand or by an older version)"
    if not hmac.compare_digest(str(manifest["signature"]), sign(manifest)):
        return "has a signature that does not match its content (edited or corrupt)"
    return None


def is_temporary(name: str) -> bool:
    """Names of :mod:`napari_ultramn.atomic`'s temporary files (hidden, ``.tmp`` / ``.partial``)."""
    return name.startswith(".") and name.endswith((".tmp", ".partial"))


def human_bytes(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def listing(folder: Path, limit: int = 6) -> str:
    """``4 entries (a.txt, b/, manifest.json, ...)`` for a refusal message."""
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    shown = ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")
    return f"{len(names)} entr{'y' if len(names) == 1 else 'ies'} ({shown})"


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _size(path: Path) -> int:
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, f)).st_size
    return total


def finish_interrupted_replace(path: str | Path) -> list[str]:
    """For commands that read an output: finish (or roll back) a replace of it that a crash
    interrupted, unless a live run holds it. Cheap when there is nothing to do; returns the reports."""
    folder = OutputFolder(path)
    if not _exists(folder.journal_path):
        return []
    notes: list[str] = []
    folder.notify = notes.append
    with contextlib.suppress(ConflictError), folder:
        pass
    return notes


class OutputFolder:
    """The lock, journaled replace and cleanup of one output folder (see the module docstring).

    Use as a context manager: entering takes the lock (:class:`ConflictError` naming the holder if
    another run has it), finishes an interrupted replace and removes leftovers; leaving releases it.
    ``notify`` receives the one-line reports (default: the log).
    """

    def __init__(self, path: str | Path, *, command: str | None = None, notify: Callable[[str], None] | None = None):
        self.given = Path(path)  # as the user wrote it, for messages
        self.path = Path(os.path.abspath(path))
        self.parent, name = self.path.parent, self.path.name
        self.lock_path = self.parent / f"{name}.lock"
        self.journal_path = self.parent / f".{name}.replace.json"
        self.command = command
        self.notify = notify or log.info
        self.info: dict | None = None
        self._fd: int | None = None
        self._leftover = re.compile(rf"^\.{re.escape(name)}\.(building|old)-[0-9a-f]+$")
        self._temporary = re.compile(rf"^\.\.?{re.escape(name)}\..*\.(tmp|partial)$")

    # -- lock -------------------------------------------------------------------------------
    def __enter__(self) -> OutputFolder:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> OutputFolder:
        try:
            self.parent.mkdir(parents=True, exist_ok=True)
            self._lock()
        except OSError as exc:  # a read-only or full folder: say so of the output the user named
            from .errors import output_error

            raise output_error(exc, self.given) from None
        try:
            self._recover()
            self._remove_leftovers()
        except BaseException:
            self.release()
            raise
        return self

    def _lock(self) -> None:
        info = holder_info(self.command, output=str(self.path))
        for _attempt in range(10):
            # 0o666 less the umask: a teammate's later run must be able to open it to lock it
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                free = self._try_flock(fd)
                if not free:
                    raise ConflictError(self._conflict_message())
                # a holder that released meanwhile unlinked the file we locked: lock the new one
                st, now = os.fstat(fd), os.stat(self.lock_path)
                if (st.st_dev, st.st_ino) != (now.st_dev, now.st_ino):
                    os.close(fd)
                    continue
            except FileNotFoundError:
                os.close(fd)
                continue
            except BaseException:
                os.close(fd)
                raise
            data = json.dumps(info).encode("utf-8")
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, data)
            os.fsync(fd)
            self._fd, self.info = fd, info
            return
        raise ConflictError(f"{self.path}: could not take the lock {self.lock_path} (other processes keep taking it)")

    def _try_flock(self, fd: int) -> bool:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False
            except OSError as exc:
                if exc.errno not in _NO_FLOCK:
                    raise
        # no kernel lock here: trust the recorded holder unless it is provably gone
        holder = read_holder(self.lock_path)
        return holder is None or holder_state(holder) == "stale"

    def _conflict_message(self) -> str:
        holder = read_holder(self.lock_path)
        for _ in range(3):  # the holder may be between taking the lock and writing who it is
            if holder is not None:
                break
            time.sleep(0.05)
            holder = read_holder(self.lock_path)
        advice = "wait for it to finish or stop it" if holder_state(holder) == "live" else unlock_hint(self.lock_path)
        return f"{self.path}: another run is writing this folder: {describe_holder(holder)}; {advice}"

    def release(self) -> None:
        """Unlink the lock file while still holding it, then unlock (see :meth:`_lock`)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            current = read_holder(self.lock_path)
            if current is not None and current.get("token") == (self.info or {}).get("token"):
                self.lock_path.unlink(missing_ok=True)
        finally:
            os.close(fd)

    # -- replace ----------------------------------------------------------------------------
    def new_building_dir(self) -> Path:
        """A fresh hidden folder beside the output to write the new version into."""
        self._require_lock()
        path = self.parent / f".{self.path.name}.building-{secrets.token_hex(4)}"
        path.mkdir()
        return path

    def install(self, building: str | Path) -> None:
        """Replace the output by the finished ``building`` folder (journaled; see the docstring)."""
        from .schema import write_json

        self._require_lock()
        building = Path(building)
        had_old = _exists(self.path)
        old = self.parent / f".{self.path.name}.old-{secrets.token_hex(4)}"
        write_json(
            self.journal_path,
            {
                "format": "ultramn-replace-journal",
                "target": self.path.name,
                "building": building.name,
                "old": old.name,
                "had_old": had_old,
            },
            "replace_journal",
        )
        try:
            if had_old:
                os.replace(self.path, old)
            os.replace(building, self.path)
        except BaseException as exc:  # still alive (a kill never gets here): undo now
            self._undo(had_old, old)
            if isinstance(exc, OSError):
                kept = "the previous version is kept" if had_old else "nothing was written"
                raise InputError(self.path, f"could not be put in place ({exc.strerror or exc}); {kept}") from None
            raise
        fsync_dir(self.parent)
        if had_old:
            _remove(old)
        self.journal_path.unlink()
        fsync_dir(self.parent)

    def _undo(self, had_old: bool, old: Path) -> None:
        try:
            if had_old and _exists(old) and not _exists(self.path):
                os.replace(old, self.path)
            self.journal_path.unlink(missing_ok=True)
        except OSError:  # the journal stays: the next run finishes or rolls back
            pass

    def _recover(self) -> None:
        if not _exists(self.journal_path):
            return
        from .schema import read_json

        journal = read_json(self.journal_path, "replace_journal")
        names = (journal["building"], journal["old"])
        if journal["target"] != self.path.name or not all(self._leftover.match(n) for n in names):
            raise InputError(
                self.journal_path,
                f"is not the journal of a replace of {self.path.name}; nothing was changed (move it away by hand)",
            )
        new, old = (self.parent / n for n in names)
        if _exists(new):
            if not _exists(self.path) or (journal["had_old"] and not _exists(old)):
                if _exists(self.path):
                    os.replace(self.path, old)
                os.replace(new, self.path)
                self.notify(f"{self.path}: finished a replace that was interrupted (the new version is in place)")
            elif not journal["had_old"]:
                _remove(new)
                self.notify(
                    f"{self.path}: discarded an interrupted replace ({self.path.name} was "
                    "created meanwhile and is kept)"
                )
            else:
                raise InputError(
                    self.path,
                    f"an interrupted replace left {new.name} and {old.name} "
                    "beside it and something new in its place; nothing was changed "
                    "(keep one by hand)",
                )
        elif not _exists(self.path) and _exists(old):
            os.replace(old, self.path)
            self.notify(f"{self.path}: rolled back a replace that was interrupted (the previous version is back)")
        if _exists(old) and _exists(self.path):
            _remove(old)
        self.journal_path.unlink()
        fsync_dir(self.parent)

    def _remove_leftovers(self) -> None:
        """Delete folders and temporaries of runs of this output that died (we hold the lock)."""
        found = [p for p in self.parent.iterdir() if self._leftover.match(p.name) or self._temporary.match(p.name)]
        if not found:
            return
        total = 0
        for p in found:
            total += _size(p)
            _remove(p)
        n = len(found)
        self.notify(
            f"removed {n} leftover{'s' if n != 1 else ''} of interrupted runs ({human_bytes(total)}) beside {self.path}"
        )

    def _require_lock(self) -> None:
        if not self.held:
            raise RuntimeError(f"{self.path}: take the lock first (use OutputFolder as a context manager)")

    # -- what may be replaced -------------------------------------------------------------------
    def refuse_dangerous(self, protect: Iterable[tuple[str | Path, str]] = ()) -> None:
        """Raise :class:`InputError` if replacing the output would delete something precious: the
        file system root, the home folder, the current folder, this installation, or a ``protect``
        path ``(path, what it is)``, or a folder containing one of them."""
        import napari_ultramn

        guarded = []
        with contextlib.suppress(RuntimeError, KeyError):
            guarded.append((Path.home(), "your home folder"))
        guarded += [
            (Path.cwd(), "the current folder"),
            (Path(napari_ultramn.__file__).parent, "the napari-ultramn installation"),
            *((Path(p), what) for p, what in protect),
        ]
        targets = {self.path, self.path.resolve()}
        for target in targets:
            if target.parent == target:
                raise InputError(self.path, "is the file system root; refusing to replace it, nothing was deleted")
            for p, what in guarded:
                for q in {Path(os.path.abspath(p)), p.resolve()}:
                    if q == target or target in q.parents:
                        raise InputError(
                            self.path, f"is {what} or contains it ({q}); refusing to replace it, nothing was deleted"
                        )
