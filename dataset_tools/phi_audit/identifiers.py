"""The identifiers to look for, and a matcher that finds them in any text.

Ingest keeps the raw values it saw (names, IDs, dates, institutions) in
``PROJECT/.secret/identifiers.json`` (docs: contract D)::

    {"schema_version": 1, "identifiers": [{"kind": "patient_name", "value": "MUELLER^ANNA"}, ...]}

A user may instead give a CSV with columns ``kind,value``. Each identifier becomes a few
*variants* (token sequences): a name also as "First Last", "Last First" and its family name
alone; a date in every rendering scanners and people write; an ID also with its punctuation
dropped. Text is matched token by token after Unicode folding, case folding and splitting at
anything that is not a letter or digit, so "Mueller, Anna", "ANNA MUELLER" and "mueller_anna"
all match ``MUELLER^ANNA``, and an ID matches only as a whole token (``N1234567`` is not found
inside ``XN12345678``). The matcher looks up every run of up to a few tokens in one dict, so a
project with thousands of participants costs no more per string than one with ten.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from napari_ultramn.errors import InputError

KINDS = ("patient_id", "patient_name", "birth_date", "study_date", "institution", "site", "accession", "other")
DATE_KINDS = ("birth_date", "study_date")
SECRET_DIR = ".secret"
IDENTIFIERS_FILE = "identifiers.json"

#: Words our own outputs use that are also surnames ("LONG", "WHITE"): a family name alone is not
#: searched when it is one of them (the full name still is).
_COMMON_WORDS = frozenset(
    """
