"""Building participant-split HDF5 datasets: layout, labels, exclusions, resampling, atomicity."""

import errno
import json
import os
import re
import shutil
import socket
import subprocess
import sys

import h5py
import numpy as np
import pytest

from dataset_tools import build_clips
from dataset_tools.build import build_dataset, sha256_file
from dataset_tools.consensus import clip_consensus
from dataset_tools.labels import target_geometry
from dataset_tools.validate import dataset_problems
from napari_ultramn.cli import main
from napari_ultramn.errors import InputError
from napari_ultramn.io.hdf5clip import read_hdf5_clip
from napari_ultramn.progress import run_to_end
from napari_ultramn.schema import read_json
from tests.project_factory import make_project

SPLIT_FILES = ("train.h5", "validation.h5", "test.h5")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("build") / "proj"
    return make_project(root, n_participants=6, unusable=("p1_c0",), short={"p2_c1": 5}, unannotated=("p3_c1",), seed=1)


@pytest.fixture(scope="module")
def built(project, tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "dataset"
    manifest = run_to_end(build_dataset(project, out, consensus="majority", min_frames=8))
    return out, manifest


def attrs_split(manifest, clip_id):
    return next(c["split"] for c in manifest["clips"] if c["clip_id"] == clip_id)


def _groups(folder):
    out = {}
    for name in SPLIT_FILES:
        with h5py.File(folder / name, "r") as fh:
            for cid, g in fh["clips"].items():
                out[cid] = (fh.attrs["split"], dict(g.attrs), {k: g[k][()] for k in g})
    return out


def test_layout_and_manifest(built, project):
    out, manifest = built
    assert sorted(p.name for p in out.iterdir()) == sorted([*SPLIT_FILES, "split.json", "manifest.json", "README.md"])
    assert read_json(out / "manifest.json", "dataset_manifest") == manifest
    for f in manifest["files"]:
        assert sha256_file(out / f["file"]) == f["sha256"]
    assert manifest["vocabulary"] == project.plane_labels
    assert manifest["label_source"]["consensus"] == "majority"
    assert manifest["split"]["seed"] == 0
    with h5py.File(out / "train.h5", "r") as fh:
        assert fh.attrs["dataset_format"] == "ultramn-dataset" and fh.attrs["split"] == "train"
        assert json.loads(fh.attrs["vocabulary"]) == project.plane_labels
        g = fh["clips"][sorted(fh["clips"])[0]]
        t, h, w = g["frames"].shape
        assert g["frames"].dtype == np.uint8 and g["frames"].chunks == (1, h, w)
        assert g["masks"].shape == (t, h, w) and g["masks"].dtype == np.uint8
        assert g["frames"]._filters["32001"][-1] == 5 and g["masks"]._filters["32001"][-1] == 1  # Blosc zstd, lz4
        assert g["plane_labels"].dtype == np.int16 and g["plane_labels"].shape == (t,)
        assert g["provenance"].dtype == np.int8 and g["annotated"].dtype == bool
        assert g.attrs["participant"].startswith("P") and g.attrs["side"] in ("left", "right")
        assert len(g.attrs["source_sha256"]) == 64
    card = (out / "README.md").read_text()
    assert "Dataset card" in card and "by participant" in card.lower()


def test_exclusions_listed_with_reasons(built):
    _, manifest = built
    reasons = {e["clip_id"]: e["reason"] for e in manifest["excluded"]}
    assert reasons == {
        "p1_c0": "flagged unusable by the majority of raters",
        "p2_c1": "too short for the window: 5 frames < 8",
        "p3_c1": "no consensus: 0 rater(s), need 2",
    }
    included = {c["clip_id"] for c in manifest["clips"]}
    assert not included & set(reasons) and len(included) == 12 - 3


def test_consensus_labels_match_clip_consensus(built, project):
    out, _ = built
    groups = _groups(out)
    cid = "p0_c1"
    _, attrs, data = groups[cid]
    expected = clip_consensus(project.annotations.load_all(cid), method="majority")
    np.testing.assert_array_equal(data["masks"].astype(bool), expected.masks)
    np.testing.assert_array_equal(data["annotated"], expected.annotated)
    np.testing.assert_array_equal(data["provenance"], expected.provenance)
    vocab = project.plane_labels
    codes = [vocab.index(p) if p else -1 for p in expected.frame_planes]
    np.testing.assert_array_equal(data["plane_labels"], codes)
    assert data["plane_labels"][-1] == vocab.index("non_standard")  # the odd clips' tail
    assert attrs["clip_plane_code"] == vocab.index(project.clip_record(cid)["plane"])
    np.testing.assert_array_equal(data["frames"], project.open_clip(cid).to_array())


def test_participants_never_split(built):
    _, manifest = built
    seen = {}
    for c in manifest["clips"]:
        assert seen.setdefault(c["participant"], c["split"]) == c["split"]
    assert {f["split"] for f in manifest["files"] if f["clips"]} == {"train", "validation", "test"}


def test_dataset_clip_opens_with_read_hdf5_clip(built):
    out, manifest = built
    entry = manifest["clips"][0]
    clip = read_hdf5_clip(out / f"{entry['split']}.h5", entry["clip_id"])
    assert clip.frames.shape == (entry["n_frames"], *entry["frame_shape"])
    assert clip.spacing_mm == (0.1, 0.1) and clip.participant == entry["participant"]


def test_rater_labels_and_resize(project, tmp_path):
    manifest = run_to_end(
        build_dataset(project, tmp_path / "ds", rater="r2", size=(16, 20), min_frames=8, compression="gzip")
    )
    assert manifest["label_source"] == {
        "method": "rater",
        "consensus": None,
        "rater": "r2",
        "min_raters": 2,
        "description": "rater:r2",
    }
    assert "p3_c1" in {e["clip_id"] for e in manifest["excluded"]}
    _, attrs, data = _groups(tmp_path / "ds")["p0_c0"]
    with h5py.File(tmp_path / "ds" / f"{attrs_split(manifest, 'p0_c0')}.h5", "r") as fh:
        assert fh["clips/p0_c0/frames"].compression == "gzip"
    assert data["frames"].shape == data["masks"].shape == (12, 16, 20)
    np.testing.assert_allclose(attrs["spacing_mm"], [0.2, 0.2])
    np.testing.assert_array_equal(attrs["original_frame_shape"], [32, 40])
    truth = project.annotations.load("p0_c0", "r2").mask_stack()[0]
    # nearest/threshold masks keep roughly the same area fraction
    assert abs(data["masks"].mean() - truth.mean()) < 0.02


@pytest.mark.parametrize(
    "shape, spacing, size, spacing_mm, expected",
    [
        ((32, 40), (0.1, 0.1), None, None, ((32, 40), (32, 40), (0.1, 0.1))),
        ((32, 40), (0.1, 0.1), (16, 20), None, ((16, 20), (16, 20), (0.2, 0.2))),
        ((32, 40), (0.1, 0.2), None, 0.2, ((16, 40), (16, 40), (0.2, 0.2))),
        ((32, 40), (0.1, 0.1), (20, 30), 0.2, ((16, 20), (20, 30), (0.2, 0.2))),
        ((32, 40), None, (16, 20), None, ((16, 20), (16, 20), None)),
    ],
)
def test_target_geometry(shape, spacing, size, spacing_mm, expected):
    assert target_geometry(shape, spacing, size, spacing_mm) == expected


def test_spacing_with_size_crops_and_pads(project, tmp_path):
    run_to_end(build_dataset(project, tmp_path / "ds", rater="r1", spacing_mm=0.2, size=(20, 16), min_frames=8))
    _, attrs, data = _groups(tmp_path / "ds")["p0_c0"]
    assert data["frames"].shape == (12, 20, 16)
    assert not data["frames"][:, 16:].any()  # 16 rows of depth, padded below (rows from the top)
    np.testing.assert_allclose(attrs["spacing_mm"], [0.2, 0.2])


def test_uncalibrated_excluded_when_resampling_to_spacing(tmp_path):
    project = make_project(tmp_path / "p", n_participants=3, raters=("r1",), spacing_mm=None)
    with pytest.raises(InputError, match="no clip can be used: uncalibrated"):
        run_to_end(build_dataset(project, tmp_path / "ds", rater="r1", spacing_mm=0.2, min_frames=4))


def test_split_file_rebuilds_exactly(project, built, tmp_path):
    out, manifest = built
    again = run_to_end(
        build_dataset(
            project, tmp_path / "re", consensus="majority", min_frames=8, seed=99, split_file=out / "split.json"
        )
    )
    assert again["clips"] == manifest["clips"] and again["split"]["seed"] == 0
    assert (tmp_path / "re" / "split.json").read_text() == (out / "split.json").read_text()


def test_broken_files_exclude_their_clip(tmp_path):
    project = make_project(tmp_path / "p", n_participants=3, raters=("r1",))
    project.annotations.path("p0_c0", "r1").write_text("{ not json")
    project.clip_path("p1_c1").write_bytes(b"not hdf5")
    manifest = run_to_end(build_dataset(project, tmp_path / "ds", rater="r1", min_frames=4))
    reasons = {e["clip_id"]: e["reason"] for e in manifest["excluded"]}
    assert reasons["p0_c0"].startswith("labels unusable: ") and "r1.json: is not valid JSON" in reasons["p0_c0"]
    assert reasons["p1_c1"].startswith("frames unreadable: ") and "p1_c1.h5" in reasons["p1_c1"]


def test_frames_copied_compressed_only_when_stored_alike(project, tmp_path):
    """A project clip's Blosc-Zstd chunks go into a zstd dataset as they are; another filter or a
    resampled clip is decoded (and encoded again), with the same pixels either way."""
    with h5py.File(project.clip_path("p0_c0"), "r") as fh:
        stored = [fh["frames"].id.read_direct_chunk((t, 0, 0)) for t in range(fh["frames"].shape[0])]
        frames = fh["frames"][()]
    copied = build_clips.read_compressed_frames(project, "p0_c0", "zstd", lambda shape: True)
    assert copied.shape == frames.shape and copied.chunks == stored
    assert build_clips.read_compressed_frames(project, "p0_c0", "lz4", lambda shape: True) is None
    assert build_clips.read_compressed_frames(project, "p0_c0", "zstd", lambda shape: False) is None
    manifest = run_to_end(build_dataset(project, tmp_path / "lz4", rater="r1", min_frames=8, compression="lz4"))
    with h5py.File(tmp_path / "lz4" / f"{attrs_split(manifest, 'p0_c0')}.h5", "r") as fh:
        assert fh["clips/p0_c0/frames"]._filters["32001"][-1] == 1  # Blosc-LZ4, not the project's zstd
        np.testing.assert_array_equal(fh["clips/p0_c0/frames"][()], frames)


def test_damaged_chunk_is_not_copied_and_excludes_its_clip(tmp_path):
    project = make_project(tmp_path / "p", n_participants=2, raters=("r1",))
    with h5py.File(project.clip_path("p1_c0"), "r+") as fh:
        mask, chunk = fh["frames"].id.read_direct_chunk((3, 0, 0))
        fh["frames"].id.write_direct_chunk((3, 0, 0), chunk[:-9], mask)  # truncated: its header says longer
    assert build_clips.read_compressed_frames(project, "p1_c0", "zstd", lambda shape: True) is None
    manifest = run_to_end(build_dataset(project, tmp_path / "ds", rater="r1", min_frames=4))
    reasons = {e["clip_id"]: e["reason"] for e in manifest["excluded"]}
    assert reasons["p1_c0"].startswith("frames unreadable: ") and "p1_c0.h5" in reasons["p1_c0"]


def test_single_rater_project_has_no_consensus(tmp_path):
    project = make_project(tmp_path / "p", n_participants=3, raters=("solo",))
    with pytest.raises(InputError, match="no clip can be used: no consensus: 1 rater"):
        run_to_end(build_dataset(project, tmp_path / "ds", consensus="staple", min_frames=4))


def test_interrupted_build_leaves_nothing(project, tmp_path, monkeypatch):
    real, calls = build_clips._prepare_one, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(build_clips, "_prepare_one", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        run_to_end(build_dataset(project, tmp_path / "ds", rater="r1", min_frames=8))
    assert list(tmp_path.iterdir()) == []


def test_cancelled_build_leaves_nothing(project, tmp_path):
    gen = build_dataset(project, tmp_path / "ds", rater="r1", min_frames=8)
    for p in gen:
        if p.message.startswith("writing") and p.done == 2:
            break
    assert any(p.name.startswith(".ds.building-") for p in tmp_path.iterdir())
    gen.close()
    assert list(tmp_path.iterdir()) == []


def test_existing_folder_refused(project, built, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="already exists and is not empty"):
        run_to_end(build_dataset(project, tmp_path / "x", rater="r1"))
    with pytest.raises(
        InputError,
        match=r"x: holds 1 entry \(notes.txt\) and no manifest.json: not a "
        "dataset written by build-dataset, so it is not replaced; nothing was deleted$",
    ):
        run_to_end(build_dataset(project, tmp_path / "x", rater="r1", overwrite=True))
    assert (tmp_path / "x" / "notes.txt").read_text() == "mine"


def test_overwrite_replaces_a_dataset(project, tmp_path):
    run_to_end(build_dataset(project, tmp_path / "ds", rater="r1", min_frames=8))
    m = run_to_end(build_dataset(project, tmp_path / "ds", rater="r3", min_frames=8, overwrite=True))
    assert m["label_source"]["rater"] == "r3"
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_cli_build(project, tmp_path, capsys):
    out = tmp_path / "cli"
    assert (
        main(
            [
                "build-dataset",
                str(project.root),
                str(out),
                "--rater",
                "r1",
                "--min-frames",
                "8",
                "--size",
                "16",
                "20",
                "--seed",
                "4",
                "-q",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "excluded p1_c0: flagged unusable by rater 'r1'" in text
    assert json.loads((out / "manifest.json").read_text())["build"]["size"] == [16, 20]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--ratios", "0", "0.5", "0.5"], "ratios must be three non-negative numbers"),
        (["--size", "0", "8"], "size must be two positive integers"),
        (["--split-file", "nope.json"], "nope.json: file not found"),
    ],
)
def test_cli_bad_options(project, tmp_path, capsys, argv, message):
    code = main(["build-dataset", str(project.root), str(tmp_path / "o"), "-q", *argv])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_importing_dataset_tools_does_not_import_torch():
    """Every module of dataset_tools, found by walking the package (the training loader and its
    augmentation live with the model)."""
    code = (
        "import importlib, pkgutil, sys, dataset_tools\n"
        "names = [m.name for m in pkgutil.walk_packages(dataset_tools.__path__, 'dataset_tools.')]\n"
        "assert len(names) > 20, names\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "    assert 'torch' not in sys.modules, f'{name} imported torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_demo_stage_builds_and_reports(project, tmp_path):
    from napari_ultramn.demo.context import DemoContext
    from napari_ultramn.demo.dataset_stage import choose_labels, demo_stage

    assert choose_labels(project) == ("majority", None)
    ctx = DemoContext(out_dir=tmp_path, quick=True, paths={"project": project.root})
    section = run_to_end(demo_stage(ctx))
    assert ctx.paths["dataset"] == tmp_path / "dataset"
    assert section.title == "Participant-split dataset"
    assert "validate-dataset: no problems" in section.html and "<table" in section.html
    clip = ctx.results["dataset_manifest"]["clips"][0]
    assert clip["frame_shape"] == [64, 64]


def test_demo_stage_falls_back_to_one_rater(tmp_path):
    from napari_ultramn.demo.context import DemoContext
    from napari_ultramn.demo.dataset_stage import choose_labels, demo_stage

    project = make_project(tmp_path / "p", n_participants=3, raters=("solo",))
    assert choose_labels(project) == (None, "solo")
    ctx = DemoContext(out_dir=tmp_path / "demo", quick=True, paths={"project": project.root})
    run_to_end(demo_stage(ctx))
    assert ctx.results["dataset_manifest"]["label_source"]["rater"] == "solo"


def test_nothing_written_is_an_error_and_leaves_nothing(tmp_path):
    project = make_project(tmp_path / "p", n_participants=1, raters=("r1",))
    for cid in project.clip_ids():
        project.annotations.path(cid, "r1").write_text("[]")
    with pytest.raises(InputError, match="no clip could be written: labels unusable: "):
        run_to_end(build_dataset(project, tmp_path / "ds", rater="r1", min_frames=4))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]


def test_second_build_into_one_folder_is_refused_naming_the_first(project, tmp_path, capsys):
    out = tmp_path / "ds"
    first = build_dataset(project, out, rater="r1", min_frames=8)
    for p in first:
        if p.message.startswith("writing"):
            break
    argv = ["build-dataset", str(project.root), str(out), "--rater", "r3", "--min-frames", "8", "-q"]
    assert main(argv) == 2
    assert main([*argv, "--overwrite"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[0] == err[1]
    assert re.fullmatch(
        rf"ultramn build-dataset: error: {re.escape(str(out))}: another run is writing this "
        rf"folder: process {os.getpid()} on {re.escape(socket.gethostname())}, since \S+, "
        r"running `.+`; wait for it to finish or stop it",
        err[0],
    )
    assert run_to_end(first)["label_source"]["rater"] == "r1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


@pytest.fixture
def signed(project, built, tmp_path):
    """A copy of a built dataset to tamper with."""
    out = tmp_path / "ds"
    shutil.copytree(built[0], out)
    return out


def _edit_manifest(folder, change):
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _users_own_folder(folder):
    for p in folder.iterdir():
        if p.name != "split.json":
            p.unlink()
    (folder / "manifest.json").write_text('{"name": "my own manifest"}')


@pytest.mark.parametrize(
    "tamper, problem",
    [
        (
            lambda d: (d / "my_notes.txt").write_text("mine"),
            "holds 1 file(s) its manifest does not list (my_notes.txt)",
        ),
        (
            lambda d: _edit_manifest(d, lambda m: m.update(created="yesterday")),
            "holds 6 entries (README.md, manifest.json, split.json, test.h5, train.h5, validation.h5); its "
            "manifest.json has a signature that does not match its content (edited or corrupt)",
        ),
        (
            lambda d: _edit_manifest(d, lambda m: m.pop("signature")),
            "its manifest.json has no signature (written by hand or by an older version)",
        ),
        (
            _users_own_folder,
            "holds 2 entries (manifest.json, split.json); its manifest.json is not an UltraMN dataset manifest",
        ),
    ],
)
def test_overwrite_replaces_only_a_dataset_it_wrote(project, signed, tamper, problem):
    tamper(signed)
    before = {p.name: p.read_bytes() for p in signed.iterdir()}
    with pytest.raises(InputError) as err:
        run_to_end(build_dataset(project, signed, rater="r1", min_frames=8, overwrite=True))
    assert problem in str(err.value)
    assert str(err.value).endswith(
        ": not a dataset written by build-dataset, so it is not replaced; nothing was deleted"
    )
    assert {p.name: p.read_bytes() for p in signed.iterdir()} == before
    assert sorted(p.name for p in signed.parent.iterdir()) == ["ds"]


def test_overwrite_never_replaces_the_project(project, tmp_path):
    for target in (project.root, project.root.parent):
        with pytest.raises(
            InputError,
            match=re.escape(
                f"{target}: is the annotation project or contains it ({project.root}); refusing to "
                "replace it, nothing was deleted"
            ),
        ):
            run_to_end(build_dataset(project, target, rater="r1", min_frames=8, overwrite=True))
    assert (project.root / "annotations").is_dir()


def test_validate_checks_the_signature(signed):
    assert dataset_problems(signed, fingerprints=False) == []
    _edit_manifest(signed, lambda m: m["build"].update(min_frames=1))
    assert dataset_problems(signed, fingerprints=False) == [
        f"{signed / 'manifest.json'}: has a signature that does not match its content (edited or corrupt)"
    ]


def test_failed_replace_keeps_the_old_dataset_and_leftovers_are_reported(project, tmp_path, monkeypatch, capsys):
    out = tmp_path / "ds"
    run_to_end(build_dataset(project, out, rater="r1", min_frames=8))
    real = os.replace

    def no_room_for_the_new(src, dst):
        if str(dst) == str(out) and ".building-" in str(src):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real(src, dst)

    with monkeypatch.context() as m:
        m.setattr(os, "replace", no_room_for_the_new)
        with pytest.raises(
            InputError,
            match=re.escape(
                f"{out}: could not be put in place (Invalid cross-device link); the previous version is kept"
            ),
        ):
            run_to_end(build_dataset(project, out, rater="r3", min_frames=8, overwrite=True))
    assert read_json(out / "manifest.json", "dataset_manifest")["label_source"]["rater"] == "r1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    (tmp_path / ".ds.building-0badf00d").mkdir()  # a build killed earlier
    (tmp_path / ".ds.building-0badf00d" / "train.h5").write_bytes(b"x" * 1500)
    assert main(["build-dataset", str(project.root), str(out), "--rater", "r2", "-q"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"removed 1 leftover of interrupted runs (1.5 kB) beside {out}",
        f"ultramn build-dataset: error: {out}: already exists and is not empty; choose another "
        "folder, or pass --overwrite to replace a dataset this tool built there",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
