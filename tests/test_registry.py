"""The clip registry as a SQLite database: migration from clips.json, export, damage, linear upserts,
two writers at once."""

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from napari_ultramn import registry as registry_mod
from napari_ultramn.errors import InputError, SchemaError
from napari_ultramn.project import CLIPS_FILE, PROJECT_FILE, Project
from napari_ultramn.registry import REGISTRY_FILE, REGISTRY_VERSION, Registry

PARTICIPANTS = ("P2", "P1", None)


def record(i: int, **extra) -> dict:
    """A valid registry record; participants, sides and planes vary so the order is tested."""
    return {
        "clip_id": f"c{i:04d}",
        "file": f"clips/c{i:04d}.h5",
        "participant": f"P{i % 3}",
        "side": ("left", "right", None)[i % 3 - 1],
        "plane": (None, "transverse_wrist")[i % 2],
        "source_sha256": f"{i:064x}",
        "n_frames": 1 + i,
        "frame_shape": [8, 8],
        "spacing_source": "none",
        "sex": "F",
        "age_band": "40-59",
        **extra,
    }


def project_order(records):
    return sorted(
        records, key=lambda c: (c.get("participant") or "", c.get("side") or "", c.get("plane") or "", c["clip_id"])
    )


def old_project(root: Path, records: list[dict]) -> Path:
    """A project as the JSON-registry versions left it: clips.json, no database."""
    Project.create(root).registry.close()
    (root / REGISTRY_FILE).unlink()
    config = json.loads((root / PROJECT_FILE).read_text())
    del config["registry_version"]
    (root / PROJECT_FILE).write_text(json.dumps(config))
    (root / CLIPS_FILE).write_text(json.dumps({"schema_version": 1, "clips": records}, indent=1))
    return root


def test_an_old_project_is_converted_once_keeping_every_record_and_a_backup(tmp_path):
    records = [record(i) for i in range(25)]
    root = old_project(tmp_path / "p", records)
    original = (root / CLIPS_FILE).read_bytes()
    project = Project.open(root)
    assert project.clips() == project_order(records)
    assert project.registry.all(insertion_order=True) == records
    assert project.clip_record("c0007") == records[7]
    (backup,) = root.glob(f"{CLIPS_FILE}.bak-*")
    assert backup.read_bytes() == original and (root / CLIPS_FILE).read_bytes() == original
    assert project.config["registry_version"] == REGISTRY_VERSION
    db = (root / REGISTRY_FILE).stat()
    project.registry.close()
    again = Project.open(root)  # a project with the database: nothing converted again
    assert again.clips() == project_order(records)
    assert len(list(root.glob(f"{CLIPS_FILE}.bak-*"))) == 1
    assert (root / REGISTRY_FILE).stat().st_ino == db.st_ino
    assert not list(root.glob(".*.partial"))


def test_an_invalid_old_registry_is_refused_and_nothing_is_converted(tmp_path):
    root = old_project(tmp_path / "p", [record(0), {**record(1), "n_frames": 0}])
    with pytest.raises(SchemaError, match=r"clips\.json: does not match schema 'clips' at clips/1/n_frames"):
        Project.open(root)
    assert not (root / REGISTRY_FILE).exists() and not list(root.glob("*.bak-*"))


def test_export_round_trip_equals_the_registry(tmp_path):
    project = Project.create(tmp_path / "p")
    records = [record(i, imaging_area=None) for i in range(12)]
    project.upsert_clips(records[:7])
    project.upsert_clips(records[7:])
    path = project.export_registry()
    exported = json.loads(path.read_text())
    assert exported["clips"] == sorted(records, key=lambda r: r["clip_id"])
    stamp = path.stat().st_mtime_ns
    project.export_registry()  # unchanged: not rewritten
    assert path.stat().st_mtime_ns == stamp
    # the export is a registry of its own: an old-style project made from it holds the same clips
    root = old_project(tmp_path / "copy", exported["clips"])
    assert Project.open(root).clips() == project.clips()