long short left right wrist forearm median nerve plane model test train validation white black
young king may june march april august frame frames mask masks done poor ok site clip clips rater
mean best last first area dice
""".split()
)

_TOKEN = re.compile(r"[^\W_]+")
_UMLAUT_BACK = re.compile(r"(?<=[^\W\d_])[aouAOU][eE]")
_GERMAN = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"})


@dataclass(frozen=True)
class Identifier:
    """One raw identifying value ingest saw. Never print ``value``: print :meth:`masked`."""

    kind: str
    value: str

    def masked(self) -> str:
        return mask_value(self.value)


def mask_value(value: str) -> str:
    """``"MUELLER^ANNA"`` -> ``"M***(12)"``: enough to tell hits apart, too little to identify."""
    value = str(value)
    return f"{value[:1]}***({len(value)})" if value else "***(0)"


def fold(token: str) -> str:
    """Case- and accent-insensitive form of one token ("Müller" -> "muller")."""
    if token.isascii():
        return token.lower()
    decomposed = unicodedata.normalize("NFKD", token)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def tokens(text: str) -> list[tuple[str, int, int]]:
    """``(folded token, start, end)`` of every letter/digit run in ``text``."""
    return [(fold(m.group()), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def _folded(text: str) -> tuple[str, ...]:
    return tuple(t for t, _, _ in tokens(text))


# ---------------------------------------------------------------- variants of one identifier
def _name_variants(value: str) -> list[tuple[tuple[str, ...], str]]:
    value = value.split("=")[0]  # PN: alphabetic group only; ideographic/phonetic groups follow
    if "^" in value:
        parts = [p.strip() for p in value.split("^")]
        family, given = parts[0], " ".join(p for p in parts[1:3] if p)
    elif "," in value:
        family, given = (p.strip() for p in value.split(",", 1))
    else:
        words = value.split()
        family, given = (words[-1], " ".join(words[:-1])) if len(words) > 1 else (value, "")
    out = []
    # "MÜLLER" folds to "muller"; its transliteration "MUELLER" is also tried, and back again
    spellings = {
        (family, given),
        (family.translate(_GERMAN), given.translate(_GERMAN)),
        (_UMLAUT_BACK.sub(lambda m: m.group()[0], family), _UMLAUT_BACK.sub(lambda m: m.group()[0], given)),
    }
    for fam, giv in spellings:
        f, g = _folded(fam), _folded(giv)
        if f and g:
            first, initial = g[:1], (g[0][:1],)  # "Mueller Anna Maria" also as "Mueller Anna"/"A. Mueller"
            out += [
                (f + g, "full name"),
                (g + f, "full name"),
                (f + first, "full name"),
                (first + f, "full name"),
                (f + initial, "full name"),
                (initial + f, "full name"),
            ]
        if f and len("".join(f)) >= 3 and " ".join(f) not in _COMMON_WORDS:
            out.append((f, "family name"))
        if not f and g:
            out.append((g, "name"))
    return out


def parse_dates(value: str) -> list[dt.date]:
    """Every date ``value`` can mean in the renderings we accept (DD/MM vs MM/DD: both)."""
    value = (value.strip().split() or [""])[0].split("T")[0]  # a DT or ISO time part goes
    found = []
    for fmt in ("%Y%m%d", "%Y-%m-%d", "%d.%m.%Y", "%m/%d/%Y", "%d/%m/%Y", "%Y/%m/%d"):
        try:
            found.append(dt.datetime.strptime(value, fmt).date())
        except ValueError:
            continue
    return sorted(set(found))


def date_renderings(day: dt.date) -> list[str]:
    """The ways a date is written: YYYYMMDD, YYYY-MM-DD, DD.MM.YYYY, MM/DD/YYYY, DD/MM/YYYY, also
    without leading zeros ("3.4.1985") and, zero-padded, with the two-digit year scanner screens
    use ("03.04.85")."""
    y, m, d = f"{day.year:04d}", day.month, day.day
    out = {f"{y}{m:02d}{d:02d}", f"{y}-{m:02d}-{d:02d}"}
    for mm, dd, yy in ((f"{m:02d}", f"{d:02d}", y), (str(m), str(d), y), (f"{m:02d}", f"{d:02d}", y[2:])):
        out |= {f"{dd}.{mm}.{yy}", f"{mm}/{dd}/{yy}", f"{dd}/{mm}/{yy}"}
    out.add(f"{y}-{m}-{d}")
    return sorted(out)


def variants(
    ident: Identifier, known_dates: frozenset = frozenset()
) -> tuple[list[tuple[tuple[str, ...], str]], str | None]:
    """``([(token sequence, what it is)], None)`` or ``([], why it cannot be searched)``.

    ``known_dates``: dates other identifiers name unambiguously; an ambiguous "03/12/1985"
    (ingest also records that rendering) is then read as the one of them it can mean."""
    value = str(ident.value or "").strip()
    if ident.kind == "patient_name":
        found = _name_variants(value)
    elif ident.kind in DATE_KINDS:
        days = parse_dates(value)
        days = [d for d in days if d in known_dates] or days
        if days:
            return sorted({(_folded(r), "date") for day in days for r in date_renderings(day)}), None
        found = [(_folded(value), "value")]
    else:
        toks = _folded(value)
        found = [(toks, "value")]
        if len(toks) > 1 and ident.kind in ("patient_id", "accession", "other"):
            found.append((("".join(toks),), "value"))  # "123-456-789" also as "123456789"
    # Too short to search without flagging every frame count: say so rather than pretend.
    found = [
        (v, what) for v, what in found if len("".join(v)) >= 3 and not ("".join(v).isdigit() and len("".join(v)) < 4)
    ]
    if not found:
        return [], "too short to search for"
    return sorted(set(found)), None


# ---------------------------------------------------------------- the matcher
@dataclass(frozen=True)
class Match:
    identifier: Identifier
    what: str  # "full name", "family name", "date", "value"
    start: int  # character span in the text searched
    end: int


class Matcher:
    """Finds every identifier variant in a text, as whole tokens."""

    def __init__(self, identifiers: list[Identifier]):
        self.identifiers = list(dict.fromkeys(identifiers))
        self.unsearchable: list[tuple[Identifier, str]] = []
        self._index: dict[tuple[str, ...], list[tuple[Identifier, str]]] = {}
        known = frozenset(
            dates[0]
            for i in self.identifiers
            if i.kind in DATE_KINDS
            for dates in [parse_dates(i.value)]
            if len(dates) == 1
        )
        for ident in self.identifiers:
            found, why = variants(ident, known)
            if why:
                self.unsearchable.append((ident, why))
            for seq, what in found:
                self._index.setdefault(seq, []).append((ident, what))
        self._longest = max((len(k) for k in self._index), default=0)

    def __bool__(self) -> bool:
        return bool(self._index)

    def find(self, text: str) -> list[Match]:
        """Matches in ``text``; where variants overlap (a full name and its family name), the
        longest one is kept."""
        if not self._index or not text:
            return []
        toks = tokens(text)
        out: list[Match] = []
        covered_to = -1
        for i in range(len(toks)):
            for n in range(min(self._longest, len(toks) - i), 0, -1):
                hit = self._index.get(tuple(t for t, _, _ in toks[i : i + n]))
                if hit:
                    start, end = toks[i][1], toks[i + n - 1][2]
                    if end > covered_to:
                        # one hit per kind: the same date listed in three renderings is one date
                        kinds: dict[tuple[str, str], Match] = {}
                        for ident, what in hit:
                            kinds.setdefault((ident.kind, what), Match(ident, what, start, end))
                        out += kinds.values()
                        covered_to = end
                    break
        return out


# ---------------------------------------------------------------- reading the lists
def _checked(items, path: Path) -> list[Identifier]:
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("value"), str):
            raise InputError(path, f"identifier {i + 1} needs a 'kind' and a text 'value'")
        kind = str(item.get("kind") or "other").strip()
        if kind not in KINDS:
            raise InputError(path, f"identifier {i + 1} has kind {kind!r}; expected one of {', '.join(KINDS)}")
        if item["value"].strip():
            out.append(Identifier(kind, item["value"].strip()))
    return out


def identifiers_file(project_root: str | Path) -> Path:
    return Path(project_root) / SECRET_DIR / IDENTIFIERS_FILE


def load_identifiers(project_root: str | Path) -> list[Identifier]:
    """The identifiers ingest saw for this project (``[]`` when ingest recorded none yet)."""
    path = identifiers_file(project_root)
    if not path.is_file():
        return []
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"cannot be read as JSON ({exc})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("identifiers"), list):
        raise InputError(path, 'expected {"schema_version": 1, "identifiers": [{"kind", "value"}, ...]}')
    return _checked(obj["identifiers"], path)


def read_identifiers_csv(path: str | Path) -> list[Identifier]:
    """A CSV with columns ``kind,value`` (one identifier a row)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or {"kind", "value"} - {f.strip() for f in reader.fieldnames}:
                raise InputError(path, "identifiers CSV needs the columns kind,value")
            rows = [{(k or "").strip(): v for k, v in row.items()} for row in reader]
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(path, f"cannot read identifiers CSV ({exc})") from None
    return _checked(
        [{"kind": (r.get("kind") or "").strip() or "other", "value": r.get("value") or ""} for r in rows], path
    )


def find_projects(path: str | Path) -> list[Path]:
    """Project roots holding ``path`` (it or an ancestor has ``.secret/identifiers.json``), or
    below it (a folder of projects)."""
    path = Path(path).resolve()
    for p in (path, *path.parents):
        if identifiers_file(p).is_file():
            return [p]
    if path.is_dir():
        return sorted(f.parent.parent for f in path.rglob(f"{SECRET_DIR}/{IDENTIFIERS_FILE}"))
    return []
