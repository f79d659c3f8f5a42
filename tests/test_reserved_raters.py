"""Model proposals never count as a rater; an adjudicated annotation settles a clip's label."""

import numpy as np

from dataset_tools.labels import clip_labels, eligibility
from napari_ultramn.annotation.store import ADJUDICATED, MODEL_RATER
from tests.project_factory import make_project


def _copy_as(project, clip_id, source, target, *, shift_cols=0, provenance=None):
    ann = project.annotations.load(clip_id, source)
    ann.rater = target
    for fm in ann.frames.values():
        fm.mask = np.roll(fm.mask, shift_cols, axis=1)
        if provenance:
            fm.provenance = provenance
    project.annotations.save(ann)
    return ann


def test_model_proposals_are_not_raters(tmp_path):
    project = make_project(tmp_path / "p", n_participants=1, clips_per_participant=1, raters=("r1",))
    cid = project.clip_ids()[0]
    _copy_as(project, cid, "r1", MODEL_RATER, provenance="model")
    assert project.annotations.raters(cid) == [MODEL_RATER, "r1"]
    assert project.annotations.human_raters(cid) == ["r1"]
    rec = project.clip_record(cid)
    # one human rater is no consensus, however many proposals exist
    reason = eligibility(project, rec, rater=None, min_raters=2, min_frames=1, spacing_mm=None)
    assert reason == "no consensus: 1 rater(s), need 2"


def test_adjudicated_annotation_is_the_label_when_present(tmp_path):
    project = make_project(tmp_path / "p", n_participants=1, clips_per_participant=1, raters=("r1", "r2"))
    cid = project.clip_ids()[0]
    adjudicated = _copy_as(project, cid, "r1", ADJUDICATED, shift_cols=3)
    labels = clip_labels(project, cid, method="majority", rater=None)
    np.testing.assert_array_equal(labels.masks, adjudicated.mask_stack()[0])
    assert labels.n_raters == 1


def test_agreement_ignores_model_and_adjudicated(tmp_path):
    from dataset_tools.agreement.tables import build_tables
    from napari_ultramn.progress import run_to_end

    project = make_project(tmp_path / "p", n_participants=2, clips_per_participant=1, raters=("r1", "r2"))
    for cid in project.clip_ids():
        _copy_as(project, cid, "r1", MODEL_RATER, provenance="model")
        _copy_as(project, cid, "r2", ADJUDICATED)
    tables = run_to_end(build_tables(project))
    assert tables.raters == ["r1", "r2"]
    pair_columns = [c for c in tables.frame_pairs.columns if c.startswith("rater")]
    raters_in_pairs = set(tables.frame_pairs[pair_columns].to_numpy().ravel())
    assert raters_in_pairs == {"r1", "r2"}
