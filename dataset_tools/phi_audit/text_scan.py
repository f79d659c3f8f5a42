"""Searching values and text files: JSON, JSON lines, CSV, HTML, Markdown and plain text, and the
printable strings inside any other binary file.

:class:`Scanner` holds the matcher and the hits. Every string it prints (file paths, JSON paths,
CSV column names) passes through :meth:`Scanner.redact` first, so a hit in a file named after a
patient does not put the name in the audit log.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import re
from pathlib import Path

from .identifiers import DATE_KINDS, Matcher, mask_value
from .patterns import find_patterns
from .report import Hit

_DATA_URI = re.compile(r"data:([\w/+.-]+);base64,([A-Za-z0-9+/=\s]+)")
_PRINTABLE = re.compile(rb"[\x20-\x7e]{4,}")
_CHUNK = 8 << 20
_NUMBER = re.compile(r"\s*[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?\s*")


class Scanner:
    """Collects hits for one audit."""

    def __init__(self, matcher: Matcher, *, pixels: bool = True):
        self.matcher = matcher
        self.pixels = pixels  # search frames and images for burned-in text
        self.hits: list[Hit] = []
        self._seen: set[tuple] = set()
        #: (path, dataset name, file, where) of HDF5 frame stacks left for worker processes; None:
        #: searched here, as they are found
        self.deferred_frames: list[tuple[str, str, str, str]] | None = None

    # ------------------------------------------------------------ redaction and hits
    def redact(self, text: str) -> str:
        """``text`` with every identifier and identifier-shaped span masked."""
        spans = [(m.start, m.end) for m in self.matcher.find(text)]
        spans += [(p.start, p.end) for p in find_patterns(text)]
        out, pos = [], 0
        for start, end in sorted(spans):
            if start < pos:
                continue
            out += [text[pos:start], mask_value(text[start:end])]
            pos = end
        return "".join(out) + text[pos:]

    def add(self, category: str, file: str, location: str, what: str) -> None:
        hit = Hit(category, self.redact(file), self.redact(location), self.redact(what))
        key = (hit.category, hit.file, hit.location, hit.what)
        if key not in self._seen:
            self._seen.add(key)
            self.hits.append(hit)

    def value(
        self,
        text: str,
        file: str,
        location: str,
        key: str | None = None,
        *,
        patterns: bool = True,
        pn_element: bool = False,
        dates: bool = True,
        shifted: bool = False,
    ) -> None:
        """Search one value stored under ``key``; a value that is JSON text is walked too.

        ``shifted``: the value is a date shifted on purpose (also any key ending ``_shifted``):
        one participant's shifted date may well be another's real one, so the list's dates are
        not matched there."""
        if not isinstance(text, str) or not text.strip():
            return
        if _NUMBER.fullmatch(text):  # most cells of our tables: only an ID or a compact date fits
            if len(text.strip()) < 4 or not text.strip().lstrip("+-").isdigit():
                return  # a measurement, not an ID
            patterns = patterns and len(text.strip()) == 8
        shifted = shifted or str(key or "").endswith("_shifted")
        for m in self.matcher.find(text):
            if shifted and m.identifier.kind in DATE_KINDS:
                continue
            self.add("identifier", file, location, f"{m.identifier.kind} ({m.what}) {m.identifier.masked()}")
        if patterns:
            for p in find_patterns(text, key, pn_element=pn_element, dates=dates):
                self.add("pattern", file, location, f"{p.what} {mask_value(text[p.start : p.end])}")
        stripped = text.strip()
        if stripped[:1] in "{[" and len(stripped) > 1:
            try:
                obj = json.loads(stripped)
            except ValueError:
                return
            self.json_obj(obj, file, location + " $")

    # ------------------------------------------------------------ structured text
    def json_obj(self, obj, file: str, path: str = "$", key: str | None = None) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                self.value(str(k), file, f"{path} (key)", None)
                self.json_obj(v, file, f"{path}.{k}", str(k))
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                self.json_obj(v, file, f"{path}[{i}]", key)
        elif isinstance(obj, str):
            self.value(obj, file, path, key)
        elif isinstance(obj, int) and not isinstance(obj, bool) and abs(obj) >= 1000:
            self.value(str(obj), file, path, key, patterns=False)  # an ID stored as a number

    def json_file(self, path: Path, file: str) -> None:
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            return self.text_file(path, file)  # not JSON after all: search it as text
        self.json_obj(obj, file)

    def jsonl_file(self, path: Path, file: str) -> None:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for n, line in enumerate(fh, 1):
                try:
                    obj = json.loads(line)
                except ValueError:
                    self.value(line, file, f"line {n}")  # a half-written last line, say
                    continue
                self.json_obj(obj, file, f"line {n} $")

    def csv_file(self, path: Path, file: str) -> None:
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            sample = fh.read(8192)
            fh.seek(0)
            delimiter = "\t" if path.suffix.lower() == ".tsv" or sample.count("\t") > sample.count(",") else ","
            reader = csv.reader(fh, delimiter=delimiter)
            header: list[str] = []
            for row in reader:
                if not header:
                    header = row
                    for c, name in enumerate(row, 1):
                        self.value(name, file, f"header, column {c}")
                    continue
                n = reader.line_num
                for c, cell in enumerate(row):
                    name = header[c] if c < len(header) else f"#{c + 1}"
                    self.value(cell, file, f"row {n}, column '{name}'", name)

    def text_file(self, path: Path, file: str, *, is_html: bool = False, on_image=None) -> None:
        """Line by line. In HTML, entities are decoded and embedded (base64) images are handed
        to ``on_image(data: bytes, where: str)`` instead of being searched as text."""
        with open(path, encoding="utf-8", errors="replace") as fh:
            for n, line in enumerate(fh, 1):
                if is_html:
                    for k, m in enumerate(_DATA_URI.finditer(line)):
                        if on_image is not None and m.group(1).startswith("image/"):
                            try:
                                data = base64.b64decode(m.group(2))
                            except ValueError:
                                continue
                            on_image(data, f"line {n}, embedded image {k + 1}")
                    line = html.unescape(_DATA_URI.sub(" ", line))
                self.value(line, file, f"line {n}")

    def binary_strings(self, path: Path, file: str) -> None:
        """Identifiers (not patterns: random bytes make dates) in printable runs of a binary file."""
        offset = 0
        with open(path, "rb") as fh:
            tail = b""
            while chunk := fh.read(_CHUNK):
                data = tail + chunk
                for m in _PRINTABLE.finditer(data):
                    text = m.group().decode("ascii")
                    for hit in self.matcher.find(text):
                        self.add(
                            "identifier",
                            file,
                            f"byte {offset - len(tail) + m.start()}",
                            f"{hit.identifier.kind} ({hit.what}) {hit.identifier.masked()}",
                        )
                tail = data[-256:]
                offset += len(chunk)


def looks_like_text(path: Path) -> bool:
    """UTF-8 without NUL bytes in the first 8 KiB."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8192)
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start > len(head) - 4 and b"\0" not in head  # a character cut at the edge
    except OSError:
        return False
    return b"\0" not in head
