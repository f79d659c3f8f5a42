"""Hostile inputs through the command line: each gets ONE line on stderr naming the file (as the
user gave it) and the problem, exit status 2, no traceback, and no half-written output.

Full disks are simulated at the writer boundary (``os.pwrite`` under HDF5 files, ``os.fsync``
under JSON/CSV files); a slow test also fills a real tiny tmpfs when ``mount`` works (as root).
Read-only folders are read-only tmpfs mounts when we are root (root ignores permission bits),
else ``chmod 555``.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.encaps import encapsulate, generate_frames

from napari_ultramn.cli import main
from napari_ultramn.errors import InputError, OutputError
from napari_ultramn.io.dicom import read_dicom_clip
from napari_ultramn.io.h5 import create_h5
from tests.dicom_factory import gray_frames, write_dicom
from tests.project_factory import make_project


# -- helpers -----------------------------------------------------------------------------------
def run_cli(capsys, *argv) -> tuple[int, str]:
    """``(exit status, stderr)`` of ``ultramn argv...`` run in-process."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    if os.environ.get("BAT_SHOW"):
        with capsys.disabled():
            print("\n   STDERR:", err.strip())
    return code, err


def assert_one_line(err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def leftovers(folder: Path) -> list[str]:
    """Temporary or partial files a failed write must not leave (names start with '.')."""
    if not folder.exists():
        return []
    # the project's lock file stays by design (flock on a lasting file): it is no leftover
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob(".*")
        if p.name not in (".secret", "pseudonym.key", ".project.lock") and ".secret" not in p.parts
    )


def full_disk_after(monkeypatch, n_bytes: int) -> None:
    """Every write (HDF5 through ``os.pwrite``, JSON/CSV at ``os.fsync``) fails with ENOSPC once
    ``n_bytes`` have been written through ``os.pwrite``."""
    real_pwrite, real_fsync, budget, full = os.pwrite, os.fsync, [n_bytes], [n_bytes == 0]

    def pwrite(fd, data, offset):
        if budget[0] < len(data):
            full[0] = True
            raise OSError(errno.ENOSPC, "No space left on device")
        budget[0] -= len(data)
        return real_pwrite(fd, data, offset)

    def fsync(fd):
        if full[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "pwrite", pwrite)
    monkeypatch.setattr(os, "fsync", fsync)


