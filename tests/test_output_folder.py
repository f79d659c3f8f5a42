"""OutputFolder: one writer per folder, a replace that survives a crash at every step, leftovers
of killed runs removed, precious folders never replaced."""

import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import napari_ultramn
from napari_ultramn import output_folder as of
from napari_ultramn.cli import main
from napari_ultramn.errors import ConflictError, InputError
from napari_ultramn.output_folder import (
    OutputFolder,
    finish_interrupted_replace,
    sign,
    signature_problem,
)

ROOT = Path(__file__).resolve().parent.parent


def _version(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.txt").write_text(text)
    return folder


def _replace(out: Path, text: str, notes=None) -> None:
    with OutputFolder(out, notify=(notes or []).append) as f:
        f.install(_version(f.new_building_dir(), text))


def test_second_writer_gets_one_line_naming_the_holder(tmp_path):
    out = tmp_path / "ds"
    with OutputFolder(out, command="ultramn build-dataset proj ds") as first:
        assert json.loads(first.lock_path.read_text())["command"] == "ultramn build-dataset proj ds"
        with pytest.raises(ConflictError) as err:
            OutputFolder(out).acquire()
        assert str(err.value) == (
            f"{out}: another run is writing this folder: process {os.getpid()} on "
            f"{socket.gethostname()}, since {first.info['acquired']}, running "
            "`ultramn build-dataset proj ds`; wait for it to finish or stop it"
        )
    assert list(tmp_path.iterdir()) == []  # the lock file goes with the lock
    with OutputFolder(out):
        pass


def test_lock_of_another_host_names_the_command_that_breaks_it(tmp_path, capsys):
    out = tmp_path / "ds"
    lock = tmp_path / "ds.lock"
    lock.write_text(
        json.dumps(
            {"pid": 4242, "hostname": "radiology-ws-7", "acquired": "t0", "command": "ultramn build-dataset p ds"}
        )
    )
    with open(lock) as held:  # a run on the other host holds the kernel lock (shared file system)
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(
            ConflictError,
            match=re.escape(
                "another run is writing this folder: process 4242 on radiology-ws-7, since t0, running "
                "`ultramn build-dataset p ds`; if it is no longer running, break the lock with "
                f"`ultramn unlock {lock}`"
            ),
        ):
            OutputFolder(out).acquire()
        assert main(["unlock", str(out)]) == 0
        assert f"{lock}: removed (it was held by process 4242 on radiology-ws-7" in capsys.readouterr().out
        with OutputFolder(out):  # the old holder keeps a lock on a file that is no longer the lock
            pass


def test_a_stale_lock_file_of_a_dead_run_is_taken_over(tmp_path):
    (tmp_path / "ds.lock").write_text(json.dumps({"pid": 999999, "hostname": "elsewhere"}))
    with OutputFolder(tmp_path / "ds") as f:
        assert json.loads(f.lock_path.read_text())["token"] == f.info["token"]


def test_replace_and_first_install(tmp_path):
    out = tmp_path / "ds"
    _replace(out, "v1")
    _replace(out, "v2")
    assert (out / "data.txt").read_text() == "v2"
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


class Crash(BaseException):
    pass


def _crash_at(monkeypatch, step: int) -> None:
    """Die at step ``step`` of a replace (1 journal write, 2 OUT -> old, 3 building -> OUT, 4 delete
    old, 5 delete the journal): that step and every file operation after it fail, as after a kill."""
    state = {"steps": 0, "dead": False}
    real_replace, real_remove, real_unlink = os.replace, of._remove, Path.unlink

    def next_step(counts=True):
        if state["dead"]:
            raise Crash("dead")
        state["steps"] += counts
        if state["steps"] == step:
            state["dead"] = True
            raise Crash(f"killed at step {step}")

    def replace(src, dst):
        next_step()
        return real_replace(src, dst)

    def remove(path):
        next_step()
        return real_remove(path)

    def unlink(self, missing_ok=False):
        next_step(counts=self.name.endswith(".replace.json"))
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(of, "_remove", remove)
    monkeypatch.setattr(Path, "unlink", unlink)


@pytest.mark.parametrize(
    "step, expected, note",
    [
        (1, "v1", None),  # the journal was never written: the new version is a leftover
        (2, "v2", "finished a replace that was interrupted"),
        (3, "v2", "finished a replace that was interrupted"),
        (4, "v2", None),
        (5, "v2", None),
    ],
)
def test_a_crash_at_each_step_is_completed_or_rolled_back(tmp_path, monkeypatch, step, expected, note):
    out = tmp_path / "ds"
    _replace(out, "v1")
    with monkeypatch.context() as m:
        _crash_at(m, step)
        with pytest.raises(Crash):
            _replace(out, "v2")
    notes = []
    with OutputFolder(out, notify=notes.append):
        pass
    assert (out / "data.txt").read_text() == expected
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]
    if note:
        assert notes[0] == f"{out}: {note} (the new version is in place)"


def test_interrupted_replace_whose_new_version_vanished_is_rolled_back(tmp_path, monkeypatch):
    out = tmp_path / "ds"
    _replace(out, "v1")
    with monkeypatch.context() as m:
        _crash_at(m, 3)
        with pytest.raises(Crash):
            _replace(out, "v2")
    assert not out.exists()
    for p in tmp_path.glob(".ds.building-*"):
        shutil.rmtree(p)
    notes = []
    with OutputFolder(out, notify=notes.append):
        pass
    assert (out / "data.txt").read_text() == "v1"
    assert notes == [f"{out}: rolled back a replace that was interrupted (the previous version is back)"]