def test_export_registry_command(tmp_path, capsys):
    from napari_ultramn.cli import main

    project = Project.create(tmp_path / "p")
    project.upsert_clips([record(1), record(2)])
    assert main(["export-registry", str(project.root), "--out", str(tmp_path / "audit.json")]) == 0
    assert capsys.readouterr().out.strip() == f"{tmp_path / 'audit.json'}: 2 clip records exported"
    assert json.loads((tmp_path / "audit.json").read_text())["clips"] == [record(1), record(2)]
    project.registry.close()
    (project.root / REGISTRY_FILE).write_bytes(b"not sqlite" * 200)
    assert main(["export-registry", str(project.root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        f"ultramn export-registry: error: {project.root / REGISTRY_FILE}: clip registry is damaged"
    )


def test_queries_keep_the_project_order_and_replace_whole_records(tmp_path):
    project = Project.create(tmp_path / "p")
    records = [record(i) for i in range(9)]
    project.upsert_clips(records)
    assert project.clip_ids() == [r["clip_id"] for r in project_order(records)]
    assert project.n_clips() == 9
    assert project.registry.find(participant="P1") == project_order([r for r in records if r["participant"] == "P1"])
    assert project.registry.find(side=None) == project_order([r for r in records if r["side"] is None])
    summary = project.clip_summaries()[0]
    assert summary == {
        k: project.clips()[0][k] for k in ("clip_id", "participant", "side", "plane", "n_frames", "source_sha256")
    }
    replaced = {**record(3), "plane": "longitudinal_wrist"}
    del replaced["sex"]
    project.upsert_clips([replaced])
    assert project.clip_record("c0003") == replaced  # whole record replaced, not merged
    assert [r["clip_id"] for r in project.registry.all(insertion_order=True)][3] == "c0003"
    with pytest.raises(InputError, match=r"project has no clip 'nope'"):
        project.clip_record("nope")
    with pytest.raises(ValueError, match="cannot query by"):
        project.registry.find(sex="F")


def test_an_invalid_record_writes_nothing(tmp_path):
    project = Project.create(tmp_path / "p")
    with pytest.raises(SchemaError, match=r"registry\.sqlite: does not match schema 'clips' at clips/1/source_sha256"):
        project.upsert_clips([record(1), {**record(2), "source_sha256": "x"}])
    with pytest.raises(InputError, match=r"clip ids given twice in one update: \['c0001'\]"):
        project.upsert_clips([record(1), record(1)])
    assert project.n_clips() == 0


def test_upserts_are_linear_one_transaction_and_no_rewrite(tmp_path, monkeypatch):
    """Adding clip 200 does the same work as adding clip 1: the same SQL, one record validated,
    and clips.json untouched."""
    project = Project.create(tmp_path / "p")
    export = (tmp_path / "p" / CLIPS_FILE).stat().st_mtime_ns
    validated = []
    real = registry_mod.validate
    monkeypatch.setattr(registry_mod, "validate", lambda obj, *a: (validated.append(len(obj["clips"])), real(obj, *a)))
    conn = project.registry._connection()
    statements = []
    conn.set_trace_callback(statements.append)
    per_upsert = []
    for i in range(200):
        statements.clear()
        project.upsert_clips([record(i)])
        per_upsert.append([s.split(" VALUES")[0] for s in statements])  # without the bound values
    conn.set_trace_callback(None)
    assert per_upsert[0][0] == "BEGIN IMMEDIATE" and per_upsert[0][-1] == "COMMIT"
    assert len(per_upsert[0]) == 3 and all(s == per_upsert[0] for s in per_upsert)
    assert validated == [1] * 200
    assert (tmp_path / "p" / CLIPS_FILE).stat().st_mtime_ns == export
    assert project.n_clips() == 200


@pytest.mark.parametrize(
    "damage, problem",
    [
        (
            b"this is not a database at all" * 100,
            r"clip registry is damaged or not a registry \(file is not a database\)",
        ),
        (b"", r"is not a clip registry \(no clips table\)"),
    ],
)
def test_a_damaged_registry_is_one_clear_error(tmp_path, damage, problem):
    root = tmp_path / "p"
    Project.create(root).registry.close()
    (root / REGISTRY_FILE).write_bytes(damage)
    with pytest.raises(
        InputError,
        match=rf"registry\.sqlite: {problem}: restore it from a backup of the "
        r"project, or move it \(with any -wal and -shm file beside it\) aside: "
        r"the project is then rebuilt from clips\.json",
    ):
        Project.open(root)


def test_a_registry_from_a_newer_version_is_refused(tmp_path):
    root = tmp_path / "p"
    Project.create(root).registry.close()
    with sqlite3.connect(root / REGISTRY_FILE) as conn:
        conn.execute(f"PRAGMA user_version = {REGISTRY_VERSION + 1}")
    conn.close()
    with pytest.raises(
        InputError,
        match=rf"clip registry version {REGISTRY_VERSION + 1} was written by a "
        r"newer napari-ultramn .*: upgrade it",
    ):
        Project.open(root)


def test_wal_locally_rollback_journal_on_a_network_file_system(tmp_path, monkeypatch):
    project = Project.create(tmp_path / "p")
    assert project.registry.journal_mode == "wal" and project.registry.journal_note == ""
    project.registry.close()
    monkeypatch.setattr(registry_mod, "network_fs", lambda path: "nfs4")
    reg = Registry.open(tmp_path / "p" / REGISTRY_FILE)
    assert reg.journal_mode == "delete"
    assert "rollback journal (delete) instead of WAL: on a network file system (nfs4)" in reg.journal_note
    reg.upsert([record(1)])
    assert reg.ids() == ["c0001"]


def test_a_registry_survives_pickling_and_a_fork(tmp_path):
    import pickle

    project = Project.create(tmp_path / "p")
    project.upsert_clips([record(1)])
    copy = pickle.loads(pickle.dumps(project.registry))
    assert copy.ids() == ["c0001"]
    if hasattr(os, "fork"):
        pid = os.fork()
        if pid == 0:  # the child must open its own connection, not use the parent's
            try:
                project.upsert_clips([record(2)])
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        assert project.clip_ids() == ["c0001", "c0002"]


WRITER = textwrap.dedent("""
    import sys
    from tests.test_registry import record
    from napari_ultramn.project import Project
    project = Project.open(sys.argv[1])
    first = int(sys.argv[2])
    sys.stdin.readline()  # start together
    for i in range(first, first + 60):
        project.upsert_clips([record(i)])
""")


def test_two_processes_adding_clips_at_once_lose_nothing(tmp_path):
    root = tmp_path / "p"
    Project.create(root).registry.close()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
    }
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(root), str(first)],
            env=env,
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for first in (0, 1000)
    ]
    for w in writers:
        w.stdin.write("go\n")
        w.stdin.flush()
    for w in writers:
        _, err = w.communicate(timeout=60)
        assert w.returncode == 0, err
    ids = Project.open(root).clip_ids()
    assert sorted(ids) == sorted([f"c{i:04d}" for i in (*range(60), *range(1000, 1060))])


