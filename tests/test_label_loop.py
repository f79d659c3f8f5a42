"""The labelling loop: train on what humans labelled, pre-annotate the rest, order the queue by doubt."""

from __future__ import annotations

import json

import pytest

from tests.model_factory import TINY_MODEL
from tests.project_factory import make_project

UNLABELLED = ("p2_c0", "p2_c1")


@pytest.fixture
def project(tmp_path):
    return make_project(
        tmp_path / "proj", n_participants=3, clips_per_participant=2, raters=("r1",), unannotated=UNLABELLED
    )


def test_a_round_trains_on_human_labels_and_preannotates_only_the_rest(project, tmp_path, capsys):
    from napari_ultramn.annotation.model_doubt import read_model_doubt
    from napari_ultramn.cli import main

    loop = tmp_path / "loop"
    argv = [
        "label-loop",
        str(project.root),
        "--out",
        str(loop),
        "--epochs",
        "1",
        "--window",
        "8",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "--model-kwargs",
        json.dumps(TINY_MODEL),
        "-q",
    ]
    assert main(argv) == 0
    assert "round 1 done" in capsys.readouterr().out
    state = json.loads((loop / "loop.json").read_text())
    assert state["stage"] == "done" and state["round"] == 1
    assert sorted(state["todo_clips"]) == sorted(UNLABELLED) and sorted(state["preannotated"]) == sorted(UNLABELLED)
    assert (loop / "round-1" / "dataset" / "train.h5").is_file() and (loop / "round-1" / "model" / "best.pt").is_file()
    # the training data came from the humans' clips only, never from an unlabelled one
    manifest = json.loads((loop / "round-1" / "dataset" / "manifest.json").read_text())
    used = {c["clip_id"] for c in manifest["clips"]}
    assert used and not used & set(UNLABELLED)
    for cid in project.clip_ids():  # proposals only where no human has worked
        assert project.annotations.exists(cid, "model") == (cid in UNLABELLED)
    assert set(read_model_doubt(project.root)) == set(UNLABELLED)
    assert main(argv) == 0  # a second round never overwrites the first
    assert json.loads((loop / "loop.json").read_text())["round"] == 2 and (loop / "round-1" / "model").is_dir()


def test_too_few_labelled_participants_is_one_clear_error(tmp_path, capsys):
    from napari_ultramn.cli import main

    proj = make_project(
        tmp_path / "p", n_participants=2, clips_per_participant=1, raters=("r1",), unannotated=("p1_c0",)
    )
    assert main(["label-loop", str(proj.root), "--out", str(tmp_path / "loop"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "at least 2 participants" in err and "1 clip(s) of 1 participant(s)" in err
    assert not (tmp_path / "loop" / "round-1").exists()


def test_a_clip_a_human_accepted_as_proposed_counts_as_labelled(project):
    from napari_ultramn.annotation.clip_annotation import ClipAnnotation
    from napari_ultramn.model.preannotate import human_labelled

    rec = project.clip_record("p2_c0")
    shape = tuple(rec["frame_shape"])
    model_only = ClipAnnotation(clip_id="p2_c0", rater="r2", n_frames=rec["n_frames"], frame_shape=shape)
    import numpy as np

    for t in range(rec["n_frames"]):
        model_only.set_mask(t, np.zeros(shape, bool), "model", confidence=0.9)
    project.annotations.save(model_only)
    assert not human_labelled(project, "p2_c0")  # in progress, nothing drawn: still to label
    model_only.status = "done"
    project.annotations.save(model_only)
    assert human_labelled(project, "p2_c0")


def test_damaged_doubt_file_reads_as_no_ordering(project):
    from napari_ultramn.annotation.model_doubt import (
        doubt_path,
        read_model_doubt,
        record_model_doubt,
    )

    record_model_doubt(project.root, {"p2_c0": {"uncertainty": 0.7, "predicted_plane": "x"}}, "run", "now")
    assert read_model_doubt(project.root) == {"p2_c0": 0.7}
    doubt_path(project.root).write_text("{not json")
    assert read_model_doubt(project.root) == {}
    record_model_doubt(project.root, {"p2_c1": {"uncertainty": 0.2}}, "run", "now")  # replaces the damaged file
    assert read_model_doubt(project.root) == {"p2_c1": 0.2}


def test_queue_offers_the_most_doubtful_unlabelled_clips_first_and_keeps_its_order(tmp_path):
    from napari_ultramn.annotation.model_doubt import record_model_doubt
    from napari_ultramn.annotation.queue import ClipQueue

    proj = make_project(
        tmp_path / "q",
        n_participants=3,
        clips_per_participant=2,
        raters=("r1",),
        unannotated=("p1_c0", "p1_c1", "p2_c0", "p2_c1"),
    )
    queue = ClipQueue(proj, "r2", blind=True)
    before = [e.clip_id for e in queue.entries()]
    assert queue.next_unlabelled() == before[0]  # no model yet: registry order
    record_model_doubt(
        proj.root,
        {"p1_c0": {"uncertainty": 0.2}, "p2_c1": {"uncertainty": 0.9}, "p1_c1": {"uncertainty": 0.5}},
        "run",
        "now",
    )
    order = [e.clip_id for e in queue.refresh()]
    assert order[:3] == ["p2_c1", "p1_c1", "p1_c0"]
    assert sorted(order[3:]) == sorted(set(before) - {"p2_c1", "p1_c1", "p1_c0"})
    assert queue.next_unlabelled() == "p2_c1" and "model doubt 0.90" in queue.entry("p2_c1").text()
    from napari_ultramn.annotation.session import AnnotationSession

    with AnnotationSession.open(proj, "p2_c1", "r2") as s:  # the rater finishes the most doubtful clip
        s.set_clip_plane(proj.plane_labels[0])
        s.set_status("done")
    assert [e.clip_id for e in queue.refresh()] == order  # nothing moved
    assert queue.next_unlabelled("p2_c1") == "p1_c1" and queue.entry("p2_c1").doubt is None
