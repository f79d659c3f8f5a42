"""AnnotationSession: lock, autosave, history, corrupt files, blind and review modes (plain Python)."""

import json

import numpy as np
import pytest

from napari_ultramn.annotation.session import ADJUDICATED, AnnotationSession, CorruptAnnotationError
from napari_ultramn.errors import ConflictError, InputError
from tests.project_factory import disk, make_clip_project


@pytest.fixture
def project(tmp_path):
    return make_clip_project(tmp_path / "proj")


def test_new_session_autosaves_every_change_and_reloads(project):
    with AnnotationSession.open(project, "c0", "r1") as s:
        assert s.annotation.clip_plane is None  # blind mode: never prefilled from the header
        s.set_mask(0, disk((32, 40), (16, 10), 6))
        s.set_clip_plane("transverse_forearm")
        s.set_flag("poor", "probe slipped")
        assert s.saves == 3
    back = project.annotations.load("c0", "r1")
    assert back.keyframes() == [0] and back.status == "in_progress"
    assert (back.clip_plane, back.quality, back.comment) == ("transverse_forearm", "poor", "probe slipped")


def test_second_window_on_same_rater_clip_is_told_who_holds_it(project):
    with AnnotationSession.open(project, "c0", "r1"):
        with pytest.raises(
            ConflictError, match=r"clip 'c0' of rater 'r1' is already open in another window \(process \d+"
        ):
            AnnotationSession.open(project, "c0", "r1")
        AnnotationSession.open(project, "c0", "r2").close()  # other raters are independent
    AnnotationSession.open(project, "c0", "r1").close()  # released on close


def test_undo_redo_restores_masks_and_fields_and_saves(project):
    s = AnnotationSession.open(project, "c0", "r1")
    m = disk((32, 40), (16, 10), 6)
    s.set_mask(0, m)
    s.set_mask(0, m & ~disk((32, 40), (16, 14), 3))
    s.set_clip_plane("longitudinal_wrist")
    assert s.undo() == []
    assert s.annotation.clip_plane is None  # as it was: blind mode starts with no plane
    assert s.undo() == [0]
    np.testing.assert_array_equal(s.annotation.frames[0].mask, m)
    assert s.redo() == [0]
    assert project.annotations.load("c0", "r1").frames[0].mask.sum() < m.sum()
    s.close()


def test_editing_a_model_proposal_records_how_much_changed(project):
    s = AnnotationSession.open(project, "c0", "r1")
    prop = disk((32, 40), (16, 10), 6)
    s.set_mask(2, prop)  # a human keyframe is never overwritten by the model
    assert s.apply_proposals({1: prop, 2: np.zeros_like(prop)}, {1: 0.9}) == [1]
    assert s.annotation.frames[1].provenance == "model" and s.annotation.frames[1].confidence == 0.9
    edited = prop.copy()
    edited[10:12] = False
    fm = s.set_mask(1, edited)
    assert fm.provenance == "model_edited"
    assert fm.edited_fraction == pytest.approx((prop ^ edited).sum() / prop.sum())
    assert s.annotation.frames[2].provenance == "drawn"
    s.close()


def test_bad_plane_and_range_are_refused_with_message(project):
    with AnnotationSession.open(project, "c0", "r1") as s:
        with pytest.raises(InputError, match="plane 'axial' is not in this project's vocabulary"):
            s.set_clip_plane("axial")
        with pytest.raises(InputError, match=r"frame range \[2, 9\) is outside the clip's 6 frames"):
            s.set_plane_range(2, 9, "non_standard")
        s.set_clip_plane("transverse_wrist")
        s.set_plane_range(4, 2, "non_standard")
        assert s.annotation.frame_planes()[1:5] == [
            "transverse_wrist",
            "non_standard",
            "non_standard",
            "transverse_wrist",
        ]


