"""Errors a user sees: one clear message naming the file and the problem."""

from __future__ import annotations

import errno
import os
from pathlib import Path


class UltramnError(Exception):
    """Base of every error we raise on purpose; the CLI prints these without a traceback."""


class InputError(UltramnError, ValueError):
    """Bad input file: corrupt, wrong shape, unsupported, schema-invalid.

    The message always starts with the path so a data manager knows which file to look at.
    """

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)


class SchemaError(InputError):
    """A JSON file (or an object about to be written) violates its schema in ``schemas/``."""


class OutputError(UltramnError, OSError):
    """An output could not be written (disk full, read-only folder, no permission, quota).

    Not an :class:`InputError`: a batch that skips bad input files one by one (ingest) must stop
    here, since every later file would fail the same way. ``errno`` is the system's.
    """

    def __init__(self, path: str | Path | None, problem: str, errno_: int | None = None):
        self.path = None if path is None else Path(path)
        self.problem = problem
        OSError.__init__(self, errno_, problem)
        self.args = (f"{path}: {problem}" if path is not None else problem,)

    def __str__(self) -> str:
        return self.args[0]


class ConflictError(UltramnError):
    """Someone else holds the file (e.g. a second window on the same rater's clip)."""


#: errno values that mean "this output cannot be written here" (not a bug): the CLI reports them
#: in one line even when a library raised them past our writers.
OUTPUT_ERRNOS = {
    errno.ENOSPC: "no space left on the disk",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.EFBIG: "file too large for the file system",
    errno.ENAMETOOLONG: "file name too long",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "is a folder, not a file",
    errno.EEXIST: "already exists",
}


def describe_oserror(exc: OSError) -> str:
    """A short, human problem for an OSError ('no space left on the disk'), without the path."""
    if exc.errno is None:
        return str(exc)
    return OUTPUT_ERRNOS.get(exc.errno) or os.strerror(exc.errno)


def output_error(exc: OSError, path: str | Path | None = None) -> OutputError:
    """The :class:`OutputError` for a failed write of ``path`` (default: the file the OS named)."""
    if isinstance(exc, OutputError):
        return exc
    where = path if path is not None else exc.filename
    return OutputError(where, f"cannot write: {describe_oserror(exc)}", exc.errno)
