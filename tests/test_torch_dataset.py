"""ClipWindowDataset and Augment: shapes, determinism, worker safety, identical geometry."""

import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from dataset_tools.augment import Augment, window_generator, window_seed
from dataset_tools.build import build_dataset
from dataset_tools.torch_dataset import ClipWindowDataset, split_datasets, window_starts
from napari_ultramn.errors import InputError
from napari_ultramn.progress import run_to_end
from tests.project_factory import make_project


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tds")
    project = make_project(root / "proj", n_participants=4, n_frames=20, frame_shape=(32, 48),
                           raters=("r1",), seed=3)
    run_to_end(build_dataset(project, root / "ds", rater="r1", min_frames=8,
                             ratios=(0.5, 0.25, 0.25)))
    return root / "ds"


@pytest.mark.parametrize("n, window, stride, expected", [
    (20, 8, 8, [0, 8, 12]),
    (16, 8, 8, [0, 8]),
    (20, 8, 4, [0, 4, 8, 12]),
    (7, 8, 8, []),
    (8, 8, 3, [0]),
])
def test_window_starts(n, window, stride, expected):
    assert window_starts(n, window, stride) == expected


def test_items(dataset_dir):
    ds = ClipWindowDataset(dataset_dir / "train.h5", window=8)
    assert len(ds) == 3 * len(ds.clips) and ds.split == "train"
    assert ds.vocabulary[-1] == "non_standard"
    item = ds[1]
    assert item["frames"].shape == item["masks"].shape == (1, 8, 32, 48)
    assert item["frames"].dtype == item["masks"].dtype == torch.float32
    assert 0 <= item["frames"].min() and item["frames"].max() <= 1
    assert set(item["masks"].unique().tolist()) <= {0.0, 1.0}
    assert item["plane"].shape == (8,) and item["plane"].dtype == torch.int64
    assert item["annotated"].dtype == torch.bool and item["annotated"].all()
    assert item["clip_plane"].dtype == torch.int64 and item["clip_plane"].ndim == 0
    assert item["start"] == 8 and isinstance(item["clip_id"], str)
    raw = ds.read_window(item["clip_id"], 8)
    np.testing.assert_allclose(item["frames"][0].numpy(), raw["frames"] / 255.0, atol=1e-6)
    assert ds[-1]["start"] == 12
    with pytest.raises(IndexError, match="out of range"):
        ds[len(ds)]


def test_augmented_items_are_deterministic_per_seed_epoch_index(dataset_dir):
    a = ClipWindowDataset(dataset_dir / "train.h5", window=8, augment=Augment(), seed=1)
    b = ClipWindowDataset(dataset_dir / "train.h5", window=8, augment=Augment(), seed=1)
    for i in range(3):
        torch.testing.assert_close(a[i]["frames"], b[i]["frames"])
        torch.testing.assert_close(a[i]["masks"], b[i]["masks"])
    first = a[0]["frames"]
    a.set_epoch(1)
    assert not torch.equal(first, a[0]["frames"])
    assert window_seed(1, 0, 5) != window_seed(1, 1, 5) != window_seed(2, 0, 5)


def test_dataloader_with_workers_matches_single_process(dataset_dir):
    ds = ClipWindowDataset(dataset_dir / "train.h5", window=8, augment=Augment(), seed=2)
    ds[0]  # open a handle in the parent: workers must not reuse it
    single = [ds[i] for i in range(len(ds))]
    loader = DataLoader(ds, batch_size=2, num_workers=2, shuffle=False)
    batches = list(loader)
    frames = torch.cat([b["frames"] for b in batches])
    torch.testing.assert_close(frames, torch.stack([s["frames"] for s in single]))
    assert [c for b in batches for c in b["clip_id"]] == [s["clip_id"] for s in single]


def test_persistent_workers_see_set_epoch(dataset_dir):
    ds = ClipWindowDataset(dataset_dir / "train.h5", window=8, augment=Augment(), seed=4)
    expected = {}
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        expected[epoch] = torch.stack([ds[i]["frames"] for i in range(len(ds))])
    loader = DataLoader(ds, batch_size=2, num_workers=2, persistent_workers=True)
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        frames = torch.cat([b["frames"] for b in loader])
        torch.testing.assert_close(frames, expected[epoch])
    assert not torch.equal(expected[0], expected[1])


@pytest.mark.parametrize("augment", [None, Augment()])
def test_uint8_items_convert_to_the_float_items(dataset_dir, augment):
    from dataset_tools.torch_dataset import batch_to_float

    ref = ClipWindowDataset(dataset_dir / "train.h5", window=8, augment=augment, seed=5)
    small = ClipWindowDataset(dataset_dir / "train.h5", window=8, augment=augment, seed=5, as_uint8=True)
    item = small[2]
    assert item["frames"].dtype == item["masks"].dtype == torch.uint8
    converted = batch_to_float(item)
    torch.testing.assert_close(converted["frames"], ref[2]["frames"], atol=0.5 / 255 + 1e-6, rtol=0)
    torch.testing.assert_close(converted["masks"], ref[2]["masks"])


def test_pickle_drops_the_file_handle(dataset_dir):
    ds = ClipWindowDataset(dataset_dir / "train.h5", window=8)
    ds[0]
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._fh is None
    torch.testing.assert_close(clone[0]["frames"], ds[0]["frames"])
    ds.close()


