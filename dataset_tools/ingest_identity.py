"""What ingest learns about a person from a DICOM header: descriptive fields, and every raw
identifier (with the renderings it may take on screen or in a report) for ``.secret/identifiers.json``.
"""

from __future__ import annotations

import re
from pathlib import Path

from napari_ultramn.errors import InputError


def _date_renderings(value: str | None) -> list[str]:
    """A DICOM date as scanners, reports and people write it (audits search for every form)."""
    m = re.fullmatch(r"(\d{4})(\d{2})(\d{2})", str(value or "").strip()[:8])
    if not m:
        return [value] if value else []
    y, mo, d = m.groups()
    return [f"{y}{mo}{d}", f"{y}-{mo}-{d}", f"{d}.{mo}.{y}", f"{mo}/{d}/{y}", f"{d}/{mo}/{y}"]


def _name_renderings(value: str | None) -> list[str]:
    """A DICOM person name ('DOE^JANE') and the ways it appears on screen ('JANE DOE', 'DOE JANE')."""
    if not value:
        return []
    parts = [p for p in str(value).split("^") if p.strip()]
    forms = [str(value), " ".join(parts)]
    if len(parts) >= 2:
        forms += [" ".join([*parts[1:], parts[0]]), f"{parts[0]}, {' '.join(parts[1:])}"]
    return forms


#: DICOM attributes whose raw values ingest records in identifiers.json, by contract-D kind.
_IDENTIFIER_TAGS = {
    "patient_id": ("PatientID", "OtherPatientIDs"),
    "patient_name": ("PatientName", "PatientBirthName", "PatientMotherBirthName"),
    "birth_date": ("PatientBirthDate",),
    "study_date": ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"),
    "institution": ("InstitutionName", "InstitutionalDepartmentName"),
    "accession": ("AccessionNumber",),
    "other": (
        "InstitutionAddress",
        "ReferringPhysicianName",
        "PerformingPhysicianName",
        "OperatorsName",
        "PhysiciansOfRecord",
        "StationName",
        "DeviceSerialNumber",
        "PatientAddress",
        "PatientTelephoneNumbers",
    ),
}


def _header_identifiers(ds) -> list[tuple[str, str]]:
    """``(kind, raw value)`` for every identifying attribute the header has (contract D kinds)."""
    from pydicom.multival import MultiValue

    seen = []
    for kind, keywords in _IDENTIFIER_TAGS.items():
        for kw in keywords:
            raw = ds.get(kw)
            values = [] if raw in (None, "") else list(raw) if isinstance(raw, (list, MultiValue)) else [raw]
            for v in map(str, values):
                if kind in ("patient_name", "other") and "^" in v:
                    seen += [(kind, f) for f in _name_renderings(v)]
                elif kind in ("birth_date", "study_date"):
                    seen += [(kind, f) for f in _date_renderings(v)]
                elif v.strip() and (kind != "other" or len(v.strip()) >= 3):
                    seen.append((kind, v.strip()))
    return seen


def dicom_identity(path: Path) -> dict:
    """Identifying and descriptive header fields, read without pixel data.

    A header cut short reads without error in pydicom (it stops at the end of the file), so a file
    that ends before its pixel data is refused as truncated here, before its missing PatientID
    would be reported as the problem.
    """
    import pydicom

    try:
        with open(path, "rb") as fh:
            ds = pydicom.dcmread(fh, stop_before_pixels=True)
            ended = not fh.read(1)  # complete files still hold the pixel data here
    except Exception as exc:  # pydicom raises many types for corrupt headers
        raise InputError(path, f"DICOM header is unreadable or truncated ({type(exc).__name__}: {exc})") from None
    sop = ds.get("SOPClassUID") or getattr(ds, "file_meta", {}).get("MediaStorageSOPClassUID")
    non_image = sop is not None and "Image" not in getattr(sop, "name", "") and "Rows" not in ds
    if ended and not non_image:
        raise InputError(
            path, f"DICOM header is truncated: the file ends after {path.stat().st_size} bytes, before its pixel data"
        )

    def get(kw):
        v = ds.get(kw)
        return None if v in (None, "") else str(v)

    lat = (get("ImageLaterality") or get("Laterality") or "").upper()
    text = " ".join(
        filter(
            None,
            (
                get(k)
                for k in ("SeriesDescription", "ImageComments", "ProtocolName", "StudyDescription", "BodyPartExamined")
            ),
        )
    )
    return {
        "patient_id": get("PatientID"),
        "sex": get("PatientSex"),
        "age": get("PatientAge"),
        "birth_date": get("PatientBirthDate"),
        "study_date": get("StudyDate") or get("AcquisitionDate") or get("ContentDate"),
        "institution": get("InstitutionName"),
        "side": {"L": "left", "R": "right"}.get(lat[:1]) if lat[:1] in ("L", "R") else None,
        "text": text,
        "burned_in": (get("BurnedInAnnotation") or "").strip().upper() == "YES",
        "identifiers": _header_identifiers(ds),
    }
