"""Ingest and de-identification: pseudonyms, no identifiers in the project, idempotence, bad input."""

import csv
from datetime import datetime

import pydicom
import pytest

from dataset_tools import deid
from dataset_tools.ingest import ingest, plane_from_text
from napari_ultramn.cli import main as cli_main
from napari_ultramn.progress import run_to_end
from napari_ultramn.project import Project
from tests.ingest_support import make_us_dicom

IDENTIFIERS = ("DOE^JANE", "MRN-0042", "19580317", "St Elsewhere Hospital", "ACC998877", "SMITH^JOHN")


@pytest.fixture
def source(tmp_path):
    src = tmp_path / "source"
    make_us_dicom(src / "a" / "wrist.dcm", seed=1)
    make_us_dicom(src / "a" / "forearm.dcm", description="MEDIAN LONG FOREARM", laterality="L", seed=2)
    make_us_dicom(
        src / "b" / "other.dcm",
        patient_id="MRN-0777",
        name="ROE^RICHARD",
        description="MEDIAN N TRANSV FOREARM",
        seed=3,
    )
    return src


def test_ingest_pseudonymises_crops_and_keeps_no_identifiers(tmp_path, source):
    project_dir = tmp_path / "project"
    summary = run_to_end(ingest(source, project_dir, keep_dicom=True))
    assert len(summary.added) == 3 and not summary.failed
    project = Project.open(project_dir)
    recs = {r["clip_id"]: r for r in project.clips()}
    by_side_plane = {(r["side"], r["plane"]): r for r in recs.values()}
    wrist = by_side_plane[("right", "transverse_wrist")]
    forearm = by_side_plane[("left", "longitudinal_forearm")]
    # two files of one participant share a pseudonym; another patient gets another
    other = by_side_plane[("right", "transverse_forearm")]
    assert wrist["participant"] == forearm["participant"] != other["participant"]
    assert wrist["participant"] == deid.pseudonym(project.pseudonym_key(), "MRN-0042")
    assert wrist["sex"] == "F" and wrist["age_band"] == "60-69" and wrist["site"].startswith("S")
    assert wrist["spacing_mm"] == [0.1, 0.1] and wrist["spacing_source"] == "us_region"
    assert wrist["study_date_shifted"] != "20240105"
    clip = project.open_clip(wrist["clip_id"])
    assert clip.shape == (3, 30, 32)  # text band cropped away
    assert clip.to_array().max() < 255
    # identifiers appear nowhere in the project except the secret key folder
    for path in project_dir.rglob("*"):
        if path.is_file() and ".secret" not in path.parts:
            data = path.read_bytes()
            for ident in IDENTIFIERS:
                assert ident.encode() not in data, f"{ident} leaked into {path}"
    # de-identified DICOM copies still open, carry the pseudonym, and lost private/PN data
    copy = pydicom.dcmread(project_dir / "dicom" / f"{wrist['clip_id']}.dcm")
    assert copy.PatientID == wrist["participant"] and copy.PatientIdentityRemoved == "YES"
    assert "InstitutionName" not in copy and str(copy.get("OperatorsName", "")) == ""


def test_reingest_is_a_no_op(tmp_path, source):
    project_dir = tmp_path / "project"
    run_to_end(ingest(source, project_dir))
    before = (project_dir / "clips.json").read_bytes()
    again = run_to_end(ingest(source, project_dir))
    assert not again.added and len(again.skipped) == 3
    assert (project_dir / "clips.json").read_bytes() == before


def test_mapping_csv_overrides_side_and_plane(tmp_path, source):
    mapping = tmp_path / "map.csv"
    with open(mapping, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "side", "plane"])
        w.writerow(["b/other.dcm", "left", "longitudinal_wrist"])  # overrides TRANSV FOREARM R
    run_to_end(ingest(source, tmp_path / "p", mapping_csv=mapping))
    rec = [r for r in Project.open(tmp_path / "p").clips() if r["plane"] == "longitudinal_wrist"]
    assert len(rec) == 1 and rec[0]["side"] == "left"


