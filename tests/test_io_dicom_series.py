"""A folder of single-frame DICOMs as one clip: order, decoding, calibration, timing, refusals."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom import uid

from dataset_tools.ingest import find_sources
from napari_ultramn._reader import napari_get_reader, read_clips
from napari_ultramn.errors import InputError
from napari_ultramn.io import dicom as dicom_io
from napari_ultramn.io import open_clip
from napari_ultramn.io.dicom_series import series_files
from tests.dicom_factory import LOSSY, gray_frames, write_dicom, write_frame, write_sr


def _message(path) -> str:
    with pytest.raises(InputError) as info:
        open_clip(path)
    return str(info.value)


@pytest.fixture
def series(tmp_path):
    """Five frames whose file names run against their InstanceNumbers, 40 ms apart."""
    folder = tmp_path / "series"
    folder.mkdir()
    frames = gray_frames(5, 24, 32)
    for k, frame in enumerate(frames):
        write_frame(
            folder / f"IM{5 - k:04d}.dcm",
            frame,
            number=k + 1,
            time=f"1015{10 + k * 0.04:09.6f}",
            region=(2, 3, 20, 30),
            delta_cm=(0.02, 0.025),
        )
    return folder, frames


def test_frames_ordered_by_instance_number_with_calibration_and_timing(series):
    folder, frames = series
    clip = open_clip(folder)
    assert clip.shape == (5, 24, 32)
    np.testing.assert_array_equal(clip.to_array(), frames)
    assert clip.spacing_mm == pytest.approx((0.2, 0.25)) and clip.spacing_source == "us_region"
    assert clip.imaging_region.as_list() == [2, 3, 20, 30]
    assert clip.frame_time_ms == pytest.approx(40.0)
    assert clip.manufacturer == "PhantomCo" and clip.side == "left"
    assert clip.extra["series_instance_uid"] == "1.2.3.4" and clip.extra["frame_files"] == 5
    assert series_files(folder) == [folder / f"IM{5 - k:04d}.dcm" for k in range(5)]
    assert open_clip(folder, crop_to_region=True).shape == (5, 18, 27)


def test_without_instance_numbers_acquisition_time_then_name_decides(tmp_path):
    frames = gray_frames(4, 16, 16)
    times = ["101502", "101501", None, None]  # the last two: no time, so by name
    names = ["b.dcm", "a.dcm", "d10.dcm", "d9.dcm"]
    for frame, time, name in zip(frames, times, names):
        write_frame(tmp_path / name, frame, time=time)
    np.testing.assert_array_equal(open_clip(tmp_path).to_array(), frames[[1, 0, 3, 2]])


def test_opening_decodes_one_frame_and_files_mix_codecs(tmp_path, monkeypatch):
    frames = gray_frames(3, 16, 24)
    expected = [
        write_frame(
            tmp_path / "1.dcm", frames[0], number=1, photometric="YBR_FULL_422", transfer_syntax=uid.JPEGBaseline8Bit
        ),
        write_frame(tmp_path / "2.dcm", frames[1], number=2, transfer_syntax=uid.RLELossless),
        write_frame(tmp_path / "3.dcm", frames[2], number=3, photometric="RGB"),
    ]
    calls = []
    real = dicom_io._decode_frame
    monkeypatch.setattr(dicom_io, "_decode_frame", lambda *a: calls.append(1) or real(*a))
    clip = open_clip(tmp_path)
    assert len(calls) == 1
    got = clip.to_array().astype(int)
    assert np.abs(got[0] - expected[0]).max() <= LOSSY[uid.JPEGBaseline8Bit]
    np.testing.assert_array_equal(got[1:], np.stack(expected[1:]))
    assert clip.frame_time_ms is None  # no acquisition times and no timing fields


def test_mixed_series_sizes_and_empty_folders_are_refused(tmp_path):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    write_frame(mixed / "a.dcm", gray_frames(1, 8, 8)[0], series="1.2.3.4")
    write_frame(mixed / "b.dcm", gray_frames(1, 8, 8)[0], series="1.2.3.5")
    assert _message(mixed) == (
        f"{mixed}: holds DICOM images of 2 series (1.2.3.4 in a.dcm, 1.2.3.5 in b.dcm); "
        "a folder is read as one series: put each series in a folder of its own"
    )
    sizes = tmp_path / "sizes"
    sizes.mkdir()
    write_frame(sizes / "a.dcm", gray_frames(1, 8, 8)[0])
    write_frame(sizes / "b.dcm", gray_frames(1, 8, 12)[0])
    assert _message(sizes) == (
        f"{sizes}: images differ in size: a.dcm is 8x8, b.dcm is 8x12 (rows x columns); a clip needs one size"
    )
    cines = tmp_path / "cines"
    cines.mkdir()
    write_dicom(cines / "IM1.dcm", gray_frames(3, 8, 8))
    write_sr(cines / "SR1.dcm")
    assert _message(cines).endswith(
        "cines: folder holds no single-frame DICOM images (2 other DICOM file(s), e.g. IM1.dcm: "
        "open each file on its own)"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _message(empty).endswith("empty: folder holds no PNG, JPEG, BMP or TIFF frames and no DICOM files")


def test_a_corrupt_member_is_named_when_its_frame_is_read(series):
    folder, _ = series
    (folder / "IM0003.dcm").write_bytes((folder / "IM0003.dcm").read_bytes()[:-100])
    clip = open_clip(folder)  # frame 0 is IM0005
    with pytest.raises(InputError) as info:
        clip.frame(2)
    assert str(info.value).startswith(f"{folder / 'IM0003.dcm'}: ")
    assert "truncated" in str(info.value)


def test_cines_and_reports_beside_a_series_are_skipped_and_found_on_their_own(series):
    folder, frames = series
    write_dicom(folder / "cine.dcm", gray_frames(3, 10, 10))
    write_sr(folder / "report.dcm")
    clip = open_clip(folder)
    np.testing.assert_array_equal(clip.to_array(), frames)
    assert clip.extra["skipped_files"] == ["cine.dcm", "report.dcm"]
    assert find_sources(folder) == [folder, folder / "cine.dcm", folder / "report.dcm"]
    assert napari_get_reader(str(folder)) is read_clips
    [(data, kwargs, _)] = read_clips(str(folder))
    assert data.shape == (5, 24, 32) and kwargs["name"] == "series"


def test_find_sources_one_clip_per_series_folder(tmp_path):
    study = tmp_path / "study"
    (study / "p1").mkdir(parents=True)
    for k in range(3):
        write_frame(study / "p1" / f"IM{k}", gray_frames(1, 8, 8, seed=k)[0], number=k)  # no suffix
    (study / "p2").mkdir()
    write_dicom(study / "p2" / "cine1.dcm", gray_frames(2, 8, 8))
    write_dicom(study / "p2" / "cine2.dcm", gray_frames(2, 8, 8, seed=1))
    (study / "stills").mkdir()  # one still per series: each file is a clip
    write_frame(study / "stills" / "s1.dcm", gray_frames(1, 8, 8)[0], series="1.9.1")
    write_frame(study / "stills" / "s2.dcm", gray_frames(1, 8, 8)[0], series="1.9.2")
    (study / "tangle").mkdir()  # two series of two frames: the folder, refused when opened
    for k in range(4):
        write_frame(study / "tangle" / f"t{k}.dcm", gray_frames(1, 8, 8)[0], series=f"1.8.{k % 2}")
    assert find_sources(study) == [
        study / "p1",
        study / "p2" / "cine1.dcm",
        study / "p2" / "cine2.dcm",
        study / "stills" / "s1.dcm",
        study / "stills" / "s2.dcm",
        study / "tangle",
    ]
    assert find_sources(study / "p1") == [study / "p1"]
    assert open_clip(study / "p1").shape == (3, 8, 8)
    assert "holds DICOM images of 2 series (1.8.0 in t0.dcm, 1.8.1 in t1.dcm)" in _message(study / "tangle")


def test_ingest_reads_the_series_identity_from_its_first_frame(series, tmp_path):
    """No mapping CSV: the participant comes from the series' PatientID, as for a cine file."""
    from dataset_tools import deid
    from dataset_tools.ingest import ingest
    from napari_ultramn.progress import run_to_end
    from napari_ultramn.project import Project

    folder, frames = series
    patient_id = pydicom.dcmread(series_files(folder)[0]).PatientID
    summary = run_to_end(ingest(folder, tmp_path / "project"))
    assert summary.failed == [] and len(summary.added) == 1
    project = Project.open(tmp_path / "project")
    record = project.clips()[0]
    assert record["source_kind"] == "dicom_series" and record["n_frames"] == len(frames)
    assert record["participant"] == deid.pseudonym(project.pseudonym_key(), patient_id)
    assert record["crop_region"] == [2, 3, 20, 30]
