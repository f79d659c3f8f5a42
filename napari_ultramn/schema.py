"""JSON Schemas of every file we write (``schemas/*.schema.json``), checked on read and write."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from .atomic import atomic_write_json
from .errors import InputError, SchemaError

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"


@functools.cache
def _validator(name: str):
    import jsonschema

    path = SCHEMA_DIR / f"{name}.schema.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def validate(obj: Any, schema_name: str, path: str | Path | None = None) -> None:
    """Raise :class:`SchemaError` naming ``path`` and the first (deepest) violation."""
    import jsonschema

    errors = sorted(_validator(schema_name).iter_errors(obj), key=lambda e: e.path)
    if errors:
        err = jsonschema.exceptions.best_match(errors)
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise SchemaError(path, f"does not match schema '{schema_name}' at {where}: {err.message}")


def read_json(path: str | Path, schema_name: str) -> Any:
    """Read and validate a JSON file; any problem becomes one :class:`InputError`."""
    obj = load_json(path)
    validate(obj, schema_name, path)
    return obj


def load_json(path: str | Path) -> Any:
    """Parse a JSON file without validating it; any problem becomes one :class:`InputError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot be read ({exc})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    return obj


def write_json(path: str | Path, obj: Any, schema_name: str) -> None:
    """Validate, then write atomically: an invalid object never reaches the disk."""
    validate(obj, schema_name, path)
    atomic_write_json(path, obj)