def test_bad_files_are_reported_by_path_relative_to_source_and_the_rest_ingested(tmp_path, source):
    (source / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    whole = (source / "a" / "wrist.dcm").read_bytes()
    cut = whole.index(b"\xe0\x7f\x10\x00") - 40  # inside the header, before the pixel data
    for folder in ("x", "y"):  # the same file name in two folders must stay distinguishable
        (source / folder).mkdir()
        (source / folder / "IM0001.dcm").write_bytes(whole[:cut])
    summary = run_to_end(ingest(source, tmp_path / "p"))
    assert len(summary.added) == 3
    failed = dict(summary.failed)
    assert sorted(failed) == ["broken.dcm", "x/IM0001.dcm", "y/IM0001.dcm"]
    assert failed["broken.dcm"].startswith("DICOM header is") and "truncated" in failed["broken.dcm"]
    assert failed["x/IM0001.dcm"].startswith("DICOM header is truncated: the file ends after")
    assert "patient id" not in failed["x/IM0001.dcm"]


def test_cli_exit_status_is_2_when_a_file_failed(tmp_path, source, capsys):
    (source / "a" / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    assert cli_main(["ingest", str(source), str(tmp_path / "p"), "-q"]) == 2
    out = capsys.readouterr().out
    assert "3 added, 0 already present, 1 failed" in out and "  failed: a/broken.dcm: DICOM header is" in out
    (source / "a" / "broken.dcm").unlink()
    assert cli_main(["ingest", str(source), str(tmp_path / "p"), "-q"]) == 0


def test_dicom_regions_crop_and_are_recorded_in_source_coordinates(tmp_path, source):
    run_to_end(ingest(source, tmp_path / "p"))
    for rec in Project.open(tmp_path / "p").clips():
        assert rec["crop_region"] == [10, 0, 40, 32] and rec["no_crop"] is False
        assert rec["imaging_area"]["source"] == "dicom-regions"
        assert rec["imaging_area"]["region"] == [10, 0, 40, 32]


def test_unknown_plane_in_mapping_is_refused(tmp_path, source):
    mapping = tmp_path / "map.csv"
    mapping.write_text("file,plane\na/wrist.dcm,oblique_elbow\n")
    summary = run_to_end(ingest(source, tmp_path / "p", mapping_csv=mapping))
    assert any("not in the project vocabulary" in problem for _, problem in summary.failed)


def test_cli_ingest_reports_missing_source(tmp_path, capsys):
    assert cli_main(["ingest", str(tmp_path / "nope"), str(tmp_path / "p"), "-q"]) == 2
    assert "nope: source not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "text, plane",
    [
        ("MEDIAN N TRANSV WRIST R", "transverse_wrist"),
        ("median nerve long forearm", "longitudinal_forearm"),
        ("CARPAL TUNNEL AXIAL", "transverse_wrist"),
        ("KNEE", None),
    ],
)
def test_plane_from_scanner_text(text, plane):
    assert (
        plane_from_text(text, ["transverse_wrist", "transverse_forearm", "longitudinal_wrist", "longitudinal_forearm"])
        == plane
    )


@pytest.mark.parametrize(
    "age, birth, study, band",
    [
        ("045Y", None, None, "40-49"),
        (None, "19580317", "20240105", "60-69"),
        ("093Y", None, None, "90+"),
        ("006M", None, None, "0-9"),
        (None, None, None, None),
    ],
)
def test_age_band(age, birth, study, band):
    assert deid.age_band(age, birth, study) == band


def test_date_shift_is_stable_per_participant_and_keeps_intervals():
    key = b"k" * 32
    d = deid.date_shift_days(key, "MRN-1")
    assert d == deid.date_shift_days(key, "MRN-1") and -365 <= d <= -1
    a, b = (datetime.strptime(deid.shift_date(v, d), "%Y%m%d") for v in ("20240105", "20240115"))
    assert (b - a).days == 10
