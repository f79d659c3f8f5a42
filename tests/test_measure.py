"""Measurements against analytic shapes, at anisotropic spacing and uncalibrated."""

import math

import numpy as np
import pandas as pd
import pytest

from napari_ultramn.annotation import ClipAnnotation
from napari_ultramn.annotation.measure import centroid_excursion, measure_clip, measure_mask

SPACINGS = [(0.1, 0.05), (0.07, 0.07), (0.05, 0.08)]


def physical_ellipse(spacing, cy_mm, cx_mm, ry_mm, rx_mm, shape=(300, 300)):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    y, x = yy * spacing[0], xx * spacing[1]
    return ((y - cy_mm) / ry_mm) ** 2 + ((x - cx_mm) / rx_mm) ** 2 <= 1


def ellipse_perimeter(a, b):
    h = ((a - b) / (a + b)) ** 2  # Ramanujan's second approximation
    return math.pi * (a + b) * (1 + 3 * h / (10 + math.sqrt(4 - 3 * h)))


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("r_mm", [1.5, 4.0])
def test_disc_area_perimeter_circularity(spacing, r_mm):
    m = measure_mask(physical_ellipse(spacing, 8, 9, r_mm, r_mm), spacing)
    assert m.unit == "mm"
    assert m.area == pytest.approx(math.pi * r_mm**2, rel=0.02)
    assert m.perimeter == pytest.approx(2 * math.pi * r_mm, rel=0.02)
    assert m.circularity == pytest.approx(1.0, abs=0.04)
    assert m.flattening == pytest.approx(1.0, abs=0.03)
    assert (m.centroid_row, m.centroid_col) == pytest.approx((8, 9), abs=0.5 * max(spacing))


@pytest.mark.parametrize("spacing", SPACINGS)
def test_ellipse_flattening_is_major_over_minor_in_millimetres(spacing):
    # 3:1 in millimetres, whatever the pixel aspect
    m = measure_mask(physical_ellipse(spacing, 8, 10, 1.5, 4.5), spacing)
    assert m.flattening == pytest.approx(3.0, rel=0.03)
    assert m.major_axis == pytest.approx(9.0, rel=0.03)
    assert m.minor_axis == pytest.approx(3.0, rel=0.03)
    assert m.area == pytest.approx(math.pi * 1.5 * 4.5, rel=0.02)
    assert m.perimeter == pytest.approx(ellipse_perimeter(4.5, 1.5), rel=0.02)
    assert m.circularity < 0.8


def test_uncalibrated_square_is_in_pixels():
    mask = np.zeros((50, 50), bool)
    mask[10:30, 10:30] = True
    m = measure_mask(mask, None)
    assert m.unit == "px"
    assert m.area == 400
    assert m.perimeter == pytest.approx(80, rel=0.05)  # corners are rounded slightly
    assert (m.centroid_row, m.centroid_col) == (19.5, 19.5)
    assert m.flattening == pytest.approx(1.0)
    assert set(m.as_dict()) == {
        "area_px2",
        "perimeter_px",
        "flattening",
        "circularity",
        "major_axis_px",
        "minor_axis_px",
        "centroid_row_px",
        "centroid_col_px",
    }


def test_nerve_cut_by_the_image_edge_has_a_closed_outline():
    mask = np.zeros((20, 20), bool)
    mask[:5, :] = True  # a band along the top edge
    assert measure_mask(mask, None).perimeter == pytest.approx(2 * (20 + 5), rel=0.08)


def test_empty_mask_is_zero_area_and_nan_shape():
    m = measure_mask(np.zeros((10, 10), bool), (0.1, 0.1))
    assert m.area == 0 and m.perimeter == 0
    assert all(math.isnan(v) for v in (m.flattening, m.circularity, m.centroid_row, m.centroid_col))


def test_a_single_pixel_does_not_divide_by_zero():
    mask = np.zeros((5, 5), bool)
    mask[2, 2] = True
    m = measure_mask(mask, (0.1, 0.2))
    assert m.area == pytest.approx(0.02)
    assert m.flattening == pytest.approx(2.0)  # the pixel itself is 0.2 x 0.1 mm
    assert m.perimeter > 0


