"""Ingest's imaging-area decision (contract C): correction > mapping region > DICOM regions >
detection; refusals with the way on; --no-crop recorded; re-ingest applies a saved correction."""

import json

import numpy as np
import pytest

from dataset_tools import deid
from dataset_tools.ingest import ingest
from napari_ultramn.cli import main as cli_main
from napari_ultramn.io.clip import Region
from napari_ultramn.io.source_files import file_sha256
from napari_ultramn.progress import run_to_end
from napari_ultramn.project import Project
from tests.ingest_support import (
    SCREEN_AREA,
    make_us_dicom,
    screen_frames,
    write_frame_folder,
    write_mapping,
)


@pytest.fixture
def recordings(tmp_path):
    """SOURCE with a screen recording, and one showing the scanner's UI but no image at all."""
    src = tmp_path / "src"
    write_frame_folder(src / "site1" / "rec_moving", screen_frames(seed=1))
    write_frame_folder(src / "site1" / "rec_still", screen_frames(seed=2, image=False))
    mapping = write_mapping(
        tmp_path / "map.csv",
        ["file", "patient_id", "side"],
        [["site1/rec_moving", "PAT-1", "left"], ["site1/rec_still", "PAT-2", "right"]],
    )
    return src, mapping


def by_patient(project_dir):
    project = Project.open(project_dir)
    key = project.pseudonym_key()
    return {
        pid: next((r for r in project.clips() if r["participant"] == deid.pseudonym(key, pid)), None)
        for pid in ("PAT-1", "PAT-2")
    }


def assert_near_screen_area(rec):
    """The detected crop is the drawn imaging area (within 2 px: detectors may trim an edge)."""
    top, left, bottom, right = rec["crop_region"]
    assert np.abs(np.subtract(rec["crop_region"], SCREEN_AREA)).max() <= 2, rec["crop_region"]
    assert rec["imaging_area"]["region"] == rec["crop_region"]
    assert rec["frame_shape"] == [bottom - top, right - left]


def test_detected_area_crops_and_an_uncertain_file_is_refused_with_the_way_on(tmp_path, recordings, capsys):
    src, mapping = recordings
    project_dir = tmp_path / "p"
    assert cli_main(["ingest", str(src), str(project_dir), "--mapping", str(mapping), "-q"]) == 2
    out = capsys.readouterr().out
    failed = [line for line in out.splitlines() if "failed:" in line]
    assert len(failed) == 1
    assert failed[0].startswith("  failed: site1/rec_still: refused: imaging area not found")
    assert "mapping CSV (column region" in failed[0] and "--no-crop" in failed[0]
    recs = by_patient(project_dir)
    assert recs["PAT-2"] is None  # never kept as a full frame silently
    moving = recs["PAT-1"]
    assert_near_screen_area(moving)
    assert moving["imaging_area"]["source"] == "detected" and moving["no_crop"] is False
    frames = Project.open(project_dir).open_clip(moving["clip_id"]).to_array()
    assert frames.shape == (6, *moving["frame_shape"]) and frames.max() < 255  # the text bar is gone
    assert not Project.open(project_dir).config.get("no_crop")


def test_no_crop_keeps_the_whole_frame_and_is_recorded(tmp_path, recordings):
    src, mapping = recordings
    summary = run_to_end(ingest(src, tmp_path / "p", mapping_csv=mapping, no_crop=True))
    assert len(summary.added) == 2 and not summary.failed
    still, moving = by_patient(tmp_path / "p")["PAT-2"], by_patient(tmp_path / "p")["PAT-1"]
    assert still["no_crop"] is True and still["crop_region"] is None and still["imaging_area"] is None
    assert still["frame_shape"] == [96, 128]
    assert moving["no_crop"] is False  # detection still crops where it is confident
    assert_near_screen_area(moving)
    assert json.loads((tmp_path / "p" / "project.json").read_text())["no_crop"] is True


def test_mapping_region_wins_over_detection(tmp_path, recordings):
    src, _ = recordings
    mapping = write_mapping(
        tmp_path / "m.csv",
        ["file", "patient_id", "region"],
        [["site1/rec_moving", "PAT-1", "12 14 72 56"], ["site1/rec_still", "PAT-2", "10 15 70 55"]],
    )
    summary = run_to_end(ingest(src, tmp_path / "p", mapping_csv=mapping))
    assert len(summary.added) == 2 and not summary.failed
    recs = by_patient(tmp_path / "p")
    assert recs["PAT-1"]["crop_region"] == [14, 12, 56, 72]  # x0 y0 x1 y1 -> top left bottom right
    assert recs["PAT-1"]["imaging_area"]["source"] == "mapping"
    assert recs["PAT-2"]["frame_shape"] == [40, 60]


