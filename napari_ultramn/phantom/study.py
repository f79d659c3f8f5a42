"""``write_study``: a seeded multi-participant phantom study as real DICOM files plus ground truth.

Layout (docs/ARCHITECTURE.md, "Phantom study layout")::

    OUT/study.csv                   one row per clip
    OUT/dicom/<PatientID>/IM<k>.dcm multi-frame US DICOM (both sides x four planes per participant)
    OUT/ground_truth/<sha256>.npz   masks (T, H', W') bool in imaging-region coordinates,
                                    plane_labels, quality, spacing_mm

Participants get realistic *fake* identities (name, ID, birth date, sex, age, visit date) and are
spread over three fake sites, each with its own scanner make and model, so the de-identification
and site-stratified splits downstream have something real to chew on. File names are
scanner-like (``IM0003.dcm``) and say nothing about the plane: the plane is where a scanner puts
it, in SeriesDescription / ImageComments ("MEDIAN N TRANSV WRIST R"), and in study.csv.
Everything is deterministic given ``seed`` (UIDs included), so the same seed gives byte-identical
files and the same sha256 keys.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np

from .. import DEFAULT_PLANES
from ..atomic import atomic_open, atomic_write_text
from ..errors import InputError
from ..progress import Progress, ProgressGen
from .dicom_writer import DicomHeader, write_us_dicom
from .generate import generate_clip

SIDES = ("right", "left")
STUDY_COLUMNS = ["file", "patient_id", "side", "plane", "sex", "age", "site", "manufacturer", "n_frames", "sha256"]

SITES: tuple[dict[str, Any], ...] = (
    {
        "site": "NGH",
        "institution": "Northgate University Hospital",
        "manufacturer": "Sonora Medical Systems",
        "model": "SonoVista 9",
        "software": "4.2.1",
        "transducer": "L18-5",
        "khz": 15000,
        "station": "NGH-US3",
        "address": "12 Northgate Road, Eastbury",
    },
    {
        "site": "SAC",
        "institution": "St Aldric Hand Clinic",
        "manufacturer": "Kestrel Ultrasound",
        "model": "K-Line Pro",
        "software": "KL 7.0.3",
        "transducer": "HL15",
        "khz": 12000,
        "station": "SAC-ECHO1",
        "address": "4 Chapel Lane, Westmere",
    },
    {
        "site": "LMC",
        "institution": "Lakeshore Medical Centre",
        "manufacturer": "Meridian Imaging",
        "model": "MX-700",
        "software": "MX 2.11",
        "transducer": "LA22",
        "khz": 18000,
        "station": "LMC-RAD-US",
        "address": "200 Shore Drive, Lakeside",
    },
)
_GIVEN = {
    "F": ["ANNA", "MARIA", "SOPHIE", "LENA", "CLARA", "JULIA", "EMMA", "NORA", "ELIF", "AMIRA", "INES", "HANNA"],
    "M": ["JONAS", "LUCAS", "DAVID", "FELIX", "OMAR", "TOBIAS", "MARCO", "LEON", "PAUL", "YUSUF", "ERIK", "SAMUEL"],
}
_FAMILY = [
    "MUELLER",
    "SCHMIDT",
    "BRANDT",
    "OKAFOR",
    "NOVAK",
    "ROSSI",
    "LINDQVIST",
    "HARTMANN",
    "KOWALSKI",
    "FISCHER",
    "DUBOIS",
    "YILMAZ",
    "WEBER",
    "NIELSEN",
    "SANTOS",
    "KRAUSE",
    "BECKER",
    "MORENO",
]
_STAFF = ["VOGEL^KARIN", "ADEYEMI^TUNDE", "LARSEN^METTE", "CHEN^WEI", "PETERS^ANKE", "ROMERO^LUIS"]


def _uid(*parts) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=[str(p) for p in ("napari-ultramn-phantom", *parts)])


def identity_header(who: dict, **series) -> DicomHeader:
    """The DICOM header a scanner writes for participant ``who`` (:func:`participant_identity`)
    at its site; ``series`` gives the UIDs, series number, serial, side and plane."""
    site = who["site"]
    return DicomHeader(
        patient_name=who["name"],
        patient_id=who["patient_id"],
        birth_date=who["birth_date"],
        sex=who["sex"],
        age=who["age"],
        study_date=who["study_date"],
        study_time=who["study_time"],
        institution=site["institution"],
        institution_address=site["address"],
        referring=who["referring"],
        operator=who["operator"],
        accession=who["accession"],
        manufacturer=site["manufacturer"],
        model=site["model"],
        software=site["software"],
        station=site["station"],
        transducer=site["transducer"],
        frequency_khz=site["khz"],
        **series,
    )


def participant_identity(seed: int, index: int) -> dict:
    """A fake participant: name, ID, sex, age, birth date, visit date/time, site."""
    rng = np.random.default_rng([int(seed), int(index), 4242])
    sex = str(rng.choice(["F", "M"]))
    age = int(rng.integers(22, 78))
    visit = dt.date(2023, 1, 2) + dt.timedelta(days=int(rng.integers(0, 900)))
    birth = visit - dt.timedelta(days=int(365.25 * age + rng.integers(1, 360)))
    site = SITES[index % len(SITES)]
    return {
        "name": f"{rng.choice(_FAMILY)}^{rng.choice(_GIVEN[sex])}",
        "patient_id": f"{site['site'][0]}{int(rng.integers(10**6, 10**7))}",
        "sex": sex,
        "age": age,
        "birth_date": birth.strftime("%Y%m%d"),
        "study_date": visit.strftime("%Y%m%d"),
        "study_time": f"{int(rng.integers(8, 17)):02d}{int(rng.integers(0, 60)):02d}{int(rng.integers(0, 60)):02d}",
        "accession": f"A{visit:%y}{int(rng.integers(10**5, 10**6))}",
        "referring": str(rng.choice(_STAFF)),
        "operator": str(rng.choice(_STAFF)),
        "site": site,
    }


def write_study(
    out_dir: str | Path,
    participants: int,
    seed: int = 0,
    n_frames: int = 32,
    size: tuple[int, int] = (256, 256),
    compress: str = "none",
) -> ProgressGen:
    """Write a phantom study (8 clips per participant); yields Progress, returns the study table.

    Returns a ``pandas.DataFrame`` with :data:`STUDY_COLUMNS` (also written as ``study.csv``).
    Arguments are checked when called (an :class:`InputError` before any progress is shown).
    """
    out_dir = Path(out_dir)
    if int(participants) < 1:
        raise InputError(out_dir, f"need at least 1 participant, got {participants}")
    if compress not in ("none", "jpeg"):
        raise InputError(out_dir, f"compress must be 'none' or 'jpeg', got {compress!r}")
    if int(seed) < 0:
        raise InputError(out_dir, f"seed must be a non-negative integer, got {seed}")
    if int(n_frames) < 1:
        raise InputError(out_dir, f"need at least 1 frame per clip, got {n_frames}")
    size = (int(size[0]), int(size[1]))
    if min(size) < 32:
        raise InputError(out_dir, f"frame size must be at least 32x32 pixels, got {size[0]}x{size[1]}")
    return _write_study(out_dir, int(participants), int(seed), int(n_frames), size, compress)


def _write_study(out_dir: Path, participants: int, seed: int, n_frames: int, size, compress) -> ProgressGen:
    import pandas as pd

    from ..io.source_files import file_sha256

    total = participants * len(SIDES) * len(DEFAULT_PLANES)
    rows, done = [], 0
    for p in range(participants):
        who = participant_identity(seed, p)
        site = who["site"]
        study_uid = _uid(seed, p, "study")
        for s_idx, side in enumerate(SIDES):
            for q, plane in enumerate(DEFAULT_PLANES):
                series = s_idx * len(DEFAULT_PLANES) + q + 1
                yield Progress(done, total, f"{who['patient_id']} {side} {plane}")
                clip_seed = int(np.random.SeedSequence([seed, p, s_idx, q]).generate_state(1)[0])
                clip = generate_clip(plane, clip_seed, n_frames=n_frames, size=size)
                if side == "left":  # the other arm is the mirror image on screen
                    clip = clip.flipped()
                header = identity_header(
                    who,
                    study_uid=study_uid,
                    series_uid=_uid(seed, p, series, "series"),
                    sop_uid=_uid(seed, p, series, "sop"),
                    series_number=series,
                    serial=f"{site['site']}{7000 + p % 3}",
                    side=side,
                    plane=plane,
                )
                rel = Path("dicom") / who["patient_id"] / f"IM{series:04d}.dcm"
                write_us_dicom(out_dir / rel, clip.frames, header, clip.spacing_mm, clip.frame_time_ms, compress)
                sha = file_sha256(out_dir / rel)
                with atomic_open(out_dir / "ground_truth" / f"{sha}.npz") as fh:
                    np.savez_compressed(
                        fh,
                        masks=clip.masks,
                        plane_labels=np.asarray(clip.plane_labels),
                        quality=np.asarray(clip.quality),
                        spacing_mm=np.asarray(clip.spacing_mm, float),
                    )
                rows.append(
                    {
                        "file": rel.as_posix(),
                        "patient_id": who["patient_id"],
                        "side": side,
                        "plane": plane,
                        "sex": who["sex"],
                        "age": who["age"],
                        "site": site["site"],
                        "manufacturer": site["manufacturer"],
                        "n_frames": clip.n_frames,
                        "sha256": sha,
                    }
                )
                done += 1
    table = pd.DataFrame(rows, columns=STUDY_COLUMNS)
    atomic_write_text(out_dir / "study.csv", table.to_csv(index=False))
    yield Progress(total, total, f"wrote {total} clips")
    return table