@pytest.mark.parametrize(
    ("spacing", "message"),
    [((0.1,), "must be"), ((0.1, 0.0), "two positive numbers"), ("ab", "must be")],
)
def test_bad_spacing_is_explained(spacing, message):
    with pytest.raises(ValueError, match=message):
        measure_mask(np.ones((3, 3), bool), spacing)


def test_bad_mask_shape_is_explained():
    with pytest.raises(ValueError, match=r"must be 2D \(H, W\), got shape \(2, 3, 3\)"):
        measure_mask(np.ones((2, 3, 3), bool), None)


def _moving_clip():
    ann = ClipAnnotation("c", "r", n_frames=6, frame_shape=(60, 80), clip_plane="transverse_wrist")
    for t, (cy, cx) in enumerate([(20, 20), (20, 23), (24, 27)]):
        yy, xx = np.mgrid[:60, :80]
        ann.set_mask(
            t * 2,
            (yy - cy) ** 2 + (xx - cx) ** 2 <= 36,
            "drawn" if t != 1 else "propagated",
            confidence=None if t != 1 else 0.8,
        )
    ann.set_mask(5, np.zeros((60, 80), bool), "drawn")  # nerve not visible
    return ann


def test_measure_clip_of_an_annotation_has_one_row_per_annotated_frame_with_units():
    df = measure_clip(_moving_clip(), (0.1, 0.1))
    assert list(df["frame"]) == [0, 2, 4, 5]
    assert list(df["provenance"]) == ["drawn", "propagated", "drawn", "drawn"]
    assert df.loc[1, "confidence"] == 0.8
    assert set(df["plane"]) == {"transverse_wrist"}
    assert "area_mm2" in df and "perimeter_mm" in df and "centroid_row_mm" in df
    assert not any(c.endswith("_px") or c.endswith("_px2") for c in df.columns)
    assert df.loc[3, "area_mm2"] == 0 and math.isnan(df.loc[3, "centroid_row_mm"])


def test_measure_clip_uncalibrated_never_says_mm():
    df = measure_clip(_moving_clip(), None)
    assert "area_px2" in df and not any("mm" in c for c in df.columns)


def test_measure_clip_accepts_a_stack_or_a_dict():
    stack = np.zeros((3, 10, 10), bool)
    stack[:, 2:5, 2:6] = True
    df = measure_clip(stack, None)
    assert list(df["frame"]) == [0, 1, 2] and list(df["area_px2"]) == [12, 12, 12]
    df = measure_clip({7: stack[0]}, (0.5, 0.5))
    assert list(df["frame"]) == [7] and df.loc[0, "area_mm2"] == 3.0
    assert "area_mm2" in measure_clip({}, (0.1, 0.1)).columns


def test_centroid_excursion_in_mm():
    out = centroid_excursion(measure_clip(_moving_clip(), (0.1, 0.2)))
    assert out["unit"] == "mm" and out["n_frames"] == 3 and out["first_frame"] == 0
    # centroids (row, col) in mm: (2, 4), (2, 4.6), (2.4, 5.4)
    assert out["max_displacement_mm"] == pytest.approx(math.hypot(0.4, 1.4))
    assert out["frame_of_max_displacement"] == 4
    assert out["row_range_mm"] == pytest.approx(0.4)
    assert out["col_range_mm"] == pytest.approx(1.4)
    assert out["path_length_mm"] == pytest.approx(0.6 + math.hypot(0.4, 0.8))


def test_centroid_excursion_in_pixels_and_without_frames():
    out = centroid_excursion(measure_clip(_moving_clip(), None))
    assert out["unit"] == "px" and out["max_displacement_px"] == pytest.approx(math.hypot(4, 7))
    empty = centroid_excursion(measure_clip({0: np.zeros((4, 4), bool)}, None))
    assert empty["n_frames"] == 0 and math.isnan(empty["max_displacement_px"])
    with pytest.raises(ValueError, match="needs a measure_clip table"):
        centroid_excursion(pd.DataFrame({"frame": [0]}))
