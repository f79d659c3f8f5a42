"""Writer contributions: a nerve Labels layer as annotation JSON, PNG sequence, DICOM SEG."""

import imageio.v3 as iio
import numpy as np
import pytest

from napari_ultramn._writer import write_annotation, write_dicom_seg, write_mask_pngs
from napari_ultramn.annotation.store import load_annotation_file
from napari_ultramn.errors import InputError
from tests.dicom_factory import write_us_cine  # minimal valid US cine


def _labels(n=4, shape=(32, 40)):
    data = np.zeros((n, *shape), np.uint8)
    data[0, 5:15, 10:20] = 1
    data[2, 6:16, 12:22] = 3  # any non-zero label is nerve
    return data


def test_plain_labels_layer_saves_painted_frames_as_drawn(tmp_path):
    [path] = write_annotation(str(tmp_path / "my clip!.json"), _labels(), {"name": "x", "metadata": {}})
    ann = load_annotation_file(path)
    assert (ann.clip_id, ann.rater) == ("my_clip", "napari")
    assert ann.keyframes() == [0, 2] and sorted(ann.frames) == [0, 2]
    assert ann.frames[2].mask.sum() == 100


def test_annotator_metadata_carries_ids_plane_and_provenance(tmp_path):
    meta = {"clip_id": "c7", "rater": "r1", "clip_plane": "transverse_wrist", "provenance": [0, 1, 0, -1]}
    [path] = write_annotation(str(tmp_path / "out"), _labels(), {"name": "nerve", "metadata": meta})
    assert path.endswith("out.json")
    ann = load_annotation_file(path)
    assert (ann.clip_id, ann.rater, ann.clip_plane) == ("c7", "r1", "transverse_wrist")
    assert [ann.frames[t].provenance for t in sorted(ann.frames)] == ["drawn", "interpolated", "drawn"]
    assert not ann.frames[1].mask.any()  # an annotated empty frame: "no nerve here"


def test_bad_layers_are_refused_with_a_message(tmp_path):
    with pytest.raises(
        InputError, match=r"can only save 2D or \(frames, rows, cols\) labels, got shape \(1, 2, 3, 4\)"
    ):
        write_annotation(str(tmp_path / "a.json"), np.zeros((1, 2, 3, 4)), {})
    with pytest.raises(InputError, match="'provenance' has 2 entries for 4 frames"):
        write_annotation(str(tmp_path / "a.json"), _labels(), {"metadata": {"provenance": [0, 0]}})
    with pytest.raises(InputError, match="does not name its source DICOM"):
        write_dicom_seg(str(tmp_path / "s.dcm"), _labels(), {"metadata": {}})
    assert not list(tmp_path.iterdir())


def test_png_sequence_goes_into_a_folder_named_after_the_file(tmp_path):
    paths = write_mask_pngs(str(tmp_path / "masks.png"), _labels(), {})
    assert [p.split("/")[-2:] for p in paths][0] == ["masks", "mask_0000.png"]
    assert len(paths) == 4
    np.testing.assert_array_equal(iio.imread(paths[2]) == 255, _labels()[2] > 0)


def test_dicom_seg_references_the_source(tmp_path):
    import highdicom as hd

    src = write_us_cine(tmp_path / "cine.dcm", n_frames=4, rows=32, cols=40)
    meta = {"source_path": str(tmp_path / "cine.dcm"), "rater": "r1"}
    [out] = write_dicom_seg(str(tmp_path / "seg"), _labels(), {"metadata": meta})
    seg = hd.seg.segread(out)
    assert out.endswith("seg.dcm")
    assert seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    assert seg.pixel_array.shape[0] == 4
