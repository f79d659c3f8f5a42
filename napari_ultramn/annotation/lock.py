"""One lock file per rater and clip, so two windows never autosave over each other.

``annotations/<clip_id>/<rater>.lock`` holds JSON ``{pid, hostname, acquired, token}``. The file is
written completely under a temporary name and then hard-linked to the lock name: ``os.link`` fails
if the name exists, so taking a lock is atomic and a lock file is never seen half-written.

A lock whose process is dead *on this host* is stale (a crashed or killed session) and is taken
over. A lock held by a live process, or by another host (we cannot check its pid), is a conflict:
the second opener gets :class:`ConflictError` naming who holds it and since when.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
import tempfile
import uuid
from pathlib import Path

from ..errors import ConflictError


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (signal 0 probes without killing)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


class AnnotationLock:
    """A held lock; release with :meth:`release` or use as a context manager."""

    def __init__(self, path: Path, info: dict):
        self.path = path
        self.info = info
        self.held = True

    @classmethod
    def acquire(cls, path: str | Path, *, who: str = "") -> AnnotationLock:
        """Take the lock at ``path`` or raise :class:`ConflictError` naming the holder.

        ``who`` (e.g. the rater and clip) only goes into the error message of a later opener.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        info = {
            "pid": os.getpid(),
            "hostname": socket.gethostname(),
            "acquired": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "token": uuid.uuid4().hex,
            "who": who,
        }
        for _attempt in range(3):
            if _try_link(path, info):
                return cls(path, info)
            holder = read_lock(path)
            if holder is not None and not _is_stale(holder):
                raise ConflictError(_conflict_message(path, holder, who))
            # Stale or unreadable: remove it, but only if it is still the same file we judged.
            _remove_if_unchanged(path, holder)
        raise ConflictError(f"{path}: could not take the lock (another process keeps taking it)")

    def release(self) -> None:
        """Remove the lock file if it is still ours (never someone else's after a takeover)."""
        if not self.held:
            return
        self.held = False
        current = read_lock(self.path)
        if current is not None and current.get("token") == self.info["token"]:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def __enter__(self) -> AnnotationLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self):  # best effort if a session is garbage-collected without close()
        with contextlib.suppress(Exception):
            self.release()


def read_lock(path: str | Path) -> dict | None:
    """The holder's info, or ``None`` if there is no lock or it cannot be parsed."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def _try_link(path: Path, info: dict) -> bool:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(info, fh)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _is_stale(holder: dict) -> bool:
    if holder.get("hostname") != socket.gethostname():
        return False  # cannot see processes on other machines: assume alive
    try:
        return not pid_alive(int(holder.get("pid", -1)))
    except (TypeError, ValueError):
        return True


def _remove_if_unchanged(path: Path, holder: dict | None) -> None:
    current = read_lock(path)
    if current == holder:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _conflict_message(path: Path, holder: dict, who: str) -> str:
    what = f"{who} is" if who else "this annotation is"
    return (
        f"{what} already open in another window (process {holder.get('pid')} on "
        f"{holder.get('hostname')}, since {holder.get('acquired')}); close it there first. "
        f"Lock file: {path}"
    )
