"""Imaging regions a data manager corrected by hand: ``PROJECT/region_corrections.json``.

Detection (:mod:`napari_ultramn.io.screen_region`) can miss; a person then draws the right
rectangle on the uncropped source frame (the "Imaging region" widget) and it is stored here,
keyed by the source file's sha256 so it follows the file whatever its name or folder. Ingest
applies a correction before anything else and re-crops a clip whose recorded crop differs.
Schema: ``schemas/region_corrections.schema.json``; every write is validated and atomic.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from .errors import InputError
from .io.clip import Region
from .schema import read_json, write_json

FILENAME = "region_corrections.json"
SCHEMA = "region_corrections"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def corrections_path(project_root: str | Path) -> Path:
    return Path(project_root) / FILENAME


def _read(project_root: str | Path) -> dict:
    path = corrections_path(project_root)
    if not path.exists():
        return {"format": "ultramn-region-corrections", "schema_version": 1, "corrections": {}}
    return read_json(path, SCHEMA)


def load_corrections(project_root: str | Path) -> dict[str, Region]:
    """``{source sha256: Region}`` of every correction in the project (empty when none)."""
    path = corrections_path(project_root)
    out = {}
    for sha, entry in _read(project_root)["corrections"].items():
        top, left, bottom, right = entry["region"]
        if bottom <= top or right <= left:
            raise InputError(path, f"correction for {sha[:12]}... is an empty rectangle {entry['region']}")
        out[sha] = Region(top, left, bottom, right)
    return out


def save_correction(project_root: str | Path, sha256: str, region: Region, note: str = "") -> None:
    """Record (or replace) the corrected imaging region of the source file with ``sha256``."""
    path = corrections_path(project_root)
    if not _SHA256.match(str(sha256)):
        raise InputError(path, f"a correction needs the source's sha256 (64 hex digits), got {sha256!r}")
    coords = [int(v) for v in region.as_list()]
    if min(coords) < 0 or region.height <= 0 or region.width <= 0:
        raise InputError(path, f"corrected region {coords} is not a rectangle inside the frame")
    data = _read(project_root)
    data["corrections"][sha256] = {
        "region": coords,
        "note": str(note),
        "saved_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(path, data, SCHEMA)
