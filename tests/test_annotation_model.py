"""The annotation model, its RLE masks, schema checks and atomic store."""

import json

import numpy as np
import pytest

from napari_ultramn.annotation import AnnotationStore, ClipAnnotation, rle_decode, rle_encode
from napari_ultramn.errors import InputError, SchemaError
from napari_ultramn.project import Project


@pytest.mark.parametrize(
    "mask",
    [
        np.zeros((4, 5), bool),
        np.ones((4, 5), bool),
        np.eye(5, dtype=bool),
        np.random.default_rng(0).random((17, 23)) > 0.5,
    ],
)
def test_rle_round_trip(mask):
    counts = rle_encode(mask)
    assert sum(counts) == mask.size
    np.testing.assert_array_equal(rle_decode(counts, mask.shape), mask)


def test_rle_rejects_counts_that_do_not_fill_the_frame():
    with pytest.raises(ValueError, match="sum to 3, expected 20"):
        rle_decode([1, 2], (4, 5))


def _annotation():
    ann = ClipAnnotation("clip1", "r1", n_frames=5, frame_shape=(8, 9), clip_plane="transverse_wrist")
    m = np.zeros((8, 9), bool)
    m[2:5, 3:7] = True
    ann.set_mask(0, m, "drawn")
    ann.set_mask(2, m, "interpolated", confidence=0.8)
    return ann


def test_store_round_trip_keeps_masks_provenance_and_planes(tmp_path):
    project = Project.create(tmp_path / "p")
    ann = _annotation()
    project.annotations.save(ann)
    back = project.annotations.load("clip1", "r1")
    assert back.keyframes() == [0]
    assert back.frames[2].provenance == "interpolated" and back.frames[2].confidence == 0.8
    np.testing.assert_array_equal(back.frames[0].mask, ann.frames[0].mask)
    assert back.frame_planes() == ["transverse_wrist"] * 5
    assert project.annotations.raters("clip1") == ["r1"]


def test_mask_of_wrong_shape_is_refused_with_the_clip_named():
    with pytest.raises(ValueError, match="does not fit clip clip1"):
        _annotation().set_mask(1, np.zeros((3, 3), bool))


def test_corrupt_annotation_file_is_reported_with_its_path(tmp_path):
    store = AnnotationStore(tmp_path)
    path = store.path("clip1", "r1")
    path.parent.mkdir(parents=True)
    path.write_text('{"format": "ultramn-annotation", ')
    with pytest.raises(InputError, match=r"r1\.json: is not valid JSON"):
        store.load("clip1", "r1")
    obj = _annotation().to_json()
    obj["frames"]["0"]["provenance"] = "guessed"
    path.write_text(json.dumps(obj))
    with pytest.raises(SchemaError, match=r"r1\.json: does not match schema 'annotation' at frames/0/provenance"):
        store.load("clip1", "r1")
    aside = store.set_aside("clip1", "r1")
    assert aside.exists() and not path.exists()


def test_invalid_annotation_is_never_written(tmp_path):
    store = AnnotationStore(tmp_path)
    ann = _annotation()
    store.save(ann)
    before = store.path("clip1", "r1").read_bytes()
    ann.status = "finished-ish"
    with pytest.raises(SchemaError):
        store.save(ann)
    assert store.path("clip1", "r1").read_bytes() == before


def test_unsafe_rater_id_is_refused(tmp_path):
    with pytest.raises(ValueError, match="rater id '../x' is not allowed"):
        AnnotationStore(tmp_path).path("clip1", "../x")


def test_project_vocabulary_and_reopen(tmp_path):
    p = Project.create(tmp_path / "p", planes=["a", "b"])
    assert p.plane_labels == ["a", "b", "non_standard"]
    assert Project.open(tmp_path / "p").planes == ["a", "b"]
    with pytest.raises(InputError, match="is not an UltraMN project"):
        Project.open(tmp_path)


@pytest.mark.parametrize(
    "bad_rle, where",
    [([1, -2, 3], "frames/0/rle"), ([1.5, 2], "frames/0/rle"), ([[1, 2]], "frames/0/rle"), ([True, 3], "frames/0/rle")],
)
def test_bad_run_lengths_are_schema_errors_naming_the_frame(tmp_path, bad_rle, where):
    store = AnnotationStore(tmp_path)
    obj = _annotation().to_json()
    obj["frames"]["0"]["rle"] = bad_rle
    path = store.path("clip1", "r1")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(obj))
    with pytest.raises(SchemaError, match=f"r1.json: does not match schema 'annotation' at {where}"):
        store.load("clip1", "r1")
