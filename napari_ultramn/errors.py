"""Errors a user sees: one clear message naming the file and the problem."""

from __future__ import annotations

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


class ConflictError(UltramnError):
    """Someone else holds the file (e.g. a second window on the same rater's clip)."""
