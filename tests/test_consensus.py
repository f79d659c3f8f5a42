"""Consensus masks (majority, STAPLE), plane labels with tie rules, clip consensus, worst frames."""

import numpy as np
import pytest

from dataset_tools.consensus import (
    clip_consensus,
    consensus_plane,
    majority_mask,
    staple,
    staple_mask,
    worst_frames,
)
from napari_ultramn.annotation import PROVENANCES, ClipAnnotation, PlaneRange


def disk(shape, center, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius**2


def test_majority_mask_strict_and_ties():
    a = np.array([[1, 1, 0, 0]], bool)
    b = np.array([[1, 0, 1, 0]], bool)
    c = np.array([[1, 0, 0, 0]], bool)
    assert majority_mask(np.stack([a, b, c])).tolist() == [[True, False, False, False]]
    # two raters, one vote each: a tie is background
    assert majority_mask(np.stack([a, b])).tolist() == [[True, False, False, False]]
    assert majority_mask(a[None]).tolist() == a.tolist()


def test_majority_mask_rejects_bad_shape():
    with pytest.raises(ValueError, match="stack of masks"):
        majority_mask(np.zeros((0, 4, 4), bool))


def test_staple_recovers_truth_and_ranks_raters():
    rng = np.random.default_rng(0)
    truth = disk((64, 64), (32, 32), 12)
    good = truth.copy()
    noisy = truth ^ (rng.random(truth.shape) < 0.05)
    big = disk((64, 64), (32, 32), 15)
    res = staple(np.stack([good, noisy, big]))
    assert res.converged
    assert (res.mask == truth).mean() > 0.99
    assert res.sensitivity.shape == (3,) and res.specificity.shape == (3,)
    assert res.specificity[2] < res.specificity[0]  # the large tracer marks extra nerve
    assert res.probability.shape == truth.shape
    np.testing.assert_array_equal(staple_mask(np.stack([good, noisy, big])), res.mask)


@pytest.mark.parametrize(
    "labels, rule, expected",
    [
        (["a", "a", "b"], "none", "a"),
        (["a", None, None], "none", "a"),
        ([None, None], "none", None),
        (["a", "b"], "none", None),
        (["b", "a"], "first", "b"),
        (["a", "b", "b", "a", None], "first", "a"),
        (["a", "b"], "non_standard", "non_standard"),
    ],
)
def test_consensus_plane(labels, rule, expected):
    assert consensus_plane(labels, tie_rule=rule) == expected


def test_consensus_plane_unknown_rule():
    with pytest.raises(ValueError, match="unknown tie_rule 'coin'"):
        consensus_plane(["a"], tie_rule="coin")


def make_ann(rater, masks, frames, provenance="drawn", plane="transverse_wrist", quality="ok"):
    ann = ClipAnnotation("c1", rater, masks.shape[0], masks.shape[1:], clip_plane=plane, quality=quality)
    for t in frames:
        ann.set_mask(t, masks[t], provenance if t % 2 == 0 else "interpolated")
    return ann


@pytest.fixture
def three_raters():
    t, shape = 6, (32, 32)
    base = np.stack([disk(shape, (16, 16), 6 + i % 2) for i in range(t)])
    bigger = np.stack([disk(shape, (16, 16), 8 + i % 2) for i in range(t)])
    shifted = np.stack([disk(shape, (16, 18), 6) for _ in range(t)])
    return {
        "r1": make_ann("r1", base, range(t)),
        "r2": make_ann("r2", bigger, range(t), quality="unusable"),
        "r3": make_ann("r3", shifted, [0, 1, 2], plane="transverse_forearm", quality="unusable"),
    }


def test_clip_consensus_majority(three_raters):
    res = clip_consensus(three_raters, min_raters=2)
    assert res.masks.shape == (6, 32, 32) and res.masks.dtype == bool
    assert res.annotated.all() and res.n_raters.tolist() == [3, 3, 3, 2, 2, 2]
    # frames 3..5 have two raters: strict majority = intersection
    r1, _ = three_raters["r1"].mask_stack()
    r2, _ = three_raters["r2"].mask_stack()
    np.testing.assert_array_equal(res.masks[4], r1[4] & r2[4])
    assert res.clip_plane == "transverse_wrist"
    assert res.quality == "unusable"
    assert res.provenance[0] == PROVENANCES.index("drawn")
    assert res.provenance[1] == PROVENANCES.index("interpolated")
    assert np.all((res.disagreement > 0) & (res.disagreement < 1))


def test_clip_consensus_min_raters_and_staple(three_raters):
    res = clip_consensus(three_raters, method="staple", min_raters=3)
    assert res.annotated.tolist() == [True, True, True, False, False, False]
    assert not res.masks[3:].any()
    assert res.provenance[3:].tolist() == [-1, -1, -1]
    assert "r1+r2+r3" in res.staple


def test_clip_consensus_frame_plane_ranges(three_raters):
    three_raters["r1"].plane_ranges = [PlaneRange(0, 2, "non_standard")]
    three_raters["r2"].plane_ranges = [PlaneRange(0, 1, "non_standard")]
    res = clip_consensus(three_raters)
    assert res.frame_planes[0] == "non_standard"
    assert res.frame_planes[1] is None  # non_standard / wrist / forearm: unresolved tie
    assert res.frame_planes[5] == "transverse_wrist"


def test_clip_consensus_mismatched_shape(three_raters):
    three_raters["r9"] = ClipAnnotation("c1", "r9", 6, (16, 16))
    with pytest.raises(ValueError, match=r"disagree on the clip's shape .*r9: 6 frames of 16x16"):
        clip_consensus(three_raters)


def test_clip_consensus_bad_method(three_raters):
    with pytest.raises(ValueError, match="unknown consensus method 'mean'"):
        clip_consensus(three_raters, method="mean")


def test_worst_frames(three_raters):
    rows = worst_frames(three_raters, k=3, spacing_mm=(0.1, 0.1))
    assert len(rows) == 3
    dices = [r["dice"] for r in rows]
    assert dices == sorted(dices)
    assert rows[0]["area_unit"] == "mm2" and rows[0]["area_diff"] > 0
    assert set(rows[0]) >= {"frame", "dice", "mean_dice", "area_diff", "raters", "n_raters"}
    assert worst_frames(three_raters)[0]["area_unit"] == "px"