def test_ingest_is_one_transaction_per_clip_and_one_export(tmp_path, monkeypatch):
    """Ingesting 1 or 3 files reads the whole registry the same number of times (at the start and
    for the duplicate search, never per clip), upserts at most once per clip and exports once per run."""
    from dataset_tools.ingest import ingest
    from napari_ultramn.progress import run_to_end
    from tests.ingest_support import make_us_dicom

    calls = {"all": 0, "upsert": 0, "export": 0}
    for name in calls:
        real = getattr(Registry, name)
        monkeypatch.setattr(
            Registry,
            name,
            lambda self, *a, _real=real, _name=name, **k: (
                calls.__setitem__(_name, calls[_name] + 1),
                _real(self, *a, **k),
            )[1],
        )
    seen = []
    for n in (1, 3):
        for i in range(n):
            make_us_dicom(tmp_path / f"src{n}" / f"{i}.dcm", patient_id=f"MRN-{i}", n_frames=2, seed=i)
        calls.update(dict.fromkeys(calls, 0))
        summary = run_to_end(ingest(tmp_path / f"src{n}", tmp_path / f"p{n}"))
        assert len(summary.added) == n
        seen.append(dict(calls))
        project = Project.open(tmp_path / f"p{n}")
        exported = json.loads((project.root / CLIPS_FILE).read_text())["clips"]
        assert exported == sorted(project.clips(), key=lambda r: r["clip_id"])
    # one transaction per batch of finished clips (ingest's parent writes them as workers finish):
    # at most one per clip, never a rewrite of the registry
    assert seen[0]["upsert"] == 1 and 1 <= seen[1]["upsert"] <= 3
    assert [s["export"] for s in seen] == [2, 2]  # the empty registry the project starts with, the run's
    assert seen[0]["all"] == seen[1]["all"]


def test_the_project_lock_records_its_holder_but_no_command_line(tmp_path):
    """An ingest's command line names its source folder (often a patient's name): never written."""
    import socket

    from napari_ultramn.project import LOCK_FILE, ProjectLock

    (tmp_path / "p").mkdir()
    lock = ProjectLock(tmp_path / "p")
    with lock:
        info = json.loads((tmp_path / "p" / LOCK_FILE).read_text())
        assert info["pid"] == os.getpid() and info["hostname"] == socket.gethostname()
        assert info["command"] == "" and "start_time" in info
        assert lock.holder() == f"pid {os.getpid()} on {socket.gethostname()}, since {info['acquired']}"


def test_a_damaged_registry_moved_aside_is_rebuilt_from_the_last_export(tmp_path):
    """The way on the damage message names: move it aside, open again."""
    project = Project.create(tmp_path / "p")
    project.upsert_clips([record(i) for i in range(5)])
    project.export_registry()
    project.upsert_clips([record(9)])  # added after the last export: ingest registers it again
    project.registry.close()
    db = tmp_path / "p" / REGISTRY_FILE
    db.write_bytes(b"\0garbage" * 512)
    with pytest.raises(InputError, match="clip registry is damaged"):
        Project.open(tmp_path / "p")
    db.rename(db.with_name("registry.sqlite.damaged"))
    db.with_name(REGISTRY_FILE + "-wal").write_bytes(b"\0" * 64)  # one left behind: not applied
    assert Project.open(tmp_path / "p").clip_ids() == [
        r["clip_id"] for r in project_order([record(i) for i in range(5)])
    ]
