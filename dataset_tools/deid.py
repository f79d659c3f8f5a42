"""De-identification: pseudonyms, date shifts, and a PS3.15 basic-profile style DICOM scrub.

The project never stores a DICOM header: ingest copies a *whitelist* of non-identifying facts
(calibration, timing, device, sex, age band) into the registry and the frames into HDF5. That whitelist
is the main protection. :func:`deidentify_dataset` exists for users who also want de-identified DICOM
copies (``ultramn ingest --keep-dicom``); it follows the DICOM PS3.15 Annex E basic profile in
spirit: remove direct identifiers and all private tags, replace UIDs by keyed hashes, shift dates.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re

#: Attributes removed outright (PS3.15 Table E.1-1 actions X/Z/D for the identifiers scanners write).
REMOVE_KEYWORDS = (
    "PatientName", "PatientID", "IssuerOfPatientID", "OtherPatientIDs", "OtherPatientNames",
    "OtherPatientIDsSequence", "PatientBirthName", "PatientMotherBirthName", "PatientAddress",
    "PatientTelephoneNumbers", "PatientBirthDate", "PatientBirthTime", "PatientInsurancePlanCodeSequence",
    "MilitaryRank", "BranchOfService", "MedicalRecordLocator", "EthnicGroup", "Occupation",
    "PatientComments", "AdditionalPatientHistory", "PatientReligiousPreference", "CountryOfResidence",
    "RegionOfResidence", "ReferringPhysicianName", "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers", "PhysiciansOfRecord", "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy", "OperatorsName", "RequestingPhysician", "ScheduledPerformingPhysicianName",
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "StationName",
    "AccessionNumber", "StudyID", "RequestAttributesSequence", "DeviceSerialNumber", "PlateID",
    "DetectorID", "GantryID", "ImageComments", "StudyComments", "InterpretationText", "TextComments",
    "PerformedProcedureStepID", "ScheduledProcedureStepID", "RequestedProcedureID",
    "ReferencedPatientSequence", "ReferencedStudySequence", "ReferencedPerformedProcedureStepSequence",
    "ContentCreatorName", "PersonName", "VerifyingObserverName", "ResponsiblePerson",
    "ResponsibleOrganization", "PatientSize", "PatientWeight", "MedicalAlerts", "Allergies",
    "PregnancyStatus", "SmokingStatus", "LastMenstrualDate", "PatientState", "AdmissionID",
    "AdmittingDiagnosesDescription", "DerivationDescription", "ProtocolName",
)
#: UIDs kept as they are: they name what an object *is*, not who it is about.
KEEP_UID_KEYWORDS = ("SOPClassUID", "TransferSyntaxUID", "MediaStorageSOPClassUID", "ImplementationClassUID")
#: Root for UIDs we generate (2.25 = UUID-derived OIDs, PS3.5 B.2).
UID_ROOT = "2.25."


def keyed_hash(key: bytes, value: str) -> str:
    """HMAC-SHA256 hex digest: stable for one project key, meaningless without it."""
    return hmac.new(key, value.strip().encode("utf-8"), hashlib.sha256).hexdigest()


def pseudonym(key: bytes, patient_id: str) -> str:
    """Participant pseudonym, e.g. ``P3f9a2c1b7e``: same PatientID -> same pseudonym in one project."""
    if not patient_id or not patient_id.strip():
        raise ValueError("cannot make a pseudonym from an empty patient id")
    return "P" + keyed_hash(key, "patient:" + patient_id)[:10]


def site_pseudonym(key: bytes, institution: str | None) -> str | None:
    return None if not institution else "S" + keyed_hash(key, "site:" + institution)[:6]


def date_shift_days(key: bytes, patient_id: str) -> int:
    """A per-participant shift between -365 and -1 days: intervals within a participant survive."""
    return -1 - int(keyed_hash(key, "date:" + patient_id)[:8], 16) % 365


def shift_date(value: str | None, days: int) -> str | None:
    """Shift a DICOM DA (YYYYMMDD) by ``days``; unparsable dates are dropped (None)."""
    if not value:
        return None
    try:
        d = dt.datetime.strptime(str(value)[:8], "%Y%m%d").date()
    except ValueError:
        return None
    return (d + dt.timedelta(days=days)).strftime("%Y%m%d")


def age_band(patient_age: str | None, birth_date: str | None, study_date: str | None) -> str | None:
    """Decade band ('40-49'), from PatientAge ('045Y') or birth and study dates; 90+ pooled (HIPAA)."""
    years = None
    match = re.fullmatch(r"(\d{3})([DWMY])", str(patient_age or "").strip())
    if match:
        n, unit = int(match.group(1)), match.group(2)
        years = {"D": n / 365.25, "W": n / 52.18, "M": n / 12.0, "Y": float(n)}[unit]
    elif birth_date and study_date:
        try:
            b = dt.datetime.strptime(str(birth_date)[:8], "%Y%m%d").date()
            s = dt.datetime.strptime(str(study_date)[:8], "%Y%m%d").date()
            years = (s - b).days / 365.25
        except ValueError:
            years = None
    if years is None or years < 0:
        return None
    if years >= 90:
        return "90+"
    lo = int(years // 10) * 10
    return f"{lo}-{lo + 9}"


def normalise_sex(value: str | None) -> str | None:
    v = str(value or "").strip().upper()[:1]
    return v if v in ("F", "M", "O") else None


def hashed_uid(key: bytes, uid: str) -> str:
    """Replace a UID by a keyed-hash UID under 2.25 (at most 64 characters, no leading zeros)."""
    return UID_ROOT + str(int(keyed_hash(key, "uid:" + uid)[:32], 16))


def deidentify_dataset(ds, key: bytes, participant: str, days: int) -> None:
    """Scrub a pydicom Dataset in place (basic profile, retain-longitudinal-with-shifted-dates).

    Removes direct identifiers and every private tag, replaces UIDs with keyed hashes (links between
    objects survive), shifts dates by ``days``, and writes the pseudonym as PatientID/PatientName.
    """
    from pydicom.dataset import Dataset

    def scrub(d: Dataset) -> None:
        d.remove_private_tags()
        for kw in REMOVE_KEYWORDS:
            if kw in d:
                delattr(d, kw)
        for elem in list(d):
            if elem.VR == "SQ":
                for item in elem.value:
                    scrub(item)
            elif elem.VR == "PN":
                elem.value = ""
            elif elem.VR == "UI" and elem.keyword not in KEEP_UID_KEYWORDS and elem.value:
                values = elem.value if elem.VM > 1 else [elem.value]
                new = [hashed_uid(key, str(u)) for u in values]
                elem.value = new if elem.VM > 1 else new[0]
            elif elem.VR == "DA" and elem.value:
                elem.value = shift_date(elem.value, days) or ""
            elif elem.VR == "DT" and elem.value:
                shifted = shift_date(str(elem.value)[:8], days)
                elem.value = (shifted + str(elem.value)[8:]) if shifted else ""

    scrub(ds)
    ds.PatientID = participant
    ds.PatientName = participant
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "napari-ultramn basic profile; dates shifted; UIDs hashed"
    if hasattr(ds, "file_meta") and "MediaStorageSOPInstanceUID" in ds.file_meta:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