def test_a_failed_rename_puts_the_old_version_back_at_once(tmp_path, monkeypatch):
    out = tmp_path / "ds"
    _replace(out, "v1")
    real = os.replace

    def full_disk(src, dst):
        if Path(src).name.startswith(".ds.building-"):
            raise OSError(28, "No space left on device")
        return real(src, dst)

    with monkeypatch.context() as m:
        m.setattr(os, "replace", full_disk)
        with pytest.raises(
            InputError,
            match=re.escape(
                f"{out}: could not be put in place (No space left on device); the previous version is kept"
            ),
        ):
            _replace(out, "v2")
    assert (out / "data.txt").read_text() == "v1"
    assert not (tmp_path / ".ds.replace.json").exists()


KILLED_BETWEEN_RENAMES = textwrap.dedent("""
    import os, signal, sys
    from napari_ultramn.output_folder import OutputFolder
    out = sys.argv[1]
    real, calls = os.replace, []
    def replace(src, dst):
        real(src, dst)
        calls.append(dst)
        if len(calls) == 2:  # journal written, OUT renamed to the old name: die before the new
            os.kill(os.getpid(), signal.SIGKILL)
    with OutputFolder(out) as f:
        new = f.new_building_dir()
        (new / "data.txt").write_text("v2")
        os.replace = replace
        f.install(new)
""")


def test_kill_9_between_the_two_renames(tmp_path):
    out = tmp_path / "ds"
    _replace(out, "v1")
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_BETWEEN_RENAMES, str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not out.exists() and list(tmp_path.glob(".ds.old-*")) and (tmp_path / "ds.lock").exists()
    with open(tmp_path / "ds.lock") as live:  # a reader never steps in while a writer is alive
        fcntl.flock(live, fcntl.LOCK_EX)
        assert finish_interrupted_replace(out) == [] and not out.exists()
    # the kernel released the dead run's lock: a reader (validate-dataset) or the next run finishes it
    assert finish_interrupted_replace(out) == [
        f"{out}: finished a replace that was interrupted (the new version is in place)"
    ]
    assert (out / "data.txt").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_lock_of_a_killed_process_is_released_by_the_kernel(tmp_path):
    out = tmp_path / "ds"
    code = (
        "import sys, time; from napari_ultramn.output_folder import OutputFolder; "
        "f = OutputFolder(sys.argv[1], command='holder').acquire(); print('locked', flush=True); "
        "time.sleep(60)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(out)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(ConflictError, match=f"process {proc.pid} on .*running `holder`"):
            OutputFolder(out).acquire()
    finally:
        proc.kill()
        proc.wait()
    with OutputFolder(out) as f:
        assert f.info["pid"] == os.getpid()


def test_leftovers_are_removed_and_reported_only_under_the_lock(tmp_path):
    out = tmp_path / "ds"
    first = OutputFolder(out).acquire()  # a live run: its building folder is not a leftover
    (tmp_path / ".ds.building-0a1b2c3d").mkdir()
    (tmp_path / ".ds.building-0a1b2c3d" / "train.h5").write_bytes(b"x" * 1500)
    (tmp_path / ".ds.old-ffee0011").mkdir()
    (tmp_path / ".ds.old-ffee0011" / "test.h5").write_bytes(b"x" * 300)
    (tmp_path / "..ds.replace.json.k2j3.tmp").write_bytes(b"x" * 200)
    keep = [".other.building-0a1b2c3d", ".ds2.building-0a1b2c3d", ".ds.building-notes"]
    for name in keep:
        (tmp_path / name).mkdir()
    with pytest.raises(ConflictError):
        OutputFolder(out).acquire()  # a second run cleans nothing while the first is alive
    assert (tmp_path / ".ds.building-0a1b2c3d").exists()
    first.release()
    notes = []
    with OutputFolder(out, notify=notes.append):
        pass
    assert notes == [f"removed 3 leftovers of interrupted runs (2.0 kB) beside {out}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)


def test_dangerous_folders_are_never_replaced(tmp_path, monkeypatch):
    home = tmp_path / "home" / "me"
    (home / "work").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(home / "work")
    project = tmp_path / "elsewhere" / "project"
    cases = [
        (Path("/"), "is the file system root"),
        (home, "is your home folder or contains it"),
        (tmp_path, "is your home folder or contains it"),
        (home / "work", "is the current folder or contains it"),
        (Path(napari_ultramn.__file__).parent.parent, "is the napari-ultramn installation or contains it"),
        (project, "is the annotation project or contains it"),
        (project.parent, "is the annotation project or contains it"),
    ]
    for path, message in cases:
        with pytest.raises(InputError, match=re.escape(message)) as err:
            OutputFolder(path).refuse_dangerous([(project, "the annotation project")])
        assert str(err.value).endswith("refusing to replace it, nothing was deleted")
    OutputFolder(tmp_path / "elsewhere" / "ds").refuse_dangerous([(project, "the annotation project")])


def test_signature_brands_a_manifest():
    manifest = {"format": "x", "files": [{"file": "a.h5", "sha256": "0" * 64}], "ratio": 0.7}
    signed = {**manifest, "signature": sign(manifest)}
    assert re.fullmatch("hmac-sha256:[0-9a-f]{64}", signed["signature"])
    assert signature_problem(json.loads(json.dumps(signed))) is None  # survives a JSON round trip
    assert signature_problem(manifest) == "has no signature (written by hand or by an older version)"
    tampered = {**signed, "ratio": 0.8}
    assert signature_problem(tampered) == "has a signature that does not match its content (edited or corrupt)"
