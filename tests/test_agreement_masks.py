"""Boundary metrics: equal to MONAI's on the same masks, anisotropic spacing, empty-mask convention."""

import numpy as np
import pytest

from dataset_tools.agreement.masks import (
    area,
    boundary,
    boundary_metrics,
    frame_metrics,
    monai_boundary_metrics,
)

# MONAI 1.6 warns about its own deprecated internal argument; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def blob(shape, center, radii, rng=None, jitter=0.0):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    r = ((yy - center[0]) / radii[0]) ** 2 + ((xx - center[1]) / radii[1]) ** 2
    if rng is not None:
        r = r + jitter * rng.standard_normal(shape)
    return r <= 1.0


CASES = [
    ((64, 64), (32, 32), (10, 14), (33, 30), (11, 12), None),
    ((64, 80), (30, 40), (8, 20), (34, 44), (9, 16), (0.1, 0.1)),
    ((48, 48), (20, 20), (6, 9), (26, 28), (7, 5), (0.25, 0.08)),  # anisotropic
    ((40, 40), (3, 3), (8, 8), (5, 4), (6, 9), (0.2, 0.3)),  # touching the image border
]


@pytest.mark.parametrize("shape, ca, ra, cb, rb, spacing", CASES)
def test_matches_monai(shape, ca, ra, cb, rb, spacing):
    a, b = blob(shape, ca, ra), blob(shape, cb, rb)
    ours = boundary_metrics(a, b, spacing, tolerance=0.5 if spacing else 1.5)
    ref = monai_boundary_metrics(a, b, spacing, tolerance=0.5 if spacing else 1.5)
    for key, value in ref.items():
        assert ours[key] == pytest.approx(value, rel=1e-5, abs=1e-5), key
    assert ours["unit"] == ("px" if spacing is None else "mm")


def test_matches_monai_on_ragged_masks(rng):
    for _ in range(4):
        a = blob((56, 56), (28, 28), (12, 10), rng, 0.4)
        b = blob((56, 56), (27, 30), (11, 12), rng, 0.4)
        spacing = tuple(rng.uniform(0.05, 0.3, 2))
        ours = boundary_metrics(a, b, spacing, tolerance=0.4)
        for key, value in monai_boundary_metrics(a, b, spacing, tolerance=0.4).items():
            assert ours[key] == pytest.approx(value, rel=1e-5, abs=1e-5), key


def test_identical_and_known_values():
    a = blob((32, 32), (16, 16), (6, 6))
    m = boundary_metrics(a, a, (0.1, 0.1))
    assert m["dice"] == 1 and m["hd"] == 0 and m["assd"] == 0 and m["surface_dice"] == 1
    square = np.zeros((20, 20), bool)
    square[5:10, 5:10] = True
    shifted = np.roll(square, 2, axis=1)
    m = boundary_metrics(square, shifted, (1.0, 0.5))
    assert m["hd"] == pytest.approx(1.0)  # two columns of 0.5 mm
    assert m["dice"] == pytest.approx(2 * 15 / 50)
    assert m["iou"] == pytest.approx(15 / 35)


def test_empty_conventions():
    a = blob((32, 32), (16, 16), (6, 6))
    none = np.zeros_like(a)
    both = boundary_metrics(none, none, (0.1, 0.1))
    assert both["empty"] == "both" and both["dice"] == 1 and both["hd95"] == 0 and both["surface_dice"] == 1
    one = boundary_metrics(a, none, (0.1, 0.1))
    assert one["empty"] == "one" and one["dice"] == 0 and one["iou"] == 0
    assert np.isnan(one["hd"]) and np.isnan(one["assd"]) and np.isnan(one["surface_dice"])


def test_boundary_is_monai_edges():
    from monai.metrics.utils import get_mask_edges

    a = blob((30, 30), (15, 15), (7, 9))
    a[0, :4] = True  # touches the border
    ea, _ = get_mask_edges(a, a, crop=False)
    np.testing.assert_array_equal(boundary(a), ea)


def test_frame_metrics_and_area():
    a = np.stack([blob((32, 32), (16, 16), (6, 6 + t)) for t in range(3)])
    b = a.copy()
    b[2] = False
    out = frame_metrics(a, b, (0.1, 0.2))
    assert out["dice"].tolist() == [1.0, 1.0, 0.0]
    assert list(out["empty"]) == ["none", "none", "one"]
    assert area(a[0], (0.1, 0.2)) == pytest.approx(a[0].sum() * 0.02)
    assert area(a[0]) == a[0].sum()


def test_mismatched_shapes():
    with pytest.raises(ValueError, match=r"masks of mismatched shape: \(4, 4\) vs \(4, 5\)"):
        boundary_metrics(np.zeros((4, 4)), np.zeros((4, 5)))
