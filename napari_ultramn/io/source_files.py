"""The files a clip's source is made of, and their identity.

A folder source lists its visible files in natural order (``frame_2`` before ``frame_10``); a
detached header (MetaImage ``.mhd``, NRRD ``.nhdr``) has its pixels in other files, which the
source's sha256 must cover, or two recordings with the same header would look identical.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from ..errors import InputError


def natural_key(name: str) -> list:
    """Sort key that compares digit runs as numbers: 'f2' < 'f10'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def visible_files(folder: Path) -> list[Path]:
    """Files directly in ``folder``, hidden ones and DICOMDIR skipped, in natural name order."""
    files = [
        p for p in Path(folder).iterdir() if p.is_file() and not p.name.startswith(".") and p.name.lower() != "dicomdir"
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file (with a detached header's data files), or of all files in a folder
    (sorted by name, content only)."""
    path = Path(path)
    h = hashlib.sha256()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
    else:  # a detached header (.mhd, .nhdr) and the files holding its pixels
        files = [path, *data_files(path)]
    for p in files:
        with open(p, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()


_MAX_HEADER_LINE = 1 << 16
_HEADER_KEY = re.compile(r"[\w.\-\[\]]+")


def read_metaimage_header(path: Path) -> tuple[dict[str, str], int]:
    """``(fields, header_bytes)`` of a MetaImage file; raises :class:`InputError` naming the
    problem for anything that is not a well-formed header."""
    fields: dict[str, str] = {}
    with open(path, "rb") as fh:
        for number in range(1, 10_000_000):
            raw = fh.readline(_MAX_HEADER_LINE)
            if not raw:
                raise InputError(path, "MetaImage header has no ElementDataFile line (file cut off?)")
            line = raw.decode("latin-1").strip()
            if not line:
                continue
            key, sep, value = line.partition("=")
            if not sep or not _HEADER_KEY.fullmatch(key.strip()):
                raise InputError(path, f"MetaImage header line {number} is not 'Key = Value' ({line[:40]!r})")
            fields[key.strip()] = value.strip()
            if key.strip() == "ElementDataFile":
                return fields, fh.tell()
    raise InputError(path, "MetaImage header never ends")  # pragma: no cover


def data_files(path: str | Path) -> list[Path]:
    """The files holding a detached header's pixels (``.mhd`` -> its ``.raw``, ``.nhdr`` -> its
    ``data file``, also LIST and ``name%03d.raw first last step`` forms), so that a clip's sha256
    covers its pixels, not only its header. ``[]`` when the pixels are in the file itself."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".mhd":
            fields, header_bytes = read_metaimage_header(path)
            spec = fields.get("ElementDataFile", "")
            with open(path, "rb") as fh:  # a LIST's names follow; LOCAL pixels are never read
                fh.seek(header_bytes)
                after_header = fh.read() if spec.upper().startswith("LIST") else b""
        elif suffix == ".nhdr":  # a LIST's names are the lines after its "data file" line
            lines = path.read_text("latin-1").splitlines()
            at = next(i for i, line in enumerate(lines) if line.split(":")[0] in ("data file", "datafile"))
            spec = lines[at].split(":", 1)[1]
            after_header = "\n".join(lines[at + 1 :]).encode("latin-1")
        else:
            return []
        parts = spec.split()
        if not parts or parts[0].upper() == "LOCAL":
            return []
        if parts[0].upper() == "LIST":  # one file name a line after the header
            names = after_header.decode("latin-1").split()
        elif len(parts) >= 4 and "%" in parts[0]:
            first, last, step = (int(v) for v in parts[1:4])
            names = [parts[0] % k for k in range(first, last + (1 if step > 0 else -1), step or 1)]
        else:
            names = [spec.strip()]
    except (OSError, InputError, ValueError, TypeError, StopIteration):
        return []
    return [path.parent / name for name in names if (path.parent / name).is_file()]
