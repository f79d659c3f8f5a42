"""The project's secrets and its lock: key 0600 and refused when unusable, identifiers.json,
two concurrent ingests keeping every record."""

import json
import multiprocessing
import os
import stat
import threading

import pytest

from dataset_tools import deid
from dataset_tools.ingest import ingest
from napari_ultramn.cli import main as cli_main
from napari_ultramn.errors import ConflictError, InputError
from napari_ultramn.progress import run_collecting, run_to_end
from napari_ultramn.project import Project, ProjectLock, ensure_pseudonym_key
from tests.ingest_support import make_us_dicom, screen_frames, write_frame_folder, write_mapping  # noqa: F401


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def one_dicom(tmp_path):
    make_us_dicom(tmp_path / "src" / "a.dcm", n_frames=2)
    return tmp_path / "src"


def test_key_and_identifiers_are_private_and_written_before_any_clip(tmp_path, one_dicom):
    project_dir = tmp_path / "p"
    run_to_end(ingest(one_dicom, project_dir))
    secret = project_dir / ".secret"
    assert mode(secret) == 0o700
    assert mode(secret / "pseudonym.key") == 0o600 and mode(secret / "identifiers.json") == 0o600
    assert len(bytes.fromhex((secret / "pseudonym.key").read_text().strip())) == 32
    assert not [p for p in secret.iterdir() if p.name.startswith(".")]  # no temporaries left


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "pseudonym key is empty (a full disk or an interrupted write?): restore it from a backup"),
        ("\n", "pseudonym key is empty"),
        ("ab" * 16 + "\n", "pseudonym key is too short (16 bytes, at least 32 needed)"),
        ("not a key at all\n", "pseudonym key is not hexadecimal"),
    ],
)
def test_an_unusable_key_stops_ingest_before_anything_is_written(tmp_path, one_dicom, capsys, content, message):
    project_dir = tmp_path / "p"
    Project.create(project_dir)
    (project_dir / ".secret" / "pseudonym.key").write_text(content)
    assert cli_main(["ingest", str(one_dicom), str(project_dir), "-q"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"pseudonym.key: {message}" in err
    assert Project.open(project_dir).clips() == [] and not (project_dir / "clips").exists()


def test_a_missing_key_of_a_project_with_clips_is_refused_not_replaced(tmp_path, one_dicom, capsys):
    run_to_end(ingest(one_dicom, tmp_path / "p"))
    (tmp_path / "p" / ".secret" / "pseudonym.key").unlink()
    make_us_dicom(one_dicom / "b.dcm", patient_id="MRN-9", n_frames=2, seed=5)
    assert cli_main(["ingest", str(one_dicom), str(tmp_path / "p"), "-q"]) == 2
    assert "pseudonym.key: pseudonym key is missing: restore it from a backup" in capsys.readouterr().err
    assert not (tmp_path / "p" / ".secret" / "pseudonym.key").exists()
    assert len(Project.open(tmp_path / "p").clips()) == 1


def test_an_existing_key_is_never_replaced(tmp_path):
    first = ensure_pseudonym_key(tmp_path / "p")
    assert ensure_pseudonym_key(tmp_path / "p") == first
    assert Project.create(tmp_path / "p").pseudonym_key() == first


def test_an_unreadable_key_is_refused(tmp_path):
    project_dir = tmp_path / "p"
    (project_dir / ".secret" / "pseudonym.key").mkdir(parents=True)  # readable by no one, even root
    with pytest.raises(InputError, match="pseudonym key cannot be read"):
        ensure_pseudonym_key(project_dir)


def test_identifiers_json_holds_what_ingest_saw_merged(tmp_path, one_dicom):
    project_dir = tmp_path / "p"
    write_frame_folder(one_dicom / "rec", screen_frames(seed=3))
    mapping = write_mapping(tmp_path / "m.csv", ["file", "patient_id", "site"], [["rec", "VID-9", "Ward 7"]])
    run_to_end(ingest(one_dicom, project_dir, mapping_csv=mapping))
    run_to_end(ingest(one_dicom, project_dir, mapping_csv=mapping))  # nothing new: no duplicates
    (project_dir / ".secret" / "identifiers.json").unlink()  # e.g. a project from before the file existed
    run_to_end(ingest(one_dicom, project_dir, mapping_csv=mapping))  # every file skipped, the file rebuilt
    obj = json.loads((project_dir / ".secret" / "identifiers.json").read_text())
    pairs = [(i["kind"], i["value"]) for i in obj["identifiers"]]
    assert obj["schema_version"] == 1 and len(pairs) == len(set(pairs))
    for expected in [
        ("patient_id", "MRN-0042"),
        ("patient_name", "DOE^JANE"),
        ("patient_name", "JANE DOE"),
        ("birth_date", "19580317"),
        ("birth_date", "1958-03-17"),
        ("birth_date", "17.03.1958"),
        ("birth_date", "03/17/1958"),
        ("study_date", "20240105"),
        ("institution", "St Elsewhere Hospital"),
        ("accession", "ACC998877"),
        ("other", "SMITH^JOHN"),
        ("patient_id", "VID-9"),
        ("site", "Ward 7"),
    ]:
        assert expected in pairs


def _ingest_in_process(source, project_dir, queue):
    summary = run_to_end(ingest(source, project_dir))
    queue.put((len(summary.added), len(summary.failed)))


def test_two_concurrent_ingests_into_one_project_keep_every_clip(tmp_path):
    sources = []
    for run in range(2):
        src = tmp_path / f"src{run}"
        for i in range(3):
            make_us_dicom(src / f"{i}.dcm", patient_id=f"MRN-{run}{i}", n_frames=2, seed=10 * run + i)
        sources.append(src)
    project_dir = tmp_path / "p"
    ctx = multiprocessing.get_context("fork")  # the children see this test's contract stand-ins
    queue = ctx.Queue()
    procs = [ctx.Process(target=_ingest_in_process, args=(s, project_dir, queue)) for s in sources]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    assert sorted(queue.get(timeout=5) for _ in procs) == [(3, 0), (3, 0)]
    project = Project.open(project_dir)
    assert len(project.clips()) == 6
    key = project.pseudonym_key()
    assert {r["participant"] for r in project.clips()} == {
        deid.pseudonym(key, f"MRN-{run}{i}") for run in range(2) for i in range(3)
    }


def test_upsert_clips_rereads_the_registry_so_no_record_is_lost(tmp_path):
    Project.create(tmp_path / "p")
    first, second = Project.open(tmp_path / "p"), Project.open(tmp_path / "p")
    rec = {
        "file": "clips/x.h5",
        "participant": "P1",
        "source_sha256": "0" * 64,
        "n_frames": 1,
        "frame_shape": [4, 4],
        "spacing_source": "none",
    }
    first.upsert_clips([{**rec, "clip_id": "one"}])
    second.upsert_clips([{**rec, "clip_id": "two"}])  # opened before "one" existed
    assert Project.open(tmp_path / "p").clip_ids() == ["one", "two"]


def test_a_second_ingest_waits_for_the_lock_then_gives_up_with_a_message(tmp_path, one_dicom):
    project_dir = tmp_path / "p"
    Project.create(project_dir)
    taken, release = threading.Event(), threading.Event()

    def hold():  # another thread is another holder, like another process
        with ProjectLock(project_dir):
            taken.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    taken.wait(5)
    try:
        with pytest.raises(ConflictError, match=r"still in use by another writer \(pid \d+ on .*\) after waiting 1 s"):
            run_to_end(ingest(one_dicom, project_dir, lock_timeout_s=1.0))
        release.set()
        holder.join()
        steps, summary = run_collecting(ingest(one_dicom, project_dir, lock_timeout_s=1.0))
        assert len(summary.added) == 1
        assert not any("waiting" in s.message for s in steps)
    finally:
        release.set()
        holder.join()


def test_waiting_is_reported_as_progress(tmp_path, one_dicom):
    project_dir = tmp_path / "p"
    Project.create(project_dir)
    lock = ProjectLock(project_dir)
    done = threading.Event()

    def hold_then_release():
        with ProjectLock(project_dir):
            done.set()
            threading.Event().wait(0.8)

    t = threading.Thread(target=hold_then_release)
    t.start()
    done.wait(5)
    steps, summary = run_collecting(ingest(one_dicom, project_dir, lock_timeout_s=30))
    t.join()
    assert len(summary.added) == 1
    assert any(s.message.startswith("waiting for another writer of the project (pid") for s in steps)
    assert lock.try_acquire()  # released at the end of the run
    lock.release()
