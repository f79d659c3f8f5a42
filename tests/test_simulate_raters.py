"""Simulated raters: realistic, different disagreement; clear errors for bad ground truth."""

import numpy as np
import pytest

from dataset_tools.agreement.masks import boundary_metrics
from dataset_tools.agreement.synthetic import make_synthetic_project
from dataset_tools.simulate_raters import load_ground_truth, simulate_raters
from napari_ultramn.progress import run_to_end


@pytest.fixture
def project_and_study(tmp_path):
    return make_synthetic_project(
        tmp_path, n_participants=4, clips_per_participant=2, n_frames=12, shape=(48, 64), seed=3
    )


def test_every_rater_annotates_every_clip(project_and_study):
    project, _ = project_and_study
    for cid in project.clip_ids():
        anns = project.annotations.load_all(cid)
        assert sorted(anns) == ["r1", "r2", "r3"]
        for ann in anns.values():
            assert ann.status == "done"
            assert ann.keyframes()[0] == 0 and ann.keyframes()[-1] == 11
            provs = {fm.provenance for fm in ann.frames.values()}
            assert provs == {"drawn", "interpolated"}


def test_disagreement_is_realistic_and_different(project_and_study):
    project, study = project_and_study
    dice = {"r1": [], "r2": [], "r3": []}
    area_ratio = {"r1": [], "r2": [], "r3": []}
    skipped = 0
    for rec in project.clips():
        gt = load_ground_truth(study, rec)
        for rater, ann in project.annotations.load_all(rec["clip_id"]).items():
            skipped += rec["n_frames"] - len(ann.frames)
            for t, fm in ann.frames.items():
                dice[rater].append(boundary_metrics(fm.mask, gt["masks"][t])["dice"])
                area_ratio[rater].append(fm.mask.sum() / max(gt["masks"][t].sum(), 1))
    means = {r: np.mean(v) for r, v in dice.items()}
    assert all(0.75 < m < 0.99 for m in means.values()), means  # close, never identical
    assert np.mean(area_ratio["r2"]) > np.mean(area_ratio["r1"]) + 0.05  # the larger tracer
    assert skipped > 0  # the hurried rater skipped frames


def test_planes_and_ranges(project_and_study):
    project, _ = project_and_study
    ann = project.annotations.load(project.clip_ids()[0], "r1")
    assert ann.frame_planes()[-1] == "non_standard"
    assert ann.frame_planes()[0] == project.clip_record(ann.clip_id)["plane"]


def test_seeded(tmp_path):
    p1, _ = make_synthetic_project(tmp_path / "a", n_participants=1, clips_per_participant=1, seed=5)
    p2, _ = make_synthetic_project(tmp_path / "b", n_participants=1, clips_per_participant=1, seed=5)
    cid = p1.clip_ids()[0]
    for rater in ("r1", "r2", "r3"):
        a, b = p1.annotations.load(cid, rater), p2.annotations.load(cid, rater)
        np.testing.assert_array_equal(a.mask_stack()[0], b.mask_stack()[0])


def test_mismatched_ground_truth_shape(tmp_path):
    project, study = make_synthetic_project(tmp_path, n_participants=1, clips_per_participant=1, raters=())
    rec = project.clips()[0]
    np.savez(study / "ground_truth" / f"{rec['source_sha256']}.npz", masks=np.zeros((8, 10, 10), bool))
    with pytest.raises(ValueError, match=r"ground-truth masks of shape \(8, 10, 10\) do not match clip 'P000_c0'"):
        run_to_end(simulate_raters(project, study))


def test_missing_ground_truth(tmp_path):
    project, study = make_synthetic_project(tmp_path, n_participants=1, clips_per_participant=1, raters=())
    with pytest.raises(ValueError, match="no ground truth for clip 'P000_c0'"):
        run_to_end(simulate_raters(project, tmp_path / "elsewhere"))
    with pytest.raises(ValueError, match="raters must be distinct"):
        run_to_end(simulate_raters(project, study, raters=("a", "a")))
