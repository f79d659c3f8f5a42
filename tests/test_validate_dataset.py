"""validate-dataset catches tampering and the leaks that happen in practice; inspect-dataset prints."""

import json
import shutil

import h5py
import pytest

from dataset_tools.build import build_dataset
from dataset_tools.dataset_summary import (
    counts_table,
    dataset_card,
    manifest_summary,
    read_manifest,
)
from dataset_tools.validate import dataset_problems, fingerprint_job, validate_dataset
from napari_ultramn.cli import main
from napari_ultramn.errors import InputError
from napari_ultramn.progress import run_to_end
from tests.project_factory import make_project


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("val")
    project = make_project(root / "proj", n_participants=5, raters=("r1", "r2"), seed=4)
    run_to_end(build_dataset(project, root / "ds", consensus="majority", min_frames=8))
    return root / "ds"


@pytest.fixture
def dataset(pristine, tmp_path):
    shutil.copytree(pristine, tmp_path / "ds")
    return tmp_path / "ds"


def _clips(folder):
    """(split, clip_id) of every clip, in file order."""
    out = []
    for s in ("train", "validation", "test"):
        with h5py.File(folder / f"{s}.h5", "r") as fh:
            out += [(s, c) for c in fh["clips"]]
    return out


def test_valid_dataset(pristine, capsys):
    assert dataset_problems(pristine) == []
    assert main(["validate-dataset", str(pristine), "-q"]) == 0
    assert capsys.readouterr().out.strip().endswith(": valid")


def test_missing_manifest_means_incomplete(dataset, capsys):
    (dataset / "manifest.json").unlink()
    problems = dataset_problems(dataset)
    assert len(problems) == 1 and "manifest.json: file not found (an incomplete or interrupted build?)" in problems[0]
    assert main(["validate-dataset", str(dataset), "-q"]) == 1
    assert "1 problem(s):" in capsys.readouterr().out


def test_tampered_labels_and_checksum(dataset):
    split, cid = _clips(dataset)[0]
    with h5py.File(dataset / f"{split}.h5", "r+") as fh:
        fh["clips"][cid]["plane_labels"][2] = 99
        fh["clips"][cid]["masks"][0, 0, 0] = 3
    problems = dataset_problems(dataset)
    assert any(f"{split}.h5: checksum differs from the manifest" in p for p in problems)
    assert f"{split}.h5:/clips/{cid}: plane_labels out of range [-1, 4] at frame(s) [2]" in problems
    assert f"{split}.h5:/clips/{cid}: masks hold values other than 0 and 1 (max 3)" in problems


def test_participant_in_two_splits(dataset):
    clips = _clips(dataset)
    (sa, ca), (sb, _) = clips[0], next(c for c in clips if c[0] != clips[0][0])
    with h5py.File(dataset / f"{sa}.h5", "r") as src, h5py.File(dataset / f"{sb}.h5", "r+") as dst:
        src.copy(src["clips"][ca], dst["clips"], name="copied_clip")
        participant = src["clips"][ca].attrs["participant"]
    problems = dataset_problems(dataset, fingerprints=False)
    assert any(p.startswith(f"participant {participant} appears in several splits") for p in problems)
    assert any("copied_clip: not listed in the manifest" in p for p in problems)
    assert any("source file sha256" in p and "copied_clip" in p for p in problems)


def _share_frames(dataset, n: int):
    """The first ``n`` frames of one participant's clip copied into another participant's clip;
    the two manifest entries."""
    manifest = json.loads((dataset / "manifest.json").read_text())
    by_participant = {}
    for c in manifest["clips"]:
        by_participant.setdefault(c["participant"], c)
    a, b = list(by_participant.values())[:2]
    with h5py.File(dataset / f"{a['split']}.h5", "r") as fa:
        frames = fa["clips"][a["clip_id"]]["frames"][()]
    with h5py.File(dataset / f"{b['split']}.h5", "r+") as fb:
        fb["clips"][b["clip_id"]]["frames"][:n] = frames[:n]
    return a, b


def test_same_patient_under_two_pseudonyms(dataset):
    a, b = _share_frames(dataset, 3)
    problems = dataset_problems(dataset)
    assert any(
        f"participants {min(a['participant'], b['participant'])}" in p
        and "share 3 identical frame(s): likely the same patient under two pseudonyms" in p
        for p in problems
    )


def test_workers_find_the_same_problems_and_unreadable_frames_are_one(dataset):
    """Fingerprints computed in 2 processes give the problems one process gives; a clip whose
    frames cannot be read is a problem naming it, not a crash."""
    a, _ = _share_frames(dataset, 4)
    one = dataset_problems(dataset)
    two = run_to_end(validate_dataset(dataset, workers=2))
    assert one == two and any("identical frame(s)" in p for p in one)
    with h5py.File(dataset / f"{a['split']}.h5", "r+") as fa:
        del fa["clips"][a["clip_id"]]["frames"]
        fa["clips"][a["clip_id"]]["frames"] = h5py.SoftLink("/nowhere")  # a dangling link: unreadable
    problems = run_to_end(validate_dataset(dataset, workers=2))
    assert f"{a['split']}.h5:/clips/{a['clip_id']}: cannot be read (KeyError: " in "\n".join(problems)
    frame_prints, clip_print, error = fingerprint_job(None, (str(dataset / "gone.h5"), "c1", "P1", "train"))
    assert frame_prints == [] and error.startswith("FileNotFoundError") and "gone.h5" in error


def test_same_source_file_twice(dataset):
    (sa, ca), (sb, cb) = _clips(dataset)[:2]
    with h5py.File(dataset / f"{sa}.h5", "r") as fa:
        sha = fa["clips"][ca].attrs["source_sha256"]
    with h5py.File(dataset / f"{sb}.h5", "r+") as fb:
        fb["clips"][cb].attrs["source_sha256"] = sha
    problems = dataset_problems(dataset, fingerprints=False)
    assert f"source file sha256 {sha[:16]}... appears in several clips: {ca} ({sa}), {cb} ({sb})" in problems


def test_not_a_folder(tmp_path):
    with pytest.raises(InputError, match="missing: is not a folder"):
        dataset_problems(tmp_path / "missing")


def test_inspect_counts_and_cli(pristine, capsys):
    counts = counts_table(pristine)
    manifest = read_manifest(pristine)
    totals = counts[counts["plane"] == "(all)"].set_index("split")
    for f in manifest["files"]:
        assert totals.loc[f["split"], "clips"] == f["clips"]
        assert totals.loc[f["split"], "frames"] == f["frames"]
    per_row = counts[counts["plane"] != "(all)"]
    assert per_row["clips"].sum() == len(manifest["clips"])
    assert manifest_summary(manifest)["frames"] == per_row["frames"].sum()
    assert main(["inspect-dataset", str(pristine), "--clips"]) == 0
    out = capsys.readouterr().out
    assert "annotated_frames" in out and "labels consensus:majority" in out
    assert "Counts per split, plane and side" in dataset_card(manifest)


def test_inspect_cli_on_a_non_dataset(tmp_path, capsys):
    assert main(["inspect-dataset", str(tmp_path)]) == 2
    assert "holds no dataset files (train.h5, validation.h5, test.h5)" in capsys.readouterr().err
