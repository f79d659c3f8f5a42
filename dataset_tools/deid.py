"""De-identification: pseudonyms, date shifts, and the DICOM PS3.15 basic-profile scrub.

The project never stores a DICOM header: ingest copies a *whitelist* of non-identifying facts
(calibration, timing, device, sex, age band) into the registry and the frames into HDF5. That whitelist
is the main protection. :func:`deidentify_dataset` exists for users who also want de-identified DICOM
copies (``ultramn ingest --keep-dicom``). It applies the DICOM PS3.15 Annex E Basic Application Level
Confidentiality Profile (Table E.1-1 actions for the attributes scanners write) with the Retain
Longitudinal Temporal Information with Modified Dates Option (dates shifted per participant) and the
Retain Patient Characteristics Option for sex and age only (ages of 90 and over pooled as "090Y");
given the cropped and blanked frames of the project clip it also replaces the pixel data (Clean
Pixel Data Option), which is what removes the burned-in text band.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re

from .deid_pixels import replace_pixels


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
    years = _age_years(patient_age)
    if years is None and birth_date and study_date:
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


def _age_years(patient_age: str | None) -> float | None:
    """Years in a DICOM AS value ('045Y', '006M', '010W', '003D'); None if it is not one."""
    match = re.fullmatch(r"(\d{3})([DWMY])", str(patient_age or "").strip())
    if not match:
        return None
    n, unit = int(match.group(1)), match.group(2)
    return {"D": n / 365.25, "W": n / 52.18, "M": n / 12.0, "Y": float(n)}[unit]


def normalise_sex(value: str | None) -> str | None:
    v = str(value or "").strip().upper()[:1]
    return v if v in ("F", "M", "O") else None


#: Root for UIDs we generate (2.25 = UUID-derived OIDs, PS3.5 B.2).
UID_ROOT = "2.25."
#: UIDs kept as they are: they name what an object *is* (a class, an encoding, a code system), not
#: who it is about. Any value under the DICOM root 1.2.840.10008 is a registered, well-known UID too.
KEEP_UID_KEYWORDS = (
    "TransferSyntaxUID",
    "CodingSchemeUID",
    "ContextUID",
    "MappingResourceUID",
    "ImplementationClassUID",
)
WELL_KNOWN_UID_ROOT = "1.2.840.10008."

#: PS3.15 Table E.1-1 action Z (also X/Z and Z/D where the image IODs make them Type 2): kept,
#: emptied. Deleting them would break the copy's conformance (and SEG export from it).
EMPTY_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "ContentCreatorName",
    "VerifyingObserverIdentificationCodeSequence",
    "ContrastBolusAgent",
    "PlacerOrderNumberImagingServiceRequest",
    "FillerOrderNumberImagingServiceRequest",
)
#: Action X for the identifiers, patient details, staff, site, device identity, request and
#: scheduling attributes image objects carry. Besides these go: descriptions, comments and free
#: text, identifiers (keywords ending ID/Identifier), network (AE) names, clinical trial and GPS
#: attributes, person-identification sequences (see :func:`_drop`).
REMOVE_KEYWORDS = (
    "OtherPatientNames",
    "OtherPatientIDsSequence",
    "PatientBirthName",
    "PatientMotherBirthName",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PatientBirthTime",
    "PatientInsurancePlanCodeSequence",
    "PatientPrimaryLanguageCodeSequence",
    "PatientPrimaryLanguageModifierCodeSequence",
    "MilitaryRank",
    "BranchOfService",
    "MedicalRecordLocator",
    "EthnicGroup",
    "EthnicGroupCodeSequence",
    "Occupation",
    "PatientReligiousPreference",
    "CountryOfResidence",
    "RegionOfResidence",
    "PatientSize",
    "PatientWeight",
    "MedicalAlerts",
    "Allergies",
    "PregnancyStatus",
    "SmokingStatus",
    "LastMenstrualDate",
    "PatientState",
    "PatientSexNeutered",
    "SpecialNeeds",
    "PreMedication",
    "PatientTransportArrangements",
    "PatientInstitutionResidence",
    "ScheduledPatientInstitutionResidence",
    "ReferencedPatientPhotoSequence",
    "ReferencedPatientSequence",
    "ReferencedPatientAliasSequence",
    "InsurancePlanIdentification",
    "AdmittingDate",
    "AdmittingTime",
    "AdmittingDiagnosesCodeSequence",
    "IssuerOfAdmissionIDSequence",
    "IssuerOfServiceEpisodeIDSequence",
    "CurrentPatientLocation",
    "ReasonForStudy",
    "ReasonForTheRequestedProcedure",
    "ReasonForTheImagingServiceRequest",
    "ReasonForVisitCodeSequence",
    "ReasonForRequestedProcedureCodeSequence",
    "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers",
    "ConsultingPhysicianName",
    "PhysiciansOfRecord",
    "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy",
    "OperatorsName",
    "RequestingPhysician",
    "RequestingService",
    "ScheduledPerformingPhysicianName",
    "ScheduledHumanPerformersSequence",
    "ActualHumanPerformersSequence",
    "HumanPerformerOrganization",
    "HumanPerformerName",
    "PersonAddress",
    "PersonTelephoneNumbers",
    "VerifyingOrganization",
    "ResponsiblePerson",
    "ResponsibleOrganization",
    "AuthorObserverSequence",
    "ParticipantSequence",
    "CustodialOrganizationSequence",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "InstitutionCodeSequence",
    "InstitutionalDepartmentTypeCodeSequence",
    "StationName",
    "DeviceSerialNumber",
    "TransducerIdentificationSequence",
    "UDISequence",
    "AcquisitionContextSequence",
    "MakerNote",
    "LensSpecification",
    "RequestAttributesSequence",
    "RequestedProcedureLocation",
    "RequestedContrastAgent",
    "OrderEnteredBy",
    "OrderEntererLocation",
    "OrderCallbackPhoneNumber",
    "PerformedLocation",
    "PerformedStationName",
    "PerformedStationNameCodeSequence",
    "PerformedStationGeographicLocationCodeSequence",
    "ScheduledStationName",
    "ScheduledStationNameCodeSequence",
    "ScheduledStationGeographicLocationCodeSequence",
    "ScheduledProcedureStepLocation",
    "ScheduledStudyLocation",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "PerformedProcedureStepEndDate",
    "PerformedProcedureStepEndTime",
    "ReferencedStudySequence",
    "ReferencedPerformedProcedureStepSequence",
    "ProcedureCodeSequence",
    "ProtocolName",
    "TimezoneOffsetFromUTC",
    "IconImageSequence",
    "OriginalAttributesSequence",
    "ModifiedAttributesSequence",
    "NonconformingModifiedAttributesSequence",
    "EncryptedAttributesSequence",
    "DigitalSignaturesSequence",
    "ReferencedDigitalSignatureSequence",
    "ReferencedSOPInstanceMACSequence",
    "MACParametersSequence",
    "MAC",
    "DataSetTrailingPadding",
    "InstanceOriginStatus",
    "TextString",
    "ResultsDistributionListSequence",
    "DistributionAddress",
    "DistributionName",
    "InterpretationApproverSequence",
    "TopicTitle",
    "TopicSubject",
    "TopicAuthor",
    "TopicKeywords",
    "PyramidLabel",
    "Arbitrary",
    "ModifyingDeviceID",
    "SpecimenAccessionNumber",
    "TelephoneNumberTrial",
    "PatientAge",
)
#: Keyword starts of attribute families the profile removes, empties or dummies throughout.
REMOVE_PREFIXES = ("ClinicalTrial", "IssuerOfClinicalTrial", "OtherClinicalTrial", "GPS")
#: Keyword ends of identifiers (IDs of admissions, plates, gantries, procedure steps, results,
#: their issuers, serial numbers), for the string VRs identifiers are written in.
ID_SUFFIXES = ("ID", "IDs", "Identifier", "IDIssuer", "SerialNumber")
PERSON_SEQUENCE_SUFFIXES = ("IdentificationSequence", "IdentificationCodeSequence")
#: File meta attributes that name the sending system.
REMOVE_META_KEYWORDS = (
    "SourceApplicationEntityTitle",
    "SendingApplicationEntityTitle",
    "ReceivingApplicationEntityTitle",
    "SourcePresentationAddress",
    "SendingPresentationAddress",
    "ReceivingPresentationAddress",
    "PrivateInformationCreatorUID",
    "PrivateInformation",
)
#: Type 2 attributes of the Patient and General Study modules, present (maybe empty) in every copy.
TYPE2_ROOT_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)
#: PS3.16 CID 7050 De-identification Method codes (scheme DCM).
_METHOD_CODES = {
    "basic": ("113100", "Basic Application Confidentiality Profile"),
    "pixels": ("113101", "Clean Pixel Data Option"),
    "dates": ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    "patient": ("113108", "Retain Patient Characteristics Option"),
}
_METHOD_TEXT = {
    "basic": "PS3.15 Basic Application Level Confidentiality Profile",
    "pixels": "pixels cropped to the imaging area and blanked",
    "dates": "dates shifted per participant",
    "patient": "sex and age kept, ages of 90 and over pooled",
}


def hashed_uid(key: bytes, uid: str) -> str:
    """Replace a UID by a keyed-hash UID under 2.25 (at most 64 characters, no leading zeros)."""
    return UID_ROOT + str(int(keyed_hash(key, "uid:" + uid)[:32], 16))


def pooled_age(patient_age: str | None) -> str | None:
    """A DICOM AS age with 90 years and over pooled as '090Y' (HIPAA); None if unparsable."""
    years = _age_years(patient_age)
    if years is None:
        return None
    return "090Y" if years >= 90 else str(patient_age).strip()


def _age_from_dates(birth_date, study_date) -> str | None:
    try:
        b = dt.datetime.strptime(str(birth_date)[:8], "%Y%m%d").date()
        s = dt.datetime.strptime(str(study_date)[:8], "%Y%m%d").date()
    except ValueError:
        return None
    years = s.year - b.year - ((s.month, s.day) < (b.month, b.day))
    return pooled_age(f"{min(years, 999):03d}Y") if years >= 0 else None


def _is_free_text(elem) -> bool:
    """Descriptions, comments and free text: where scanners and RIS put names, MRNs and notes."""
    return elem.VR in ("LT", "ST", "UT") or elem.keyword.endswith(("Comments", "Comment", "Description"))


def _keep_uid(elem, value: str) -> bool:
    return "SOPClassUID" in elem.keyword or elem.keyword in KEEP_UID_KEYWORDS or value.startswith(WELL_KNOWN_UID_ROOT)


def _drop(elem) -> bool:
    """Action X: the listed attributes and families, private tags, overlay and curve groups
    (burned-in graphics), network names, and attributes no dictionary knows."""
    group, kw = elem.tag.group, elem.keyword
    return (
        elem.tag.is_private
        or 0x5000 <= group <= 0x50FF
        or 0x6000 <= group <= 0x60FF
        or not kw
        or kw in REMOVE_KEYWORDS
        or kw.startswith(REMOVE_PREFIXES)
        or kw.endswith(PERSON_SEQUENCE_SUFFIXES)
        or (elem.VR in ("SH", "LO", "UC") and kw.endswith(ID_SUFFIXES))
        or elem.VR == "AE"
        or _is_free_text(elem)
    )


def _scrub(d, key: bytes, shift_days: int) -> None:
    """Apply the profile's actions to one dataset and, recursively, to every sequence item."""
    for elem in list(d):
        if elem.keyword in EMPTY_KEYWORDS:
            elem.value = [] if elem.VR == "SQ" else ""
        elif _drop(elem):
            del d[elem.tag]
        elif elem.VR == "SQ":
            for item in elem.value:
                _scrub(item, key, shift_days)
        elif elem.VR == "PN":
            elem.value = ""  # a person named anywhere else (D: a dummy, here empty)
        elif elem.VR == "UI" and elem.value:
            values = list(elem.value) if elem.VM > 1 else [elem.value]
            new = [str(u) if _keep_uid(elem, str(u)) else hashed_uid(key, str(u)) for u in values]
            elem.value = new if elem.VM > 1 else new[0]
        elif elem.VR in ("DA", "DT") and elem.value:
            values = list(elem.value) if elem.VM > 1 else [elem.value]
            new = [_shift_da_or_dt(str(v), shift_days) for v in values]
            elem.value = new if elem.VM > 1 else new[0]


