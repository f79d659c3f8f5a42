"""Identifier-shaped values found without the identifier list ("pattern" hits).

Three shapes catch what a list can miss (a second patient in a file, a typo in the mapping):

- a person name in DICOM form (``DOE^JOHN``) or "Last, First" / "First Last" under a key that
  names a person (``patient_name``, ``ReferringPhysician``, a CSV column ``patient``);
- a medical record number (``MRN12345``, ``MRN: 12345``, ``Patient ID 12345``);
- a calendar date in a field that should hold none. Our files store no real dates: the one date
  they keep is shifted (keys ending ``_shifted``), and machine timestamps (``created``,
  ``modified``, ``*_at``, or an ISO date with a time of day) say when software ran, not when a
  patient was seen.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

_PERSON_KEY = re.compile(
    r"patient|person|physician|operator|referr|doctor|performing|reader|"
    r"subject|birth_?name|mother|author|observer",
    re.I,
)
_NAME_KEY = re.compile(r"name", re.I)
_NOT_PERSON_NAME_KEY = re.compile(
    r"file|model|series|study|protocol|device|manufacturer|station|"
    r"software|institution|department|code|scheme|creator|format|"
    r"plane|label|site|project|dataset|split|column|stage|kind",
    re.I,
)
_TIMESTAMP_KEY = re.compile(
    r"(^|_)(created|modified|updated|timestamp|generated|started|finished|"
    r"built|saved|written)($|_)|_at$|^time$|_utc$",
    re.I,
)
#: What anonymisers write into a name field instead of a name.
_PLACEHOLDERS = frozenset(
    "anonymous anonymized anonymised anon removed unknown deidentified "
    "de identified none na n a redacted patient test".split()
)

_WORD = r"[A-Za-zÀ-ÖØ-öø-ÿ][A-Za-zÀ-ÖØ-öø-ÿ'.-]*"
_CARET_NAME = re.compile(rf"{_WORD}(?: {_WORD})*\^{_WORD}(?:[ ^]{_WORD})*\^*")
_COMMA_NAME = re.compile(rf"^\s*{_WORD}(?: {_WORD})?,\s*{_WORD}(?: {_WORD})?\s*$")
_SPACE_NAME = re.compile(rf"^\s*{_WORD}(?: {_WORD}){{1,3}}\s*$")
_MRN = re.compile(
    r"(?<![A-Za-z0-9])(?:MRN|MR#|MRNO|PATID|PAT[ _-]?ID|PATIENT[ _-]?(?:ID|NO|NUMBER)|"
    r"HOSP(?:ITAL)?[ _-]?(?:NO|NUM|NUMBER)|UR[ _-]?NO|NHS[ _-]?(?:NO|NUMBER)?)"
    r"\s*[:#=_-]?\s*[A-Z]{0,2}\d{4,}(?![A-Za-z0-9])",
    re.I,
)
#: Our participant pseudonyms (dataset_tools.deid.pseudonym): "P" and 10 hex digits.
_PSEUDONYM = re.compile(r"P[0-9a-f]{10}")
_MRN_KEY = re.compile(r"(^|_)(mrn|medical_?record|patient_?id|hospital_?number)($|_)", re.I)

# The renderings ingest also records (contract D); the ISO one may carry a time of day.
_DATES = (
    (re.compile(r"(?<![0-9A-Za-z])((?:19|20)\d\d)-(\d\d)-(\d\d)(?:[T ](\d\d:\d\d))?(?![0-9])"), "ymd"),
    # compact form; not after "<hex>-", which is how clip ids end ("P13c098fa91-20241013")
    (re.compile(r"(?<![0-9A-Za-z])(?<![0-9a-f]-)((?:19|20)\d\d)(\d\d)(\d\d)(?![0-9A-Za-z])"), "ymd"),
    (re.compile(r"(?<![0-9A-Za-z.])(\d\d?)\.(\d\d?)\.((?:19|20)\d\d)(?![0-9.])"), "dmy"),
    (re.compile(r"(?<![0-9A-Za-z/])(\d\d?)/(\d\d?)/((?:19|20)\d\d)(?![0-9/])"), "mdy|dmy"),
)


@dataclass(frozen=True)
class PatternMatch:
    what: str  # "person name", "record number", "date"
    start: int
    end: int


def _valid_date(y: int, m: int, d: int) -> bool:
    try:
        dt.date(y, m, d)
    except ValueError:
        return False
    return True


def date_spans(text: str) -> list[tuple[int, int, bool]]:
    """``(start, end, has_time_of_day)`` of every real calendar date written in ``text``."""
    out = []
    for regex, order in _DATES:
        for m in regex.finditer(text):
            a, b, c = (int(g) for g in m.groups()[:3])
            if order == "ymd":
                ok = _valid_date(a, b, c)
            elif order == "dmy":
                ok = _valid_date(c, b, a)
            else:
                ok = _valid_date(c, a, b) or _valid_date(c, b, a)
            if ok:
                timed = order == "ymd" and len(m.groups()) > 3 and m.group(4) is not None
                out.append((m.start(), m.end(), timed))
    return out


def allowed_date_key(key: str | None) -> bool:
    """Keys whose dates are ours to keep: shifted dates and machine timestamps."""
    return bool(key) and (str(key).endswith("_shifted") or bool(_TIMESTAMP_KEY.search(str(key))))


def is_placeholder_name(value: str) -> bool:
    words = " ".join(re.split(r"[\W_]+", value.casefold())).strip()
    return not words or words in _PLACEHOLDERS or any(c.isdigit() for c in value)


def person_name_like(value: str, key: str | None, *, pn_element: bool = False) -> bool:
    """Does ``value`` look like a real person's name given where it sits?

    ``pn_element``: a DICOM PN (person name) element; there any non-placeholder name counts (a
    pseudonym has digits and passes)."""
    value = value.strip()
    if not value or is_placeholder_name(value) or len(value) > 80:
        return False
    if pn_element:
        return any(c.isalpha() for c in value)
    key = str(key or "")
    person_key = bool(_PERSON_KEY.search(key))
    name_key = bool(_NAME_KEY.search(key)) and not _NOT_PERSON_NAME_KEY.search(key)
    if not (person_key or name_key):
        return False
    if _CARET_NAME.fullmatch(value):
        return True
    return person_key and bool(_COMMA_NAME.match(value) or _SPACE_NAME.match(value))


def find_patterns(
    text: str, key: str | None = None, *, pn_element: bool = False, dates: bool = True
) -> list[PatternMatch]:
    """Pattern matches in one value ``text`` stored under ``key`` (a JSON key, CSV column, HDF5
    attribute or DICOM keyword; None for free text)."""
    if not text:
        return []
    out = []
    if person_name_like(text, key, pn_element=pn_element):
        out.append(PatternMatch("person name", 0, len(text)))
    else:
        # a caret name inside any text ("seen with DOE^JOHN") is as telling as in a name field
        out += [
            PatternMatch("person name", m.start(), m.end())
            for m in _CARET_NAME.finditer(text)
            if not is_placeholder_name(m.group())
        ]
    out += [PatternMatch("record number", m.start(), m.end()) for m in _MRN.finditer(text)]
    if (
        key
        and _MRN_KEY.search(str(key))
        and any(c.isdigit() for c in text)
        and not _PSEUDONYM.fullmatch(text.strip())
        and not out
    ):
        out.append(PatternMatch("record number", 0, len(text)))
    if dates and not allowed_date_key(key):
        out += [PatternMatch("date", s, e) for s, e, timed in date_spans(text) if not timed]
    return out
