"""The ingest mapping CSV: checked before anything is written; site names and ages de-identified."""

import pytest

from dataset_tools.ingest import ingest
from dataset_tools.ingest_mapping import AGE_BANDS, parse_region, read_mapping
from napari_ultramn.cli import main as cli_main
from napari_ultramn.errors import InputError
from napari_ultramn.progress import run_to_end
from napari_ultramn.project import Project
from tests.ingest_support import screen_frames, write_frame_folder, write_mapping  # noqa: F401


@pytest.fixture
def src(tmp_path):
    folder = tmp_path / "src"
    write_frame_folder(folder / "rec1", screen_frames(seed=1))
    return folder


def test_age_bands_are_the_ones_deid_produces():
    from dataset_tools import deid

    produced = {deid.age_band(f"{age:03d}Y", None, None) for age in range(0, 120)}
    assert produced == set(AGE_BANDS)


@pytest.mark.parametrize(
    "header, row, message",
    [
        (
            ["file", "patient_id", "age"],
            ["rec1", "P1", "93"],
            "mapping CSV has unknown column(s) 'age'; its columns are file, patient_id, side, plane, sex, "
            "age_band, site, region",
        ),
        (["patient_id"], ["P1"], "mapping CSV needs a 'file' column"),
        (
            ["file", "age_band"],
            ["rec1", "exactly 93 (born 1930-01-01)"],
            "line 2 (rec1): age_band must be a decade band (0-9, 10-19, ..., 80-89, 90+); an exact age "
            "or a date identifies the person",
        ),
        (["file", "age_band"], ["rec1", "93"], "line 2 (rec1): age_band must be a decade band"),
        (["file", "side"], ["rec1", "lft"], "line 2 (rec1): side must be 'left' or 'right', got 'lft'"),
        (["file", "region"], ["rec1", "10 20 5 40"], "line 2 (rec1): region '10 20 5 40' is empty"),
        (["file", "region"], ["rec1", "10 20 30"], "line 2 (rec1): region must be four whole pixel numbers"),
        (["file", "patient_id"], ["", "P1"], "line 2: the 'file' cell is empty"),
    ],
)
def test_a_bad_mapping_csv_is_refused_with_one_line(tmp_path, src, capsys, header, row, message):
    mapping = write_mapping(tmp_path / "map.csv", header, [row])
    code = cli_main(["ingest", str(src), str(tmp_path / "p"), "--mapping", str(mapping), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"map.csv: {message}" in err
    assert "1930" not in err  # an identifying value is never echoed
    assert not (tmp_path / "p" / "clips").exists()  # refused before anything was written


def test_a_file_listed_twice_is_refused(tmp_path):
    mapping = write_mapping(tmp_path / "m.csv", ["file", "patient_id"], [["a/x.mp4", "1"], ["./a/x.mp4", "2"]])
    with pytest.raises(InputError, match="line 3: file 'a/x.mp4' is listed twice"):
        read_mapping(mapping)


def test_file_names_match_only_where_unique(tmp_path):
    mapping = read_mapping(
        write_mapping(
            tmp_path / "m.csv",
            ["file", "patient_id"],
            [["a/IM0001.dcm", "1"], ["b/IM0001.dcm", "2"], ["c/only.dcm", "3"]],
        )
    )
    assert mapping["a/IM0001.dcm"]["patient_id"] == "1" and "IM0001.dcm" not in mapping
    assert mapping["only.dcm"]["patient_id"] == "3"


def test_region_is_x0_y0_x1_y1_in_source_pixels():
    r = parse_region("10, 20 ;110 220")
    assert (r.top, r.left, r.bottom, r.right) == (20, 10, 220, 110)


def test_site_names_become_pseudonyms_and_bands_are_kept(tmp_path, src):
    mapping = write_mapping(
        tmp_path / "map.csv",
        ["file", "patient_id", "sex", "age_band", "site"],
        [["rec1", "PAT-77", "female", "90+", "Klinikum Nord Radiologie"]],
    )
    summary = run_to_end(ingest(src, tmp_path / "p", mapping_csv=mapping))
    assert len(summary.added) == 1
    project = Project.open(tmp_path / "p")
    [rec] = project.clips()
    assert rec["age_band"] == "90+" and rec["sex"] == "F"
    from dataset_tools import deid

    assert rec["site"] == deid.site_pseudonym(project.pseudonym_key(), "Klinikum Nord Radiologie")
    for path in (tmp_path / "p").rglob("*"):
        if path.is_file() and ".secret" not in path.parts:
            data = path.read_bytes()
            assert b"Klinikum" not in data and b"PAT-77" not in data, path
