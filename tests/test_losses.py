"""MultitaskLoss: weights validated, empty-mask frames handled, ignore labels, no NaN."""

import math

import pytest
import torch

from napari_ultramn.model.losses import MultitaskLoss

B, T, H, W, P = 2, 4, 16, 16, 5


def _outputs(seg_value=0.0, requires_grad=False):
    torch.manual_seed(0)
    out = {
        "seg": torch.full((B, 1, T, H, W), float(seg_value)),
        "presence": torch.zeros(B, T),
        "plane_frame": torch.randn(B, T, P),
        "plane_clip": torch.randn(B, P),
    }
    if requires_grad:
        for v in out.values():
            v.requires_grad_(True)
    return out


def _batch(empty=False):
    masks = torch.zeros(B, 1, T, H, W)
    if not empty:
        masks[:, :, :2, 4:10, 5:12] = 1.0  # nerve visible in frames 0, 1; absent in 2, 3
    return {
        "masks": masks,
        "plane": torch.tensor([[0, 1, 2, -1], [4, 4, -1, -1]]),
        "clip_plane": torch.tensor([1, -1]),
        "annotated": torch.tensor([[True, True, True, False], [True, False, True, True]]),
    }


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"seg_dice_weight": -1.0}, "seg_dice_weight must be finite and >= 0"),
        ({"plane_weight": float("nan")}, "plane_weight must be finite and >= 0"),
        ({"presence_weight": "0.5"}, "presence_weight must be a number"),
        (
            {"seg_dice_weight": 0, "seg_ce_weight": 0, "presence_weight": 0, "plane_weight": 0, "clip_plane_weight": 0},
            "all loss weights are 0",
        ),
    ],
)
def test_bad_weights_are_refused_with_a_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MultitaskLoss(**kwargs)


def test_total_is_the_weighted_sum_of_the_parts():
    loss = MultitaskLoss(
        seg_dice_weight=2.0, seg_ce_weight=0.5, presence_weight=0.25, plane_weight=1.5, clip_plane_weight=3.0
    )
    total, parts = loss(_outputs(requires_grad=True), _batch())
    expected = (
        2.0 * parts["seg_dice"]
        + 0.5 * parts["seg_ce"]
        + 0.25 * parts["presence"]
        + 1.5 * parts["plane"]
        + 3.0 * parts["clip_plane"]
    )
    assert parts["total"] == pytest.approx(expected, rel=1e-5)
    assert float(total.detach()) == pytest.approx(expected, rel=1e-5)
    assert all(math.isfinite(v) and v > 0 for v in parts.values())
    total.backward()


def test_empty_ground_truth_gives_no_nan_and_does_not_reward_all_foreground():
    loss = MultitaskLoss()
    batch = _batch(empty=True)
    _, fg = loss(_outputs(seg_value=8.0), batch)  # predicts nerve everywhere
    _, bg = loss(_outputs(seg_value=-8.0), batch)  # predicts nothing
    assert all(math.isfinite(v) for v in fg.values()) and all(math.isfinite(v) for v in bg.values())
    assert fg["seg_dice"] == 0.0 and bg["seg_dice"] == 0.0  # no nerve frame: Dice is not defined
    assert fg["seg_ce"] > 5.0 > 0.01 > bg["seg_ce"]
    assert fg["total"] > bg["total"]


def test_gradient_of_an_all_empty_batch_is_finite():
    out = _outputs(seg_value=3.0, requires_grad=True)
    total, _ = MultitaskLoss()(out, _batch(empty=True))
    total.backward()
    for value in out.values():
        assert torch.isfinite(value.grad).all()
    assert out["seg"].grad.abs().sum() > 0  # false positives on empty frames are pushed down


def test_dice_only_over_frames_with_a_nerve():
    batch = _batch()
    perfect = _outputs()
    perfect["seg"] = torch.where(batch["masks"] > 0, 20.0, -20.0)
    loss = MultitaskLoss()
    _, parts = loss(perfect, batch)
    assert parts["seg_dice"] < 1e-3 and parts["seg_ce"] < 1e-3
    # a false positive on an empty (but annotated) frame costs BCE and presence, not Dice
    fp = {k: v.clone() for k, v in perfect.items()}
    fp["seg"][0, 0, 2] = 20.0
    _, parts_fp = loss(fp, batch)
    assert parts_fp["seg_dice"] == pytest.approx(parts["seg_dice"], abs=1e-6)
    assert parts_fp["seg_ce"] > parts["seg_ce"] + 1.0


