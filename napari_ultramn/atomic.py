"""Atomic file writes: a crash at any moment leaves either the old or the new file, never half.

Write to a temporary file in the same directory, flush and fsync it, ``os.replace`` it over the
target (atomic on POSIX and Windows), then fsync the directory so the rename itself survives a
power cut.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from .errors import OutputError, output_error


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: mkstemp creates files 0600; finished files get the mode a plain open() would give them, so a
#: report or project written by one team member stays readable to the others.
_FILE_MODE = 0o666 & ~_current_umask()


def fsync_dir(directory: Path) -> None:
    """Make a rename or link in ``directory`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_files(paths: Iterable[str | Path]) -> None:
    """Flush files already written (closed) by a library to the disk, e.g. HDF5 files before a
    manifest says they are complete."""
    for path in paths:
        with open(path, "rb+") as fh:
            os.fsync(fh.fileno())


#: errno values only a write can raise: an OSError with one of these inside a writing block is this
#: output's failure, never an input's, so it is reported as an OutputError naming the output.
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _make_temp(path: Path, suffix: str) -> tuple[int, str]:
    """Create the folder and a temporary file beside ``path``; a folder we cannot write to (read-
    only, no permission, a file in the way) is one OutputError naming ``path``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except FileExistsError:  # mkdir met a file where a folder of the path should be
        raise OutputError(path, "cannot write: a part of the path is a file, not a folder", errno.ENOTDIR) from None
    except OSError as exc:
        raise output_error(exc, path) from None


@contextlib.contextmanager
def _removed_on_error(tmp_name: str | Path, path: Path) -> Iterator[None]:
    """Remove the temporary file if the block fails; a write-only errno becomes an OutputError."""
    try:
        yield
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        if isinstance(exc, OSError) and not isinstance(exc, OutputError) and exc.errno in _WRITE_ERRNOS:
            raise output_error(exc, path) from None
        raise


def _finish(tmp_name: str | Path, path: Path, exclusive: bool = False) -> None:
    if exclusive:  # a hard link fails if the name is taken: FileExistsError, nothing replaced
        try:
            os.link(tmp_name, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
        return
    try:
        os.replace(tmp_name, path)
    except OSError as exc:  # e.g. ``path`` is a folder
        raise output_error(exc, path) from None


@contextlib.contextmanager
def atomic_open(
    path: str | Path, suffix: str = ".tmp", *, mode: int | None = None, exclusive: bool = False
) -> Iterator[BinaryIO]:
    """Open a binary file whose content appears at ``path`` only when the block ends cleanly.

    A full disk, a quota or a folder we may not write to ends in one :class:`OutputError` naming
    ``path``, with the temporary file removed. ``mode``: the file's permissions, set before a byte
    is written (default: what a plain open() gives; 0o600 for secrets). ``exclusive``: never replace
    an existing ``path`` (raises FileExistsError at the end of the block, nothing changed).
    """
    path = Path(path)
    fd, tmp_name = _make_temp(path, suffix)
    with _removed_on_error(tmp_name, path):
        os.fchmod(fd, _FILE_MODE if mode is None else mode)
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        _finish(tmp_name, path, exclusive)
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes, *, mode: int | None = None, exclusive: bool = False) -> bool:
    """Write ``data`` atomically (see :func:`atomic_open`); False when ``exclusive`` and ``path``
    already exists (then nothing was written)."""
    try:
        with atomic_open(path, mode=mode, exclusive=exclusive) as fh:
            fh.write(data)
    except FileExistsError:
        if not exclusive:
            raise
        return False
    return True


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, *, indent: int | None = 1) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = ".partial") -> Iterator[Path]:
    """Yield a temporary path next to ``path`` for libraries that write by name (h5py, pydicom).

    The finished file is fsynced and renamed over ``path``; on error the temporary is removed.
    Temporary names start with '.' and end with ``suffix`` so they never look complete.
    """
    path = Path(path)
    fd, tmp_name = _make_temp(path, suffix)
    os.fchmod(fd, _FILE_MODE)
    os.close(fd)
    tmp = Path(tmp_name)
    with _removed_on_error(tmp, path):
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        _finish(tmp, path)
    fsync_dir(path.parent)


#: Temporary names of this module (``.<name>.<random>.tmp`` / ``.partial``).
_TEMPORARY = re.compile(r"^\..+\.(tmp|partial)$")


def remove_stale_temporaries(folder: str | Path, older_than_s: float = 3600.0) -> tuple[int, int]:
    """Delete temporary files a killed writer left under ``folder``; returns ``(files, bytes)``.

    Only files untouched for ``older_than_s`` go, so a writer still at work (an annotator
    autosaving beside an ingest) never loses the file it is writing.
    """
    import time

    now, removed, freed = time.time(), 0, 0
    for path in Path(folder).rglob(".*"):
        try:
            st = path.lstat()
            if not _TEMPORARY.match(path.name) or not path.is_file() or now - st.st_mtime < older_than_s:
                continue
            path.unlink()
        except OSError:
            continue  # gone already, or not ours to delete: leave it
        removed, freed = removed + 1, freed + st.st_size
    return removed, freed
