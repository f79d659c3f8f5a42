"""The phantom study on disk: DICOM readable by our reader, ground truth aligned, study.csv, CLI."""

import numpy as np
import pydicom
import pytest

from napari_ultramn import DEFAULT_PLANES
from napari_ultramn.cli import main as cli_main
from napari_ultramn.errors import InputError
from napari_ultramn.io import open_clip
from napari_ultramn.io.source_files import file_sha256
from napari_ultramn.phantom import write_study
from napari_ultramn.phantom.dicom_writer import plane_from_description
from napari_ultramn.phantom.study import STUDY_COLUMNS
from napari_ultramn.progress import Progress, run_collecting, run_to_end


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    steps, table = run_collecting(write_study(out, participants=2, seed=1, n_frames=5, size=(64, 80)))
    return out, table, steps


def test_layout_and_study_csv(study):
    import pandas as pd

    out, table, steps = study
    assert all(isinstance(s, Progress) for s in steps) and steps[-1].done == steps[-1].total == 16
    csv = pd.read_csv(out / "study.csv")
    assert list(csv.columns) == STUDY_COLUMNS == list(table.columns)
    assert len(csv) == 16 and csv["patient_id"].nunique() == 2
    assert sorted(csv["plane"].unique()) == sorted(DEFAULT_PLANES)
    assert set(csv["side"]) == {"left", "right"}
    assert set(csv["sex"]) <= {"F", "M"} and csv["age"].between(18, 90).all()
    assert (csv["n_frames"] == 5).all() and csv["site"].nunique() == 2
    for r in csv.itertuples():
        path = out / r.file
        assert path.is_file() and file_sha256(path) == r.sha256
        assert (out / "ground_truth" / f"{r.sha256}.npz").is_file()
    assert not list(out.rglob(".*partial")) and not list(out.rglob(".*.tmp"))


def test_dicom_is_a_calibrated_us_multiframe_with_fake_identity(study):
    out, table, _ = study
    row = table.iloc[0]
    ds = pydicom.dcmread(out / row.file)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.3.1" and ds.Modality == "US"
    assert ds.NumberOfFrames == 5 and ds.PhotometricInterpretation == "MONOCHROME2"
    assert ds.PatientID == row.patient_id and "^" in str(ds.PatientName)
    assert len(ds.PatientBirthDate) == 8 and ds.PatientSex == row.sex and ds.PatientAge == f"{row.age:03d}Y"
    for key in (
        "StudyDate",
        "StudyTime",
        "InstitutionName",
        "ReferringPhysicianName",
        "AccessionNumber",
        "OperatorsName",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SOPInstanceUID",
        "ManufacturerModelName",
    ):
        assert str(ds.get(key, "")), key
    assert ds.Manufacturer == row.manufacturer
    region = ds.SequenceOfUltrasoundRegions[0]
    assert region.RegionSpatialFormat == 1 and region.PhysicalUnitsXDirection == 3
    assert region.RegionLocationMinY0 > 0  # the text band is above the imaging region
    assert plane_from_description(ds.SeriesDescription) == (row.plane, row.side)
    assert ds.ImageLaterality == row.side[0].upper()
    # Same seed, same bytes: UIDs are derived from the seed, not from the clock.
    assert len({str(pydicom.dcmread(out / f).SOPInstanceUID) for f in table.file}) == 16


def test_clip_reader_crops_the_text_band_and_matches_the_ground_truth(study):
    out, table, _ = study
    for r in table.itertuples():
        full = open_clip(out / r.file)
        clip = open_clip(out / r.file, crop_to_region=True)
        gt = np.load(out / "ground_truth" / f"{r.sha256}.npz")
        assert clip.shape == gt["masks"].shape == (5, 64, 80)
        assert full.shape[1] > 64 + 20  # the uncropped screen holds the text band
        assert full.imaging_region.top >= 20
        assert clip.spacing_source == "us_region"
        np.testing.assert_allclose(clip.spacing_mm, gt["spacing_mm"], rtol=1e-6)
        assert clip.side == r.side and clip.manufacturer == r.manufacturer
        assert gt["masks"].dtype == bool and gt["masks"].any(axis=(1, 2)).all()
        assert list(gt["plane_labels"]) and set(gt["quality"]) <= {"ok", "poor"}
        assert clip.frame_time_ms > 0
    # the text band really is text: bright pixels above the region, none of the image below it
    band = full.frame(0)[: full.imaging_region.top]
    assert (band > 100).sum() > 50