def test_unannotated_frames_are_ignored():
    batch = _batch()
    a = _outputs()
    b = {k: v.clone() for k, v in a.items()}
    b["seg"][0, 0, 3] = 50.0  # sample 0, frame 3 is not annotated
    b["presence"][1, 1] = -50.0  # sample 1, frame 1 is not annotated
    loss = MultitaskLoss()
    assert loss(a, batch)[1] == loss(b, batch)[1]


def test_presence_teaches_absence():
    batch = _batch()
    out = _outputs()
    right = {k: v.clone() for k, v in out.items()}
    right["presence"] = torch.tensor([[9.0, 9.0, -9.0, -9.0], [9.0, 9.0, -9.0, -9.0]])
    wrong = {k: v.clone() for k, v in out.items()}
    wrong["presence"] = torch.full((B, T), 9.0)
    loss = MultitaskLoss()
    assert loss(right, batch)[1]["presence"] < 0.01 < 1.0 < loss(wrong, batch)[1]["presence"]


def test_unknown_planes_are_ignored_and_all_unknown_is_zero():
    batch = _batch()
    batch["plane"][:] = -1
    batch["clip_plane"][:] = -1
    out = _outputs(requires_grad=True)
    total, parts = MultitaskLoss()(out, batch)
    assert parts["plane"] == 0.0 and parts["clip_plane"] == 0.0
    total.backward()
    assert out["plane_clip"].grad is not None and torch.all(out["plane_clip"].grad == 0)


def test_zero_weight_parts_are_skipped():
    _, parts = MultitaskLoss(presence_weight=0.0, clip_plane_weight=0.0)(_outputs(), _batch())
    assert parts["presence"] == 0.0 and parts["clip_plane"] == 0.0 and parts["plane"] > 0


def test_shape_mismatch_is_reported():
    batch = _batch()
    batch["masks"] = batch["masks"][..., :8]
    with pytest.raises(ValueError, match=r"batch\['masks'\] .* does not match"):
        MultitaskLoss()(_outputs(), batch)


def test_switched_off_outputs_still_get_a_zero_gradient():
    """DistributedDataParallel needs a gradient for every parameter, even of unused heads."""
    out = _outputs(requires_grad=True)
    total, _ = MultitaskLoss(presence_weight=0.0, clip_plane_weight=0.0)(out, _batch())
    total.backward()
    assert torch.all(out["presence"].grad == 0) and torch.all(out["plane_clip"].grad == 0)


def test_half_precision_logits_give_a_float32_loss():
    out = {k: v.half() for k, v in _outputs(seg_value=2.0).items()}
    total, parts = MultitaskLoss()(out, _batch())
    assert total.dtype == torch.float32 and all(math.isfinite(v) for v in parts.values())


# -- plane class weights ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "weights, message",
    [
        ([], "plane_class_weights is empty"),
        (2.0, "plane_class_weights must be a sequence of numbers"),
        ("1,1,1,1,1", "plane_class_weights must be a sequence of numbers"),
        ([1.0, 0.0, 1.0, 1.0, 1.0], r"plane_class_weights\[1\] must be finite and > 0; got 0.0"),
        ([1.0, 1.0, -2.0, 1.0, 1.0], r"plane_class_weights\[2\] must be finite and > 0"),
        ([1.0, float("inf"), 1.0, 1.0, 1.0], r"plane_class_weights\[1\] must be finite and > 0"),
        ([1.0, float("nan"), 1.0, 1.0, 1.0], r"plane_class_weights\[1\] must be finite and > 0"),
        ([1.0, "2", 1.0, 1.0, 1.0], r"plane_class_weights\[1\] must be a number"),
        ([True, 1.0, 1.0, 1.0, 1.0], r"plane_class_weights\[0\] must be a number"),
    ],
)
def test_bad_plane_class_weights_are_refused_with_a_message(weights, message):
    with pytest.raises(ValueError, match=message):
        MultitaskLoss(plane_class_weights=weights)


