"""One lock file per rater and clip, so two windows never autosave over each other.

``annotations/<clip_id>/<rater>.lock`` holds JSON ``{pid, hostname, start_time, acquired, command,
token, who}`` (:func:`napari_ultramn.holders.holder_info`). The file is written completely under a
temporary name and then hard-linked to the lock name: ``os.link`` fails if the name exists, so
taking a lock is atomic and a lock file is never seen half-written.

A lock whose process is gone *on this host*, or whose pid now belongs to a process that started
later (pid reused after a crash or a reboot), is stale and is taken over. A lock held by a live
process is a conflict: the second opener gets :class:`ConflictError` naming who holds it and since
when. A lock written on another host cannot be checked, so it is respected too, and the message
gives the exact command that breaks it (``ultramn unlock PATH``) once that session is known to be over.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from ..errors import ConflictError
from ..holders import holder_info, holder_state, pid_alive, unlock_hint
from ..holders import read_holder as read_lock

__all__ = ["AnnotationLock", "pid_alive", "read_lock"]


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
        info = holder_info(who=who)
        for _attempt in range(3):
            if _try_link(path, info):
                return cls(path, info)
            holder = read_lock(path)
            if holder is not None and holder_state(holder) != "stale":
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


def _remove_if_unchanged(path: Path, holder: dict | None) -> None:
    current = read_lock(path)
    if current == holder:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _conflict_message(path: Path, holder: dict, who: str) -> str:
    what = f"{who} is" if who else "this annotation is"
    advice = (
        "close it there first" if holder_state(holder) == "live" else f"close it there first, or {unlock_hint(path)}"
    )
    return (
        f"{what} already open in another window (process {holder.get('pid')} on "
        f"{holder.get('hostname')}, since {holder.get('acquired')}); {advice}. Lock file: {path}"
    )