def test_corrupt_file_is_reported_kept_and_set_aside_only_with_consent(project):
    path = project.annotations.path("c0", "r1")
    path.parent.mkdir(parents=True)
    path.write_text('{"format": "ultramn-annotation"')
    with pytest.raises(CorruptAnnotationError, match=r"r1\.json: is not valid JSON .*left untouched"):
        AnnotationSession.open(project, "c0", "r1")
    assert path.read_text() == '{"format": "ultramn-annotation"'
    assert not path.with_suffix(".lock").exists()  # the failed open released its lock
    with AnnotationSession.open(project, "c0", "r1", set_aside_corrupt=True) as s:
        assert s.set_aside_path.read_text() == '{"format": "ultramn-annotation"'
        s.set_mask(0, np.zeros((32, 40), bool))
    assert project.annotations.load("c0", "r1").frames[0].mask.sum() == 0


def test_schema_invalid_file_names_the_schema_error(project):
    with AnnotationSession.open(project, "c0", "r1") as s:
        s.set_mask(0, disk((32, 40), (16, 10), 6))
    obj = json.loads(project.annotations.path("c0", "r1").read_text())
    obj["quality"] = "awful"
    project.annotations.path("c0", "r1").write_text(json.dumps(obj))
    with pytest.raises(CorruptAnnotationError, match="does not match schema 'annotation' at quality"):
        AnnotationSession.open(project, "c0", "r1")


def test_blind_mode_hides_other_raters_and_review_picks_a_final(project):
    for rater, radius in (("r1", 5), ("r2", 7)):
        with AnnotationSession.open(project, "c0", rater) as s:
            s.set_mask(0, disk((32, 40), (16, 10), radius))
    with AnnotationSession.open(project, "c0", "r1") as s:
        assert s.other_annotations() == {}
        with pytest.raises(ConflictError, match="needs review mode"):
            s.pick("r2")
    with AnnotationSession.open(project, "c0", "boss", review=True) as s:
        assert sorted(s.other_annotations()) == ["r1", "r2"]
        s.pick("r2")
        s.set_mask(0, disk((32, 40), (16, 10), 6))
    final = project.annotations.load("c0", ADJUDICATED)
    assert final.frames[0].mask.sum() == disk((32, 40), (16, 10), 6).sum()
    with pytest.raises(InputError, match="reserved for review mode"):
        AnnotationSession.open(project, "c0", ADJUDICATED)


def test_interpolate_fills_between_keyframes_as_one_undo_step(project):
    with AnnotationSession.open(project, "c0", "r1") as s:
        s.set_mask(0, disk((32, 40), (16, 10), 5))
        s.set_mask(4, disk((32, 40), (16, 14), 5))
        filled = s.interpolate()
        assert filled == [1, 2, 3]
        assert [s.annotation.frames[t].provenance for t in range(5)] == ["drawn"] + ["interpolated"] * 3 + ["drawn"]
        assert s.undo() == [1, 2, 3]
        assert sorted(s.annotation.frames) == [0, 4]


def test_propagation_is_previewed_then_accepted_up_to_a_frame_as_one_step(project):
    from napari_ultramn.progress import run_to_end

    with AnnotationSession.open(project, "c0", "r1") as s:
        s.set_mask(1, disk((32, 40), (16, 11), 6))
        with pytest.raises(InputError, match="frame 0 has no mask to propagate; trace it first"):
            s.propagation(0)
        result = run_to_end(s.propagation(1, direction=1))
        assert result.stop == 5 and sorted(s.annotation.frames) == [1]  # nothing written yet
        s.accept_propagation(result, up_to=3)
        assert [s.annotation.frames[t].provenance for t in (1, 2, 3)] == ["drawn", "propagated", "propagated"]
        assert 4 not in s.annotation.frames
        assert s.undo() == [2, 3]


def test_measurements_are_in_mm_when_calibrated_and_px_otherwise(tmp_path):
    for spacing, unit in (((0.1, 0.1), "mm"), (None, "px")):
        project = make_clip_project(tmp_path / unit, n_clips=1, spacing_mm=spacing)
        with AnnotationSession.open(project, "c0", "r1") as s:
            assert s.measure_frame(0) is None
            s.set_mask(0, disk((32, 40), (16, 16), 5))
            assert s.unit == unit and f"area_{unit}2" in s.measure_frame(0)
            table = s.measurement_table()
            assert list(table["frame"]) == [0] and f"perimeter_{unit}" in table.columns