def test_left_side_is_the_mirror_of_a_right_side_clip_layout(study):
    out, table, _ = study
    left = table[(table.side == "left") & (table.plane == "transverse_wrist")].iloc[0]
    gt = np.load(out / "ground_truth" / f"{left.sha256}.npz")["masks"]
    assert gt.shape == (5, 64, 80)


def test_same_seed_gives_identical_files(tmp_path):
    a = run_to_end(write_study(tmp_path / "a", 1, seed=4, n_frames=2, size=(48, 48)))
    b = run_to_end(write_study(tmp_path / "b", 1, seed=4, n_frames=2, size=(48, 48)))
    assert list(a["sha256"]) == list(b["sha256"])


def test_jpeg_study_is_ybr_full_422_and_reads_back_close_to_the_uncompressed_one(tmp_path):
    plain = run_to_end(write_study(tmp_path / "plain", 1, seed=2, n_frames=3, size=(64, 64)))
    jpeg = run_to_end(write_study(tmp_path / "jpeg", 1, seed=2, n_frames=3, size=(64, 64), compress="jpeg"))
    ds = pydicom.dcmread(tmp_path / "jpeg" / jpeg.file[0])
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.JPEGBaseline8Bit
    assert ds.PhotometricInterpretation == "YBR_FULL_422" and ds.SamplesPerPixel == 3
    a = open_clip(tmp_path / "plain" / plain.file[0], crop_to_region=True).to_array().astype(float)
    b = open_clip(tmp_path / "jpeg" / jpeg.file[0], crop_to_region=True).to_array().astype(float)
    assert a.shape == b.shape and np.abs(a - b).mean() < 6


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"participants": 0}, "need at least 1 participant, got 0"),
        ({"participants": 1, "compress": "png"}, "compress must be 'none' or 'jpeg', got 'png'"),
        ({"participants": 1, "size": (8, 8)}, "frame size must be at least 32x32 pixels, got 8x8"),
        ({"participants": 1, "seed": -1}, "seed must be a non-negative integer, got -1"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(tmp_path, kwargs, message):
    with pytest.raises(InputError, match=message):
        write_study(tmp_path / "s", **kwargs)
    assert not (tmp_path / "s").exists()


def test_cli_writes_a_tiny_study(tmp_path, capsys):
    out = tmp_path / "cli"
    rc = cli_main(["phantom", str(out), "--participants", "1", "--frames", "2", "--size", "48", "48", "--quiet"])
    assert rc == 0
    assert "wrote 8 clips (16 frames) of 1 participants" in capsys.readouterr().out
    assert len(list((out / "dicom").rglob("*.dcm"))) == 8 and (out / "study.csv").is_file()


def test_cli_refuses_zero_participants_with_one_line(tmp_path, capsys):
    assert cli_main(["phantom", str(tmp_path / "x"), "--participants", "0", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.strip().endswith("need at least 1 participant, got 0") and err.count("\n") == 1


@pytest.mark.parametrize(
    "text,expected",
    [
        ("MEDIAN N TRANSV WRIST R", ("transverse_wrist", "right")),
        ("median n long forearm L", ("longitudinal_forearm", "left")),
        ("THYROID", (None, None)),
    ],
)
def test_plane_from_description(text, expected):
    assert plane_from_description(text) == expected


def test_demo_stage_writes_the_study_and_a_section_with_thumbnails(tmp_path):
    from napari_ultramn.demo.context import DemoContext
    from napari_ultramn.demo.phantom_stage import demo_stage
    from napari_ultramn.report import ReportSection

    ctx = DemoContext(out_dir=tmp_path, quick=True)
    section = run_to_end(demo_stage(ctx))
    assert isinstance(section, ReportSection) and ctx.paths["study"] == tmp_path / "study"
    assert (tmp_path / "study" / "study.csv").is_file()
    assert section.html.count("<img") == 4 and "<table" in section.html
    for plane in DEFAULT_PLANES:
        assert plane in section.html
