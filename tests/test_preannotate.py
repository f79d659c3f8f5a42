"""Pre-annotation: proposals never overwrite human work; unlabelled clips ranked by uncertainty."""

from __future__ import annotations

import numpy as np
import pytest

from napari_ultramn.errors import InputError
from napari_ultramn.progress import run_to_end
from tests.project_factory import make_project


@pytest.fixture(scope="module")
def run(tiny_run):
    return tiny_run[1]


@pytest.fixture
def project(tmp_path):
    # frames 32x40 while the model was trained at 32x32: proposals are resized back to the clip
    return make_project(
        tmp_path / "proj", n_participants=2, clips_per_participant=2, raters=("r1",), unannotated=("p1_c0", "p1_c1")
    )


def test_plane_ranges_and_uncertainty_helpers():
    from napari_ultramn.model.preannotate import plane_ranges, uncertainty

    ranges = plane_ranges(["a", "a", "ns", "ns", "a", "b"], "a")
    assert [(r.start, r.stop, r.plane) for r in ranges] == [(2, 4, "ns"), (5, 6, "b")]
    crisp = np.zeros((2, 8, 8), np.float32)
    crisp[:, 2:6, 2:6] = 0.99
    vague = np.where(crisp > 0, 0.6, 0.3).astype(np.float32)
    sure_planes = np.tile([0.97, 0.01, 0.01, 0.01], (2, 1))
    flat_planes = np.full((2, 4), 0.25)
    a = uncertainty(crisp, sure_planes, crisp > 0.5)
    b = uncertainty(vague, flat_planes, vague > 0.5)
    assert b["plane_entropy"] == pytest.approx(1.0) and a["plane_entropy"] < 0.15
    assert b["boundary_uncertainty"] > a["boundary_uncertainty"]
    assert b["uncertainty"] > a["uncertainty"]


def test_preannotate_clip_proposes_at_the_clip_size(run):
    from napari_ultramn.model.preannotate import preannotate_clip

    frames = np.random.default_rng(0).integers(0, 255, (5, 24, 40), dtype=np.uint8)  # shorter than the window
    p = run_to_end(preannotate_clip(run, frames, device="cpu"))
    assert p.masks.shape == (5, 24, 40) and p.nerve_prob.shape == (5, 24, 40)
    assert p.plane_prob.shape == (5, 5) and np.all((p.confidence >= 0) & (p.confidence <= 1))
    assert p.clip_plane != "non_standard" and len(p.frame_planes) == 5
    ann = p.to_annotation("c1")
    assert ann.rater == "model" and set(ann.frames) == set(range(5))
    assert {fm.provenance for fm in ann.frames.values()} == {"model"}


def test_project_proposals_leave_human_work_alone(run, project, tmp_path):
    from napari_ultramn.model.preannotate import preannotate_project

    human_before = project.annotations.path("p0_c0", "r1").read_bytes()
    out = run_to_end(preannotate_project(run, project, device="cpu", ranking_csv=tmp_path / "rank.csv"))
    assert sorted(out["written"]) == sorted(project.clip_ids())
    assert project.annotations.path("p0_c0", "r1").read_bytes() == human_before
    model = project.annotations.load("p1_c0", "model")
    assert model.n_frames == 12 and tuple(model.frame_shape) == (32, 40) and model.clip_plane
    assert all(fm.provenance == "model" and 0 <= fm.confidence <= 1 for fm in model.frames.values())
    ranking = out["ranking"]
    todo = ranking[~ranking["human_labelled"]]
    assert sorted(todo["clip_id"]) == ["p1_c0", "p1_c1"] and todo["rank"].tolist() == [1, 2]
    assert todo["uncertainty"].is_monotonic_decreasing
    assert ranking[ranking["human_labelled"]]["rank"].isna().all()
    assert (tmp_path / "rank.csv").read_text().startswith("rank,clip_id")

    # an edited proposal survives a re-run; 'model' frames are refreshed
    model.set_mask(0, np.zeros((32, 40), bool), "model_edited", edited_fraction=1.0)
    project.annotations.save(model)
    run_to_end(preannotate_project(run, project, clip_ids=["p1_c0"], device="cpu"))
    again = project.annotations.load("p1_c0", "model")
    assert again.frames[0].provenance == "model_edited" and again.frames[1].provenance == "model"
    assert (run / "preannotation_ranking.csv").is_file()


def test_named_rater_only_gets_empty_frames(run, project):
    from napari_ultramn.model.preannotate import preannotate_project

    done = project.annotations.load("p0_c0", "r1")
    assert done.status == "done"
    partial = project.annotations.load("p0_c1", "r1")
    partial.status = "in_progress"
    drawn = {t: fm.mask.copy() for t, fm in partial.frames.items() if t < 6}
    for t in range(6, 12):
        del partial.frames[t]
    project.annotations.save(partial)
    out = run_to_end(preannotate_project(run, project, rater="r1", clip_ids=["p0_c0", "p0_c1"], device="cpu"))
    assert out["written"] == ["p0_c1"] and out["skipped"] == ["p0_c0"]
    after = project.annotations.load("p0_c1", "r1")
    for t, mask in drawn.items():
        assert after.frames[t].provenance != "model" and np.array_equal(after.frames[t].mask, mask)
    assert {after.frames[t].provenance for t in range(6, 12)} == {"model"}
    assert after.clip_plane == partial.clip_plane and after.plane_ranges == partial.plane_ranges


def test_bad_requests(run, project):
    from napari_ultramn.model.preannotate import preannotate_project

    with pytest.raises(InputError, match="project has no clip 'nope'"):
        run_to_end(preannotate_project(run, project, clip_ids=["nope"]))
    with pytest.raises(InputError, match="rater id '../x' is not allowed"):
        run_to_end(preannotate_project(run, project, rater="../x"))


def test_cli_preannotate(run, project, capsys):
    from napari_ultramn.cli import main

    assert main(["preannotate", str(run), str(project.root), "--device", "cpu", "-q"]) == 0
    out = capsys.readouterr().out
    assert "Label next" in out and "p1_c0" in out and "proposals written for 4 clip(s)" in out