def _shift_da_or_dt(value: str, days: int) -> str:
    shifted = shift_date(value[:8], days)
    return (shifted + value[8:]) if shifted else ""


def deidentify_dataset(ds, key: bytes, participant: str, shift_days: int, *, frames=None, crop_region=None) -> None:
    """Scrub a pydicom Dataset in place per the PS3.15 basic profile (see the module docstring).

    PatientName and PatientID become ``participant``; other Type 2 identifiers are emptied, not
    deleted; descriptions, comments, free text, device identity and every private tag are removed;
    UIDs become keyed hashes under 2.25 (the same source UID gives the same UID in one project, so
    references between copies survive); dates move by ``shift_days``; PatientSex is kept and
    PatientAge kept with 90+ pooled ('090Y'), or derived from the birth and study dates.

    ``frames`` ``(T, h, w) uint8``, the project clip's cropped and blanked frames, replace the pixel
    data (8-bit MONOCHROME2, Explicit VR Little Endian), with ``crop_region`` ``[top, left, bottom,
    right]`` (source pixels) shifting the ultrasound regions; only then is BurnedInAnnotation set
    to "NO". Without ``frames`` the pixels, and the scanner's BurnedInAnnotation, stay as they are.
    """
    from pydicom.dataset import Dataset

    age = pooled_age(ds.get("PatientAge")) or _age_from_dates(
        ds.get("PatientBirthDate"), ds.get("StudyDate") or ds.get("ContentDate")
    )
    sex = normalise_sex(ds.get("PatientSex")) or ""
    if frames is not None:
        replace_pixels(ds, frames, crop_region)
    _scrub(ds, key, shift_days)
    for kw in TYPE2_ROOT_KEYWORDS:
        if kw not in ds:
            setattr(ds, kw, "")
    ds.PatientID = participant
    # the pseudonym as an explicit family-name component ("P3f..^"): a PN without a component
    # delimiter reads as the retired ACR-NEMA form to validators
    ds.PatientName = participant + "^"
    ds.PatientSex = sex
    if age:
        ds.PatientAge = age
    options = ["basic", "dates", "patient"] + (["pixels"] if frames is not None else [])
    if frames is not None:
        ds.BurnedInAnnotation = "NO"
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = [_METHOD_TEXT[o] for o in options]
    codes = []
    for option in options:
        item = Dataset()
        item.CodeValue, item.CodeMeaning = _METHOD_CODES[option]
        item.CodingSchemeDesignator = "DCM"
        codes.append(item)
    ds.DeidentificationMethodCodeSequence = codes
    ds.LongitudinalTemporalInformationModified = "MODIFIED"
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        for kw in REMOVE_META_KEYWORDS:
            if kw in meta:
                delattr(meta, kw)
        if "SOPInstanceUID" in ds:
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
