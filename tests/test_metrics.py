"""One empty-mask convention: the core metrics, agreement and evaluation give the same values."""

import numpy as np
import pytest

from dataset_tools.agreement.masks import boundary_metrics
from dataset_tools.agreement.masks import frame_metrics as agreement_frames
from napari_ultramn import metrics
from napari_ultramn.model.evaluate import frame_metrics as evaluation_frames


def square(size=20, top=5, left=5, side=8):
    m = np.zeros((size, size), bool)
    m[top : top + side, left : left + side] = True
    return m


EMPTY = np.zeros((20, 20), bool)
SPACING = (0.5, 0.25)

# (pred, truth, empty, dice, iou, hd95 in px); NaN = undefined
CASES = [
    (EMPTY, EMPTY, "both", 1.0, 1.0, 0.0),
    (square(), EMPTY, "one", 0.0, 0.0, np.nan),
    (EMPTY, square(), "one", 0.0, 0.0, np.nan),
    (square(), square(), "none", 1.0, 1.0, 0.0),
    (square(left=5), square(left=7), "none", 2 * 48 / 128, 48 / 80, 2.0),
]


@pytest.mark.parametrize(("pred", "truth", "empty", "dice", "iou", "hd95_px"), CASES)
def test_same_values_in_agreement_and_evaluation(pred, truth, empty, dice, iou, hd95_px):
    core = metrics.pair_metrics(pred, truth)
    agree = boundary_metrics(pred, truth)
    agree_mm = boundary_metrics(pred, truth, SPACING)
    stack = agreement_frames(pred[None], truth[None], SPACING)
    ev = evaluation_frames(pred[None], truth[None], SPACING)
    for values in (core, agree):
        assert values["empty"] == empty
        assert values["dice"] == pytest.approx(dice) and values["iou"] == pytest.approx(iou)
        np.testing.assert_allclose(values["hd95"], hd95_px)
    assert ev["empty"][0] == stack["empty"][0] == empty
    assert ev["dice"][0] == pytest.approx(dice) and ev["iou"][0] == pytest.approx(iou)
    np.testing.assert_allclose(ev["hd95_px"][0], hd95_px)
    np.testing.assert_allclose(ev["hd95_mm"][0], agree_mm["hd95"])
    np.testing.assert_allclose(stack["hd95"][0], agree_mm["hd95"])
    assert metrics.dice(pred, truth) == pytest.approx(dice)
    np.testing.assert_allclose(metrics.hd95(pred, truth), hd95_px)


def test_both_empty_gives_the_convention_for_every_metric():
    out = metrics.pair_metrics(EMPTY, EMPTY, SPACING)
    assert {k: out[k] for k in metrics.METRICS} == metrics.BOTH_EMPTY
    assert metrics.assd(EMPTY, EMPTY) == 0.0
    assert metrics.iou(EMPTY, EMPTY) == 1.0


def test_one_empty_leaves_every_distance_undefined():
    out = metrics.pair_metrics(square(), EMPTY, SPACING)
    assert out["dice"] == 0.0 and out["iou"] == 0.0
    assert all(np.isnan(out[k]) for k in metrics.DISTANCES)
    assert np.isnan(metrics.assd(EMPTY, square()))


def test_bad_shapes_are_reported():
    with pytest.raises(ValueError, match=r"masks of mismatched shape: \(20, 20\) vs \(20, 21\)"):
        metrics.pair_metrics(EMPTY, np.zeros((20, 21), bool))
    with pytest.raises(ValueError, match=r"expected \(T, H, W\) mask stacks, got shape \(20, 20\)"):
        metrics.frame_metrics(EMPTY, EMPTY)