def test_plane_class_weights_must_match_the_plane_head():
    with pytest.raises(ValueError, match=r"plane_class_weights has 3 weights but outputs\['plane_frame'\] has 5"):
        MultitaskLoss(plane_class_weights=[1.0, 1.0, 1.0])(_outputs(), _batch())


def _frame_ce(out, batch, weights):
    """Reference weighted mean cross-entropy over the known frame labels."""
    logits = out["plane_frame"].reshape(B * T, P)
    target = batch["plane"].reshape(B * T)
    keep = target >= 0
    nll = -torch.log_softmax(logits[keep], -1).gather(1, target[keep, None])[:, 0]
    w = torch.tensor(weights)[target[keep]]
    return float((w * nll).sum() / w.sum())


def test_plane_class_weights_weight_the_frame_loss_only():
    out, batch = _outputs(), _batch()
    _, plain = MultitaskLoss()(out, batch)
    _, ones = MultitaskLoss(plane_class_weights=[1.0] * P)(out, batch)
    assert ones == plain  # all-equal weights change nothing (the mean is normalised by them)
    _, scaled = MultitaskLoss(plane_class_weights=[3.0] * P)(out, batch)
    assert scaled["plane"] == pytest.approx(plain["plane"], rel=1e-6)
    weights = [1.0, 1.0, 1.0, 1.0, 4.0]  # the rare label 4 (non_standard) counts 4x
    _, parts = MultitaskLoss(plane_class_weights=weights)(out, batch)
    assert parts["plane"] == pytest.approx(_frame_ce(out, batch, weights), rel=1e-5)
    assert parts["plane"] != pytest.approx(plain["plane"], rel=1e-3)
    # the clip-plane, segmentation and presence parts are untouched
    for name in ("clip_plane", "seg_dice", "seg_ce", "presence"):
        assert parts[name] == plain[name]


def test_up_weighted_label_gets_a_larger_gradient():
    batch = _batch()
    grads = []
    for weights in ([1.0] * P, [1.0, 1.0, 1.0, 1.0, 4.0]):
        out = _outputs(requires_grad=True)
        total, _ = MultitaskLoss(
            seg_dice_weight=0, seg_ce_weight=0, presence_weight=0, clip_plane_weight=0, plane_class_weights=weights
        )(out, batch)
        total.backward()
        g = out["plane_frame"].grad
        grads.append((g[1, 0].norm() / g[0, 0].norm()).item())  # frame of label 4 vs of label 0
    assert grads[1] == pytest.approx(4 * grads[0], rel=1e-5)


def test_inverse_frequency_weights():
    from napari_ultramn.model.losses import inverse_frequency_weights

    # 4 common labels and a rare one 4x rarer: sqrt gives it 2x the weight; mean 1 over classes
    w = inverse_frequency_weights([400, 400, 400, 400, 100])
    assert w == pytest.approx([5 / 6, 5 / 6, 5 / 6, 5 / 6, 5 / 3])
    assert sum(w) / len(w) == pytest.approx(1.0)
    assert inverse_frequency_weights([10, 10, 10]) == pytest.approx([1.0, 1.0, 1.0])
    assert inverse_frequency_weights([400, 100], power=1.0) == pytest.approx([0.4, 1.6])
    # a class 10,000x rarer is capped at max_ratio times the commonest
    w = inverse_frequency_weights([10_000, 1], max_ratio=10.0)
    assert w[1] / w[0] == pytest.approx(10.0)
    # an absent class gets the neutral 1.0 and does not enter the mean; no labels at all: all ones
    w = inverse_frequency_weights([300, 0, 75])
    assert w[1] == 1.0 and (w[0] + w[2]) / 2 == pytest.approx(1.0) and w[2] == pytest.approx(2 * w[0])
    assert inverse_frequency_weights([0, 0]) == [1.0, 1.0]
    for kwargs, message in (
        ({"counts": []}, "one non-negative count per class"),
        ({"counts": [3, -1]}, "one non-negative count per class"),
        ({"counts": [1], "power": -1.0}, "power must be finite and >= 0"),
        ({"counts": [1], "max_ratio": 0.5}, "max_ratio must be finite and >= 1"),
    ):
        with pytest.raises(ValueError, match=message):
            inverse_frequency_weights(**kwargs)