def test_split_datasets_augment_train_only(dataset_dir):
    sets = split_datasets(dataset_dir, window=8, augment=Augment())
    assert set(sets) == {"train", "validation", "test"}
    assert sets["train"].augment is not None and sets["test"].augment is None


def test_bad_inputs(tmp_path, dataset_dir):
    with pytest.raises(InputError, match="nope.h5: is not a readable HDF5 file"):
        ClipWindowDataset(tmp_path / "nope.h5")
    with pytest.raises(ValueError, match="window and stride must be >= 1"):
        ClipWindowDataset(dataset_dir / "train.h5", window=0)
    with pytest.raises(InputError, match=r"has no clip\(s\) \['zzz'\]"):
        ClipWindowDataset(dataset_dir / "train.h5", clip_ids=["zzz"])
    with pytest.raises(ValueError, match="p_flip must be a probability"):
        Augment(p_flip=2)
    with pytest.raises(ValueError, match="scale must be a range"):
        Augment(scale=(1.2, 0.9))


def _blob(h=40, w=56):
    rows, cols = np.mgrid[0:h, 0:w]
    m = (((rows - 14) / 6.0) ** 2 + ((cols - 18) / 9.0) ** 2 <= 1).astype(np.float32)
    return torch.from_numpy(np.repeat(m[None, None], 4, axis=1))  # (1, 4, H, W)


def test_affine_moves_frames_and_masks_together():
    masks = _blob()
    frames = (masks * 255).to(torch.uint8)
    geometric = Augment(p_flip=0.5, p_affine=1.0, rotate_deg=15, p_speckle=0, p_intensity=0)
    for i in range(5):
        f, m = geometric(frames, masks.clone(), window_generator(0, 0, i))
        assert f.dtype == torch.float32 and set(m.unique().tolist()) <= {0.0, 1.0}
        inter = ((f > 0.5) & (m > 0.5)).sum().item()
        union = ((f > 0.5) | (m > 0.5)).sum().item()
        assert inter / union > 0.9
        for t in range(1, 4):  # one affine per window: every frame moved the same way
            torch.testing.assert_close(m[0, t], m[0, 0])


def test_flip_is_lateral_only():
    masks = _blob()
    frames = (masks * 200).to(torch.uint8)
    flip = Augment(p_flip=1.0, p_affine=0.0, p_speckle=0, p_intensity=0)
    f, m = flip(frames, masks.clone(), window_generator(0, 0, 0))
    torch.testing.assert_close(m, masks.flip(-1))
    torch.testing.assert_close(f, frames.float().div(255).flip(-1))


def test_intensity_changes_frames_not_masks_and_uint8_matches_float():
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (1, 4, 24, 32), generator=g, dtype=torch.uint8)
    masks = _blob(24, 32)
    aug = Augment(p_flip=0, p_affine=0, p_speckle=0, p_intensity=1.0, attenuation=(0.5, 0.5))
    f8, m = aug(frames, masks.clone(), window_generator(3, 0, 0))
    ff, _ = aug(frames.float() / 255, masks.clone(), window_generator(3, 0, 0))
    torch.testing.assert_close(m, masks)
    assert not torch.allclose(f8, frames.float() / 255)
    # the lookup table and the float path agree except for the subsampled contrast pivot
    assert (f8 - ff).abs().mean() < 0.02
    # depth attenuation: the deepest rows are darker on average than the top rows
    assert f8[..., -4:, :].mean() < f8[..., :4, :].mean()


def test_speckle_is_multiplicative():
    frames = torch.zeros((1, 2, 16, 16), dtype=torch.uint8)
    aug = Augment(p_flip=0, p_affine=0, p_speckle=1.0, speckle=0.3, p_intensity=0)
    f, _ = aug(frames, torch.zeros((1, 2, 16, 16)), window_generator(0, 0, 0))
    assert f.abs().max() == 0  # black stays black: noise scales the signal


def test_rotation_keeps_shapes_on_non_square_frames():
    h, w = 40, 96
    rows, cols = np.mgrid[0:h, 0:w]
    disc = ((rows - 20) ** 2 + (cols - 48) ** 2 <= 12 ** 2).astype(np.uint8)
    masks = torch.from_numpy(disc[None, None])
    frames = masks * 255
    for angle in (-10.0, 10.0):
        f, m = Augment._affine(frames.float() / 255, masks, np.radians(angle), 1.0, 0.0, 0.0, False)
        ys, xs = np.nonzero(m[0, 0].numpy())
        # a disc rotated about its centre stays a disc of the same extent in rows and columns
        assert abs((ys.max() - ys.min()) - (xs.max() - xs.min())) <= 1
        assert abs(int(m.sum()) - int(masks.sum())) <= 0.03 * int(masks.sum())


def test_cached_base_grid_equals_affine_grid():
    import torch.nn.functional as F

    from dataset_tools.augment import _base_grid

    theta = torch.tensor([[0.9, -0.2, 0.05], [0.3, 1.1, -0.1]])
    expected = F.affine_grid(theta[None], [1, 1, 24, 40], align_corners=False)
    torch.testing.assert_close((_base_grid(24, 40) @ theta.T).view(1, 24, 40, 2), expected)