def test_mapping_region_outside_the_frame_is_refused(tmp_path, recordings):
    src, _ = recordings
    mapping = write_mapping(
        tmp_path / "m.csv", ["file", "patient_id", "region"], [["site1/rec_moving", "PAT-1", "0 0 200 50"]]
    )
    summary = run_to_end(ingest(src / "site1" / "rec_moving", tmp_path / "p", mapping_csv=mapping))
    [(name, problem)] = summary.failed
    assert name == str(src / "site1" / "rec_moving")  # a single SOURCE is named as given
    assert "mapping CSV region [0, 0, 50, 200] (top, left, bottom, right) lies outside the 128x96 frame" in problem


def burned_in_dicom(path, with_region: bool):
    """A DICOM screen capture: BurnedInAnnotation YES, and ultrasound regions only if asked."""
    import pydicom

    make_us_dicom(path, n_frames=4)
    ds = pydicom.dcmread(path)
    ds.BurnedInAnnotation = "YES"
    if not with_region:
        del ds.SequenceOfUltrasoundRegions
    ds.save_as(path, enforce_file_format=True)


def test_burned_in_annotation_without_regions_is_never_kept_whole(tmp_path):
    src = tmp_path / "src"
    burned_in_dicom(src / "shot.dcm", with_region=False)
    burned_in_dicom(src / "with_regions.dcm", with_region=True)
    summary = run_to_end(ingest(src, tmp_path / "p", no_crop=True))
    assert len(summary.added) == 1  # its ultrasound regions are enough
    [(name, problem)] = summary.failed
    assert name == "shot.dcm" and "BurnedInAnnotation YES" in problem
    assert "mapping CSV (column region" in problem and "--no-crop does not apply" in problem
    mapping = write_mapping(tmp_path / "m.csv", ["file", "region"], [["shot.dcm", "0 10 32 40"]])
    again = run_to_end(ingest(src, tmp_path / "p", mapping_csv=mapping))
    assert len(again.added) == 1 and not again.failed


def test_reingest_applies_a_saved_correction_and_sets_misfitting_annotations_aside(tmp_path, recordings):
    from napari_ultramn.region_corrections import save_correction  # the module is contract B's

    src, mapping = recordings
    project_dir = tmp_path / "p"
    run_to_end(ingest(src, project_dir, mapping_csv=mapping))
    rec = by_patient(project_dir)["PAT-1"]
    annotation = project_dir / "annotations" / rec["clip_id"] / "alice.json"
    annotation.parent.mkdir(parents=True)
    annotation.write_text("{}")
    save_correction(project_dir, file_sha256(src / "site1" / "rec_moving"), Region(20, 10, 50, 70))
    summary = run_to_end(ingest(src, project_dir, mapping_csv=mapping))
    assert [clip_id for clip_id, _ in summary.recropped] == [rec["clip_id"]]
    note = summary.recropped[0][1]
    assert "re-cropped to its correction [20, 10, 50, 70]" in note and "alice" in note
    new = by_patient(project_dir)["PAT-1"]
    assert new["crop_region"] == [20, 10, 50, 70] and new["imaging_area"]["source"] == "corrected"
    assert Project.open(project_dir).open_clip(new["clip_id"]).shape == (6, 30, 60)
    assert not annotation.exists() and len(list(annotation.parent.glob("alice.json.recropped-*"))) == 1
    # a third run finds the recorded crop equal to the correction: a no-op again
    third = run_to_end(ingest(src, project_dir, mapping_csv=mapping))
    assert not third.recropped and not third.added


def test_the_area_decision_is_recorded_per_clip_in_the_registry_schema(tmp_path, recordings):
    src, mapping = recordings
    run_to_end(ingest(src, tmp_path / "p", mapping_csv=mapping))
    area = by_patient(tmp_path / "p")["PAT-1"]["imaging_area"]
    assert set(area) >= {"source", "shape", "region", "confidence", "blanked_rle", "blanked_pixels"}
    top, left, bottom, right = area["region"]
    assert 0 <= area["confidence"] <= 1 and np.sum(area["blanked_rle"]) == (bottom - top) * (right - left)