def _mount(*args) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture
def readonly(tmp_path):
    """``make(folder, fill=None)``: ``folder`` made read-only after ``fill(folder)`` wrote into it."""
    mounted = []

    def make(folder: Path, fill=None) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            if fill:
                fill(folder)
            for p in [folder, *folder.rglob("*")]:
                p.chmod(0o555 if p.is_dir() else 0o444)
            mounted.append(("chmod", folder))
            return folder
        if not _mount("-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)):
            pytest.skip("running as root and mount fails: no way to make a read-only folder")
        mounted.append(("mount", folder))
        if fill:
            fill(folder)
        assert _mount("-o", "remount,ro", str(folder))
        return folder

    yield make
    for how, folder in reversed(mounted):
        if how == "mount":
            subprocess.run(["umount", str(folder)], capture_output=True)
        else:
            for p in [folder, *folder.rglob("*")]:
                p.chmod(0o755)


@pytest.fixture(scope="module")
def project_src(tmp_path_factory) -> Path:
    """A small annotated project (copied by each test that changes it)."""
    root = tmp_path_factory.mktemp("src") / "proj"
    make_project(root, n_participants=4, clips_per_participant=2, n_frames=10, raters=("r1", "r2"))
    return root


@pytest.fixture
def project(project_src, tmp_path, monkeypatch) -> Path:
    """A copy of the project; the working folder is its parent, paths are given relative."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(project_src, tmp_path / "proj")
    return Path("proj")


@pytest.fixture(scope="module")
def dicom_src(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("dicom") / "IM1.dcm"
    write_dicom(src, gray_frames(16, 32, 40))
    return src


@pytest.fixture
def source(dicom_src, tmp_path, monkeypatch) -> Path:
    """A folder ``src/`` with one 16-frame DICOM, relative to the working folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src").mkdir()
    shutil.copy(dicom_src, tmp_path / "src" / "IM1.dcm")
    return Path("src")


# -- a file where a folder belongs ---------------------------------------------------------------
@pytest.mark.parametrize(
    "command",
    [
        ["ingest", "src", "{p}"],
        ["agreement", "{p}", "--out", "out"],
        ["build-dataset", "{p}", "ds"],
        ["preannotate", "run", "{p}"],
    ],
)
def test_project_that_is_a_file(capsys, source, command):
    Path("notaproject").write_text("x")
    code, err = run_cli(capsys, *[a.format(p="notaproject") for a in command], "-q")
    assert code == 2
    assert_one_line(err, "notaproject: is a file, not a project folder")
    assert not Path("out").exists() and not Path("ds").exists()


def test_dataset_that_is_a_file(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("ds").write_text("x")
    code, err = run_cli(capsys, "train", "ds", "--out", "run", "-q")
    assert code == 2
    assert_one_line(err, "ds: is a file, not a dataset folder")
    assert not Path("run").exists()


def test_agreement_out_that_is_a_file(capsys, project):
    Path("out").write_text("keep me")
    code, err = run_cli(capsys, "agreement", project, "--out", "out", "--bootstrap", "0", "-q")
    assert code == 2
    assert_one_line(err, "out: is a file, not a folder")
    assert Path("out").read_text() == "keep me"


# -- vocabulary and labels ----------------------------------------------------------------------
def test_duplicate_planes(capsys, source):
    code, err = run_cli(capsys, "ingest", source, "newproj", "--planes", "a", "a", "-q")
    assert code == 2
    assert_one_line(err, "newproj", "'a' is given twice")
    assert not Path("newproj").exists()


def _misspell_plane(project: Path) -> Path:
    """Rewrite one annotation's clip plane as a label the project does not have."""
    path = sorted((project / "annotations").rglob("r2.json"))[0]
    obj = json.loads(path.read_text())
    obj["clip_plane"] = "transverse_wirst"
    path.write_text(json.dumps(obj))
    return path


def test_unknown_plane_label_agreement(capsys, project):
    bad = _misspell_plane(project)
    code, err = run_cli(capsys, "agreement", project, "--out", "out", "--bootstrap", "0", "-q")
    assert code == 2
    assert_one_line(err, str(bad), "plane label 'transverse_wirst' is not in the project's vocabulary")
    assert not Path("out").exists()


def test_unknown_plane_label_build_is_named(capsys, project):
    bad = _misspell_plane(project)
    clip_id = bad.parent.name
    code = main(["build-dataset", str(project), "ds", "--rater", "r2", "--min-frames", "4", "-q"])
    out = capsys.readouterr().out
    assert code == 0  # the other clips are built; this one is listed with the reason
    line = next(ln for ln in out.splitlines() if f"excluded {clip_id}" in ln)
    assert str(bad) in line and "'transverse_wirst'" in line
    manifest = json.loads(Path("ds/manifest.json").read_text())
    assert any(e["clip_id"] == clip_id and "transverse_wirst" in e["reason"] for e in manifest["excluded"])


@pytest.mark.parametrize(
    ("ratios", "problem"),
    [
        (["0.7", "0.2", "0.2"], "sum"),
        (["0.8", "0.3", "-0.1"], "negative"),
    ],
)
def test_bad_ratios(capsys, project, ratios, problem):
    code, err = run_cli(capsys, "build-dataset", project, "ds", "--ratios", *ratios, "--min-frames", "4", "-q")
    assert code == 2
    assert_one_line(err, "ratios")
    assert problem in err or "non-negative" in err
    assert not Path("ds").exists()


# -- DICOM headers ------------------------------------------------------------------------------
def test_number_of_frames_smaller_than_the_data(capsys, source):
    path = source / "IM1.dcm"
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = 2
    ds.save_as(path)
    code = main(["ingest", str(source), "proj", "-q"])
    out, err = capsys.readouterr()
    assert code != 0 and "Traceback" not in err
    assert "NumberOfFrames says 2 but the pixel data holds 16 frames" in out + err
    assert not list(Path("proj").glob("clips/*.h5"))


def test_header_cut_short(capsys, source):
    path = source / "IM1.dcm"
    path.write_bytes(path.read_bytes()[:700])
    with pytest.raises(InputError, match="DICOM header is truncated or unreadable"):
        read_dicom_clip(path)
    code = main(["ingest", str(source), "proj", "-q"])
    out, err = capsys.readouterr()
    assert code != 0 and "Traceback" not in err
    assert "IM1.dcm" in out + err
    assert not list(Path("proj").glob("clips/*.h5"))


def test_unreadable_dicom_says_so(tmp_path, monkeypatch):
    """Root reads any file, so the permission error is simulated where pydicom opens the file."""
    path = tmp_path / "IM1.dcm"
    write_dicom(path, gray_frames(2))

    def dcmread(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(pydicom, "dcmread", dcmread)
    with pytest.raises(InputError, match=r"IM1\.dcm: cannot be read \(permission denied\)"):
        read_dicom_clip(path)


@pytest.mark.parametrize(
    ("tsuid", "offset_table"),
    [
        (uid.ExplicitVRLittleEndian, None),
        *((ts, bot) for ts in (uid.JPEGBaseline8Bit, uid.RLELossless, uid.JPEGLSLossless) for bot in (True, False)),
    ],
)
def test_number_of_frames_checked_against_the_pixel_data(tmp_path, tsuid, offset_table):
    """Native data is measured in frames; encapsulated data counts offset-table entries, else
    fragments that end a codestream (a frame split over two fragments still counts once)."""
    path = tmp_path / "clip.dcm"
    write_dicom(path, gray_frames(6, 16, 24), "MONOCHROME2", tsuid)
    ds = pydicom.dcmread(path)
    if tsuid.is_compressed:
        frames = list(generate_frames(ds.PixelData, number_of_frames=6))
        split = 1 if tsuid == uid.RLELossless else 2  # RLE: one fragment per frame (PS3.5 A.4.2)
        ds.PixelData = encapsulate(frames, fragments_per_frame=split, has_bot=offset_table)
        ds.save_as(path)
    assert read_dicom_clip(path).to_array().shape == (6, 16, 24)
    ds.NumberOfFrames = 4
    ds.save_as(path)
    with pytest.raises(InputError, match="NumberOfFrames says 4 but the pixel data holds 6 frames"):
        read_dicom_clip(path)


# -- full disk ----------------------------------------------------------------------------------
def test_create_h5_full_disk_closes_cleanly(tmp_path, monkeypatch):
    """A write failing mid-file: one OutputError naming the file, the file removed, and HDF5
    still healthy (a new file can be written and read) instead of a crash at exit."""
    from napari_ultramn.io.h5 import load_h5py
    from napari_ultramn.io.hdf5clip import read_hdf5_clip, write_clip_group

    # 12 MB of noise: more than HDF5's chunk cache (8 MB), so chunks reach the disk while writing
    frames = np.random.default_rng(0).integers(0, 255, (48, 512, 512), np.uint8)

    class LazyFrames:  # a lazy clip: written frame by frame, counting the frames decoded
        shape, decoded = frames.shape, []

        def __getitem__(self, t):
            self.decoded.append(t)
            return frames[t]

    lazy = LazyFrames()
    h5f = load_h5py().h5f
    open_before = {i.id for i in h5f.get_obj_ids(types=h5f.OBJ_FILE)}  # other tests' clips may be open
    with monkeypatch.context() as m:
        full_disk_after(m, 2_000_000)
        with pytest.raises(OutputError, match=r"shown\.h5: cannot write: no space left on the disk"):
            with create_h5(tmp_path / "a.h5", shown="shown.h5") as fh:
                write_clip_group(fh, lazy, {"clip_id": "a"})
    assert not (tmp_path / "a.h5").exists()
    assert len(lazy.decoded) < len(frames)  # stopped at the failure, not after the whole clip
    assert {i.id for i in h5f.get_obj_ids(types=h5f.OBJ_FILE)} == open_before  # this write left none open
    with create_h5(tmp_path / "b.h5") as fh:
        write_clip_group(fh, frames, {"clip_id": "b"})
    assert (read_hdf5_clip(tmp_path / "b.h5").to_array() == frames).all()


def test_full_disk_during_ingest(capsys, source, monkeypatch):
    full_disk_after(monkeypatch, 4096)
    code, err = run_cli(capsys, "ingest", source, "proj", "-q")
    assert code == 2
    assert_one_line(err, "proj/clips/", ".h5: cannot write: no space left on the disk")
    assert not list(Path("proj").glob("clips/*")) and leftovers(Path("proj")) == []


def test_full_disk_during_build(capsys, project, monkeypatch):
    full_disk_after(monkeypatch, 20_000)
    code, err = run_cli(capsys, "build-dataset", project, "ds", "--rater", "r1", "--min-frames", "4", "-q")
    assert code == 2
    assert_one_line(err, "ds/", ".h5: cannot write: no space left on the disk")
    assert not Path("ds").exists() and leftovers(Path(".")) == []


def test_full_disk_during_agreement(capsys, project, monkeypatch):
    full_disk_after(monkeypatch, 0)
    code, err = run_cli(capsys, "agreement", project, "--out", "out", "--bootstrap", "0", "-q")
    assert code == 2
    assert_one_line(err, "out/", "cannot write: no space left on the disk")
    assert not Path("out").exists() and leftovers(Path(".")) == []


def test_full_disk_into_existing_agreement_folder_keeps_the_old_set(capsys, project, monkeypatch):
    Path("out").mkdir()
    Path("out/summary.csv").write_text("old\n")
    full_disk_after(monkeypatch, 0)
    code, err = run_cli(capsys, "agreement", project, "--out", "out", "--bootstrap", "0", "-q")
    assert code == 2
    assert_one_line(err, "out/", "no space left")
    assert sorted(p.name for p in Path("out").iterdir()) == ["summary.csv"]
    assert Path("out/summary.csv").read_text() == "old\n"


# -- read-only folders --------------------------------------------------------------------------
def test_readonly_project_ingest(capsys, source, readonly):
    from napari_ultramn.project import Project

    readonly(Path("proj"), fill=lambda d: Project.create(d))
    code, err = run_cli(capsys, "ingest", source, "proj", "-q")
    assert code == 2
    assert_one_line(err, "proj", "cannot write")


def test_readonly_out_build(capsys, project, readonly):
    readonly(Path("ro"))
    code, err = run_cli(capsys, "build-dataset", project, "ro/ds", "--rater", "r1", "--min-frames", "4", "-q")
    assert code == 2
    assert_one_line(err, "ro/ds: cannot write")
    assert "read-only" in err or "permission" in err


def test_readonly_out_agreement(capsys, project, readonly):
    readonly(Path("ro"))
    code, err = run_cli(capsys, "agreement", project, "--out", "ro/out", "--bootstrap", "0", "-q")
    assert code == 2
    assert_one_line(err, "ro/out", "cannot write")
    assert "read-only" in err or "permission" in err


def test_readonly_existing_agreement_folder(capsys, project, readonly):
    readonly(Path("out"), fill=lambda d: (d / "old.csv").write_text("old\n"))
    code, err = run_cli(capsys, "agreement", project, "--out", "out", "--bootstrap", "0", "-q")
    assert code == 2
    assert_one_line(err, "out", "cannot write")
    assert sorted(p.name for p in Path("out").iterdir()) == ["old.csv"]


# -- training frame size ------------------------------------------------------------------------
def test_train_on_frames_the_model_cannot_halve(capsys, project):
    assert (
        main(["build-dataset", str(project), "ds", "--rater", "r1", "--min-frames", "4", "--size", "130", "112", "-q"])
        == 0
    )
    capsys.readouterr()
    code, err = run_cli(
        capsys,
        "train",
        "ds",
        "--out",
        "run",
        "--device",
        "cpu",
        "--window",
        "4",
        "-q",
        "--model-kwargs",
        '{"base_channels": 4, "depth": 3}',
    )
    assert code == 2
    assert_one_line(
        err, "ds: frames of 130x112 px are not divisible by 2**depth = 8", "--size 128 112 or --size 136 112"
    )
    assert not Path("run").exists()


# -- a real full disk ---------------------------------------------------------------------------
@pytest.fixture
def tiny_disk(tmp_path):
    """A 400 KiB tmpfs at ``tmp_path/disk`` (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny filesystem needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    if not _mount("-t", "tmpfs", "-o", "size=400k", "tmpfs", str(disk)):
        pytest.skip("mount fails here")
    yield disk
    subprocess.run(["umount", str(disk)], capture_output=True)


def _ultramn_subprocess(cwd: Path, *argv) -> subprocess.CompletedProcess:
    """Run in a subprocess so that a crash at interpreter exit (the old segfault) would show."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run(
        [sys.executable, "-m", "napari_ultramn", *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_real_full_disk_ingest(tmp_path, tiny_disk):
    """A real tiny filesystem: HDF5 fails mid-file. Once this ended in a segfault after pages of
    HDF5 errors; now one line, exit 2, nothing left half-written."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        write_dicom(
            src / f"IM{i}.dcm",
            np.random.default_rng(i).integers(0, 255, (40, 96, 128), np.uint8),
            patient_id=f"PAT-{i}",
        )
    proc = _ultramn_subprocess(tmp_path, "ingest", "src", "disk/proj", "-q")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert_one_line(proc.stderr, "disk/proj/", "no space left on the disk")
    assert "HDF5-DIAG" not in proc.stderr
    assert not list((tiny_disk / "proj" / "clips").glob("*")) and leftovers(tiny_disk / "proj") == []


@pytest.mark.slow
def test_real_full_disk_build(tmp_path, tiny_disk):
    make_project(tmp_path / "proj", n_participants=4, n_frames=40, frame_shape=(96, 128), raters=("r1",))
    proc = _ultramn_subprocess(
        tmp_path, "build-dataset", "proj", "disk/ds", "--rater", "r1", "--compression", "none", "-q"
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert_one_line(proc.stderr, "disk/ds/", "no space left on the disk")
    assert "HDF5-DIAG" not in proc.stderr
    assert list(tiny_disk.iterdir()) == []


# -- the CLI's safety net -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "problem"),
    [
        (errno.EACCES, "permission denied"),
        (errno.EDQUOT, "disk quota exceeded"),
        (errno.ENAMETOOLONG, "file name too long"),
    ],
)
def test_library_oserror_is_one_line(capsys, tmp_path, monkeypatch, code, problem):
    """An OSError a library raised past our writers still prints as one line naming the file,
    relative to the working folder when the library made the path absolute."""
    import napari_ultramn.cli.inspect_dataset as command

    monkeypatch.chdir(tmp_path)

    def run(args):
        raise OSError(code, os.strerror(code), str(tmp_path / "ds" / "train.h5"))

    monkeypatch.setattr(command, "run", run)
    status, err = run_cli(capsys, "inspect-dataset", "ds")
    assert status == 2
    assert_one_line(err, f"ultramn inspect-dataset: error: {Path('ds') / 'train.h5'}: {problem}")


def test_other_oserrors_are_not_hidden(tmp_path, monkeypatch):
    import napari_ultramn.cli.inspect_dataset as command

    def run(args):
        raise ConnectionResetError(errno.ECONNRESET, "reset")

    monkeypatch.setattr(command, "run", run)
    with pytest.raises(ConnectionResetError):
        main(["inspect-dataset", str(tmp_path)])


def test_full_disk_while_saving_a_checkpoint(tmp_path, monkeypatch):
    """torch.save's own zip writer would raise a RuntimeError; ours names the file, leaves nothing."""
    from napari_ultramn.errors import OutputError
    from napari_ultramn.model.checkpoint import save_checkpoint

    full_disk_after(monkeypatch, 0)
    with pytest.raises(OutputError, match=r"last\.pt: cannot write: no space left on the disk"):
        save_checkpoint(tmp_path / "last.pt", {"epoch": 0, "weights": list(range(1000))})
    assert list(tmp_path.iterdir()) == []
