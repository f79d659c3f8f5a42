"""One worker or two, the same project, annotations, agreement tables and dataset files.

One small phantom study goes through ingest, simulated raters, agreement and build-dataset twice
(``workers=1`` in this process, ``workers=2`` in a pool), in a module fixture so the pools' start-up
is paid once; each test compares one stage's outputs.
"""

import hashlib
import json
import shutil

import pandas as pd
import pytest

from dataset_tools.agreement.tables import build_tables
from dataset_tools.build import build_dataset
from dataset_tools.ingest import ingest
from dataset_tools.simulate_raters import simulate_raters
from napari_ultramn.phantom.study import write_study
from napari_ultramn.progress import run_to_end
from napari_ultramn.project import Project, ensure_pseudonym_key


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pools")
    run_to_end(write_study(tmp / "study", participants=1, n_frames=6, size=(48, 56), seed=5))
    (tmp / "study" / "dicom" / "copy.dcm").write_bytes(  # a second copy of one file: skipped
        sorted((tmp / "study" / "dicom").rglob("*.dcm"))[0].read_bytes()
    )
    ensure_pseudonym_key(tmp / "p1")
    out = {}
    for workers in (1, 2):
        root = tmp / f"p{workers}"
        if workers == 2:  # the same key, so the same pseudonyms and clip ids
            shutil.copytree(tmp / "p1" / ".secret", root / ".secret")
        summary = run_to_end(ingest(tmp / "study" / "dicom", root, workers=workers))
        project = Project.open(root)
        run_to_end(simulate_raters(project, tmp / "study", seed=2, workers=workers))
        tables = run_to_end(build_tables(project, workers=workers))
        manifest = run_to_end(build_dataset(project, tmp / f"ds{workers}", min_frames=4, workers=workers))
        out[workers] = dict(root=root, summary=summary, project=project, tables=tables, manifest=manifest)
    return out


def _records(project):
    return [{k: v for k, v in r.items() if k != "ingested_at"} for r in project.clips()]


def test_ingest_same_registry_and_clips(runs):
    one, two = runs[1], runs[2]
    assert len(one["summary"].added) == 8 and len(one["summary"].skipped) == 1
    assert (one["summary"].added, one["summary"].skipped) == (two["summary"].added, two["summary"].skipped)
    assert _records(one["project"]) == _records(two["project"])
    for rec in one["project"].clips():
        a, b = (r["project"].open_clip(rec["clip_id"]).to_array() for r in (one, two))
        assert (a == b).all()
    ids = [(r["root"] / ".secret" / "identifiers.json").read_text() for r in (one, two)]
    assert json.loads(ids[0]) == json.loads(ids[1])


def test_simulated_raters_same_annotations(runs):
    files = [sorted((r["root"] / "annotations").rglob("*.json")) for r in (runs[1], runs[2])]
    assert len(files[0]) == 8 * 3
    for a, b in zip(*files, strict=True):
        assert a.relative_to(runs[1]["root"]) == b.relative_to(runs[2]["root"])
        ja, jb = (json.loads(f.read_text()) for f in (a, b))
        assert ja.pop("modified") and jb.pop("modified")  # the time each was written
        assert ja == jb


def test_agreement_same_tables(runs):
    t1, t2 = runs[1]["tables"], runs[2]["tables"]
    assert len(t1.frame_pairs) > 0
    for name in ("frame_pairs", "frame_labels", "clip_labels", "frame_areas", "clips"):
        pd.testing.assert_frame_equal(getattr(t1, name), getattr(t2, name))
    assert t1.notes == t2.notes


def test_dataset_files_identical(runs):
    m1, m2 = runs[1]["manifest"], runs[2]["manifest"]
    assert m1["clips"] == m2["clips"] and m1["excluded"] == m2["excluded"]
    assert [f["sha256"] for f in m1["files"]] == [f["sha256"] for f in m2["files"]]
    for f in m1["files"]:
        path = runs[1]["root"].parent / "ds1" / f["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == f["sha256"]
    assert not any(p.name == ".shards" for p in (runs[2]["root"].parent / "ds2").rglob("*"))
