"""The ingest mapping CSV: identity, side, plane and imaging region per source file.

Columns (header row, any order, only these): ``file`` (path relative to SOURCE, or a file name that
is unique in the CSV), ``patient_id``, ``side`` (left/right), ``plane``, ``sex``, ``age_band``
(a decade band: ``0-9`` ... ``80-89``, ``90+``), ``site`` (a site name: ingest stores only its
pseudonym) and ``region`` (``x0 y0 x1 y1``: pixel columns ``x0 <= x < x1`` and rows
``y0 <= y < y1`` of the imaging area in the source frame).

The whole CSV is checked before any file is ingested, and any problem refuses it with one line that
names the row: an unknown column, an exact age or a date where a band belongs (they identify a
person, and would otherwise travel into the registry, datasets and their cards), a malformed region.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from napari_ultramn.errors import InputError
from napari_ultramn.io.clip import Region

MAPPING_COLUMNS = ("file", "patient_id", "side", "plane", "sex", "age_band", "site", "region")
#: The age bands ``deid.age_band`` produces: decades, with 90 and over pooled (HIPAA safe harbor).
AGE_BANDS = tuple(f"{lo}-{lo + 9}" for lo in range(0, 90, 10)) + ("90+",)
_SIDES = {"left": "left", "l": "left", "right": "right", "r": "right"}


def parse_region(text: str) -> Region:
    """``'x0 y0 x1 y1'`` (spaces, commas or semicolons between) -> :class:`Region`; ValueError if bad."""
    parts = [p for p in re.split(r"[\s,;]+", text.strip()) if p]
    if len(parts) != 4 or not all(re.fullmatch(r"\d+", p) for p in parts):
        raise ValueError(f"region must be four whole pixel numbers 'x0 y0 x1 y1', got {text!r}")
    x0, y0, x1, y1 = (int(p) for p in parts)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"region {text!r} is empty: it needs x1 > x0 and y1 > y0")
    return Region(top=y0, left=x0, bottom=y1, right=x1)


def _check_row(row: dict) -> dict:
    """Normalised values of one row (empty cells dropped); ValueError naming the bad cell."""
    clean = {k: v.strip() for k, v in row.items() if k != "file" and v and v.strip()}
    if "side" in clean:
        side = _SIDES.get(clean["side"].lower())
        if side is None:
            raise ValueError(f"side must be 'left' or 'right', got {clean['side']!r}")
        clean["side"] = side
    if "age_band" in clean and clean["age_band"].replace(" ", "") not in AGE_BANDS:
        # the value itself is not echoed: it may be an exact age or a birth date
        raise ValueError(
            f"age_band must be a decade band ({', '.join(AGE_BANDS[:2])}, ..., "
            f"{AGE_BANDS[-2]}, 90+); an exact age or a date identifies the person"
        )
    if "age_band" in clean:
        clean["age_band"] = clean["age_band"].replace(" ", "")
    if "region" in clean:
        clean["region"] = parse_region(clean["region"])
    return clean


def _file_key(text: str) -> str:
    return text.strip().replace("\\", "/").removeprefix("./")


def read_mapping(path: str | Path | None) -> dict[str, dict]:
    """The mapping ``file -> {column: value}`` (region as :class:`Region`), checked row by row.

    Keys are the ``file`` cells (relative paths with ``/``) and, where unique in the CSV, their
    file names, so ``IM0001.dcm`` in two folders needs its folder to be matched.
    """
    if path is None:
        return {}
    path = Path(path)
    try:
        # utf-8-sig: spreadsheet programs start CSVs with a byte-order mark
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = [h.strip().lower() for h in next(reader, [])]
            rows = [(reader.line_num, cells) for cells in reader if any(c.strip() for c in cells)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(path, f"cannot read mapping CSV ({exc})") from None
    unknown = [h for h in header if h not in MAPPING_COLUMNS]
    if unknown or "file" not in header or len(set(header)) != len(header):
        problem = (
            f"has unknown column(s) {', '.join(map(repr, unknown))}"
            if unknown
            else "needs a 'file' column"
            if "file" not in header
            else "repeats a column"
        )
        raise InputError(path, f"mapping CSV {problem}; its columns are {', '.join(MAPPING_COLUMNS)}")
    mapping: dict[str, dict] = {}
    names: dict[str, list[str]] = {}
    for line, cells in rows:
        if len(cells) > len(header):
            raise InputError(path, f"line {line}: {len(cells)} cells for {len(header)} columns")
        row = dict(zip(header, cells, strict=False))
        key = _file_key(row.get("file") or "")
        if not key:
            raise InputError(path, f"line {line}: the 'file' cell is empty")
        if key in mapping:
            raise InputError(path, f"line {line}: file {key!r} is listed twice")
        try:
            mapping[key] = _check_row(row)
        except ValueError as exc:
            raise InputError(path, f"line {line} ({key}): {exc}") from None
        names.setdefault(Path(key).name, []).append(key)
    for name, keys in names.items():
        if len(keys) == 1 and name not in mapping:
            mapping[name] = mapping[keys[0]]
    return mapping


def mapping_row(mapping: dict[str, dict], rel: str) -> dict:
    """The row for a source at ``rel`` (relative to SOURCE, ``/``-separated), or ``{}``."""
    return mapping.get(rel) or mapping.get(Path(rel).name) or {}
