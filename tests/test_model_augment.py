"""Batched augmentation on the training device: seeded, same geometry for frames and masks,
today's transforms and probabilities (compared with the per-window version it replaces)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_ultramn.model.augment import Augment, epoch_generator
from napari_ultramn.model.augment_batch import affine_theta, nearest


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _blobs(b=6, t=4, h=40, w=56):
    """(B, 1, T, H, W) uint8 masks: an ellipse per window at a different place."""
    rows, cols = np.mgrid[0:h, 0:w]
    out = np.zeros((b, 1, t, h, w), np.uint8)
    for i in range(b):
        r0, c0 = 12 + 2 * i, 16 + 3 * i
        out[i, 0] = ((rows - r0) / 6.0) ** 2 + ((cols - c0) / 9.0) ** 2 <= 1
    return torch.from_numpy(out)


def test_same_seed_same_output_other_seed_other_output():
    frames = torch.randint(0, 256, (4, 1, 3, 32, 32), generator=_gen(1), dtype=torch.uint8)
    masks = _blobs(4, 3, 32, 32)
    a = Augment()(frames, masks, _gen(5))
    b = Augment()(frames, masks, _gen(5))
    c = Augment()(frames, masks, _gen(6))
    torch.testing.assert_close(a, b)
    assert not torch.equal(a[0], c[0])
    assert epoch_generator(1, 0).initial_seed() != epoch_generator(1, 1).initial_seed()
    assert epoch_generator(1, 0).initial_seed() != epoch_generator(1, 0, rank=1).initial_seed()
    assert epoch_generator(1, 0).initial_seed() == epoch_generator(1, 0).initial_seed()


@pytest.fixture(params=["windows", "batched"])
def run(request):
    """Both ways a batch is augmented: window by window on threads (the CPU's) and the whole batch
    at once (the GPU's, run here on the CPU)."""
    if request.param == "windows":
        return lambda aug, frames, masks, gen: aug(frames, masks, gen)
    return lambda aug, frames, masks, gen: aug.batched(frames, masks, gen)


def test_same_output_whatever_the_thread_count():
    """Each window's speckle comes from its own seed, so threads change nothing (some windows with
    speckle, some without)."""
    frames = torch.randint(0, 256, (4, 1, 5, 256, 448), generator=_gen(1), dtype=torch.uint8)
    masks = torch.zeros_like(frames)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = Augment()(frames, masks, _gen(6))
        torch.set_num_threads(2)
        two = Augment()(frames, masks, _gen(6))
        assert torch.get_num_threads() == 2  # the caller's setting is back after the call
    finally:
        torch.set_num_threads(threads)
    assert Augment().sample(4, _gen(6))["do_speckle"].tolist() == [False, True, False, True]
    torch.testing.assert_close(one, two)


def test_window_path_and_batched_path_agree_but_for_the_noise():
    """Same parameters (one draw for both), same transforms: without speckle the two paths give the
    same frames (float rounding aside) and the same masks but at exact ties of the nearest pixel."""
    frames = torch.randint(0, 256, (6, 1, 3, 40, 56), generator=_gen(1), dtype=torch.uint8)
    masks = _blobs(6, 3, 40, 56)
    aug = Augment(p_speckle=0.0, p_affine=0.7, p_flip=0.5, p_intensity=0.8)
    f1, m1 = aug(frames, masks, _gen(9))
    f2, m2 = aug.batched(frames, masks, _gen(9))
    torch.testing.assert_close(f1, f2, atol=2e-5, rtol=0)
    assert (m1 != m2).float().mean() < 1e-3
    with_speckle = Augment(p_speckle=1.0)
    assert not torch.allclose(with_speckle(frames, masks, _gen(9))[0], with_speckle.batched(frames, masks, _gen(9))[0])


def test_out_tensors_are_filled_and_returned():
    frames = torch.randint(0, 256, (3, 1, 2, 24, 20), generator=_gen(2), dtype=torch.uint8)
    masks = _blobs(3, 2, 24, 20)
    for call in (Augment().__call__, Augment().batched):
        out = (torch.full(frames.shape, -1.0), torch.full(masks.shape, -1.0))
        f, m = call(frames, masks, _gen(4), out=out)
        assert f is out[0] and m is out[1]
        expected_f, expected_m = call(frames, masks, _gen(4))
        torch.testing.assert_close(f, expected_f)
        assert torch.equal(m, expected_m.float())  # masks converted to the buffer's dtype
    with pytest.raises(ValueError, match="out must be contiguous float32 frames"):
        Augment()(frames, masks, _gen(), out=(torch.zeros(frames.shape, dtype=torch.float16), masks.clone()))
    with pytest.raises(ValueError, match="out must be contiguous float32 frames"):
        Augment()(frames, masks, _gen(), out=(torch.zeros(frames.shape), masks.clone()[:2]))


@pytest.mark.parametrize("frame_dtype", [torch.uint8, torch.float32])
def test_frames_and_masks_get_the_same_geometry(frame_dtype, run):
    masks = _blobs()
    frames = masks * 255 if frame_dtype == torch.uint8 else masks.float()
    geometric = Augment(p_flip=0.5, p_affine=1.0, rotate_deg=15, p_speckle=0, p_intensity=0)
    f, m = run(geometric, frames, masks, _gen(3))
    assert f.dtype == torch.float32 and m.dtype == torch.uint8 and set(m.unique().tolist()) <= {0, 1}
    moved = 0
    for i in range(len(masks)):
        bright, drawn = f[i] > 0.5, m[i] > 0
        assert (bright & drawn).sum() / (bright | drawn).sum() > 0.9
        for t in range(1, masks.shape[2]):  # one affine per window: every frame moved alike
            torch.testing.assert_close(m[i, 0, t], m[i, 0, 0])
        moved += not torch.equal(m[i], masks[i])
    assert moved == len(masks)


def test_flip_is_lateral_only_and_exact(run):
    masks = _blobs(2)
    frames = (masks * 200).to(torch.uint8)
    f, m = run(Augment(p_flip=1.0, p_affine=0.0, p_speckle=0, p_intensity=0), frames, masks, _gen())
    torch.testing.assert_close(m, masks.flip(-1))
    torch.testing.assert_close(f, frames.float().div(255).flip(-1))


def test_nothing_applied_is_the_plain_conversion(run):
    frames = torch.randint(0, 256, (3, 2, 24, 20), generator=_gen(2), dtype=torch.uint8)
    masks = frames > 128
    f, m = run(Augment(p_flip=0, p_affine=0, p_speckle=0, p_intensity=0), frames, masks, _gen())
    torch.testing.assert_close(f, frames.float() / 255)
    assert m.dtype == torch.bool and torch.equal(m, masks)


def test_probabilities_and_ranges_are_respected():
    aug = Augment()
    p = aug.sample(20_000, _gen(4))
    for key, chance in (("flip", 0.5), ("do_affine", 0.7), ("do_speckle", 0.5), ("do_intensity", 0.8)):
        assert abs(p[key].float().mean().item() - chance) < 0.015, key
    on = p["do_intensity"]
    assert 0.8 <= p["gain"][on].min() and p["gain"][on].max() <= 1.25
    assert (p["gain"][~on] == 1).all() and (p["attenuation"][~on] == 0).all()
    assert abs(p["angle"]).max() <= math.radians(10) + 1e-6
    assert 0.9 - 1e-6 <= p["scale"].min() and p["scale"].max() <= 1.1 + 1e-6
    assert p["tx"].abs().max() <= 0.06 and p["sigma"].max() <= 0.15
    # the geometry and intensity of one window do not depend on each other (independent draws)
    assert abs(np.corrcoef(p["gain"][on].numpy(), p["angle"][on].numpy())[0, 1]) < 0.03


def test_intensity_uint8_table_matches_the_float_path_and_leaves_masks():
    frames = torch.randint(0, 256, (4, 1, 4, 24, 32), generator=_gen(0), dtype=torch.uint8)
    masks = _blobs(4, 4, 24, 32)
    aug = Augment(p_flip=0, p_affine=0, p_speckle=0, p_intensity=1.0, attenuation=(0.5, 0.5))
    f8, m = aug(frames, masks, _gen(3))
    ff, _ = aug(frames.float() / 255, masks, _gen(3))
    assert torch.equal(m, masks)
    assert not torch.allclose(f8, frames.float() / 255)
    # the lookup table and the float path agree except for the subsampled contrast pivot
    assert (f8 - ff).abs().mean() < 0.02
    assert 0 <= f8.min() and f8.max() <= 1
    # depth attenuation: the deepest rows are darker on average than the top rows
    assert f8[..., -4:, :].mean() < f8[..., :4, :].mean()


def test_speckle_is_multiplicative_and_new_in_every_frame(run):
    aug = Augment(p_flip=0, p_affine=0, p_speckle=1.0, speckle=0.3, p_intensity=0)
    black = torch.zeros((2, 1, 2, 16, 16), dtype=torch.uint8)
    f, _ = run(aug, black, black, _gen())
    assert f.abs().max() == 0  # black stays black: noise scales the signal
    grey = torch.full((2, 1, 3, 15, 17), 128, dtype=torch.uint8)  # odd sizes: the enlarged-copy path
    f, _ = run(aug, grey, grey, _gen())
    assert f.std() > 0.01 and not torch.equal(f[0, 0, 0], f[0, 0, 1])
    even, _ = run(aug, torch.full((1, 1, 1, 4, 4), 128, dtype=torch.uint8), torch.zeros((1, 1, 1, 4, 4)), _gen())
    assert torch.equal(even[..., 0::2, 0::2], even[..., 1::2, 1::2])  # a 2-pixel grain


def test_rotation_keeps_shapes_on_non_square_frames(run):
    h, w = 40, 96
    rows, cols = np.mgrid[0:h, 0:w]
    disc = torch.from_numpy(((rows - 20) ** 2 + (cols - 48) ** 2 <= 12**2).astype(np.uint8))
    masks = disc[None, None].repeat(2, 1, 1, 1)
    aug = Augment(p_flip=0, p_affine=1.0, rotate_deg=10, scale=(1, 1), translate=0, p_speckle=0, p_intensity=0)
    _, m = run(aug, masks * 255, masks, _gen(7))
    for i in range(2):
        ys, xs = np.nonzero(m[i, 0].numpy())
        # a disc rotated about its centre stays a disc of the same extent in rows and columns
        assert abs((ys.max() - ys.min()) - (xs.max() - xs.min())) <= 1
        assert abs(int(m[i].sum()) - int(disc.sum())) <= 0.03 * int(disc.sum())


def test_nearest_equals_grid_sample_nearest():
    masks = (torch.rand((3, 5, 20, 28), generator=_gen(1)) > 0.5).to(torch.uint8)
    p = Augment(p_affine=1.0, rotate_deg=30, translate=0.3).sample(3, _gen(2))
    grid = F.affine_grid(affine_theta(p, 20, 28), [3, 1, 20, 28], align_corners=False)
    expected = F.grid_sample(masks.float(), grid, mode="nearest", align_corners=False).to(torch.uint8)
    assert torch.equal(nearest(masks, grid), expected)


def test_bad_arguments():
    with pytest.raises(ValueError, match="p_flip must be a probability"):
        Augment(p_flip=2)
    with pytest.raises(ValueError, match="scale must be a range"):
        Augment(scale=(1.2, 0.9))
    with pytest.raises(ValueError, match="attenuation must be a range"):
        Augment(attenuation=(0.5, 0.1))
    with pytest.raises(ValueError, match=r"frames \(2, 4, 4\) and masks \(2, 4, 5\) differ"):
        Augment()(torch.zeros((2, 4, 4)), torch.zeros((2, 4, 5)), _gen())


@pytest.mark.slow
def test_same_statistics_as_the_per_window_augmentation():
    """Against the version it replaces (one window at a time, kept as the benchmark baseline):
    the same transforms at the same rates give the same distributions of what they change."""
    from benchmarks.baseline_augment import Augment as WindowAugment
    from benchmarks.baseline_augment import window_generator

    n = 400
    rows, cols = np.mgrid[0:24, 0:24]
    one = (100 + 60 * np.sin(rows / 3.0) * np.cos(cols / 4.0)).astype(np.uint8)
    frames = torch.from_numpy(np.broadcast_to(one, (n, 1, 2, 24, 24)).copy())
    masks = torch.zeros_like(frames)
    masks[..., 6:14, 2:9] = 1  # left of centre: a flip moves it right

    def summary(f, m):
        area = m.float().sum(dim=(1, 2, 3, 4))
        right = (m[..., 12:].float().sum(dim=(1, 2, 3, 4)) > area / 2).float()
        return {"mean": f.mean(dim=(1, 2, 3, 4)), "flipped": right, "area": area}

    new = summary(*Augment()(frames, masks, _gen(11)))
    old_pairs = [WindowAugment()(frames[i], masks[i], window_generator(11, 0, i)) for i in range(n)]
    old = summary(torch.stack([f for f, _ in old_pairs]), torch.stack([m for _, m in old_pairs]))
    assert abs(new["flipped"].mean() - old["flipped"].mean()) < 0.08
    assert abs(new["mean"].mean() - old["mean"].mean()) < 0.02
    assert abs(new["mean"].std() / old["mean"].std() - 1) < 0.2
    assert abs(new["area"].mean() / old["area"].mean() - 1) < 0.03
    assert abs(new["area"].std() / old["area"].std() - 1) < 0.25
