"""The training loader: uint8 windows read and decompressed only, bounded open files, worker safety."""

import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from dataset_tools.build import build_dataset
from napari_ultramn.errors import InputError
from napari_ultramn.model.augment import Augment, epoch_generator
from napari_ultramn.model.loader import (
    ClipWindowDataset,
    OpenFiles,
    batch_to_float,
    split_datasets,
    window_starts,
)
from napari_ultramn.progress import run_to_end
from tests.project_factory import make_project


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tds")
    project = make_project(root / "proj", n_participants=4, n_frames=20, frame_shape=(32, 48), raters=("r1",), seed=3)
    run_to_end(build_dataset(project, root / "ds", rater="r1", min_frames=8, ratios=(0.5, 0.25, 0.25)))
    return root / "ds"


@pytest.mark.parametrize(
    "n, window, stride, expected",
    [
        (20, 8, 8, [0, 8, 12]),
        (16, 8, 8, [0, 8]),
        (20, 8, 4, [0, 4, 8, 12]),
        (7, 8, 8, []),
        (8, 8, 3, [0]),
    ],
)
def test_window_starts(n, window, stride, expected):
    assert window_starts(n, window, stride) == expected


def test_items_are_uint8_as_stored(dataset_dir):
    ds = ClipWindowDataset(dataset_dir / "train.h5", window=8)
    assert len(ds) == 3 * len(ds.clips) and ds.split == "train"
    assert ds.vocabulary[-1] == "non_standard"
    item = ds[1]
    assert item["frames"].shape == item["masks"].shape == (1, 8, 32, 48)
    assert item["frames"].dtype == item["masks"].dtype == torch.uint8
    assert set(item["masks"].unique().tolist()) <= {0, 1}
    assert item["plane"].shape == (8,) and item["plane"].dtype == torch.int64
    assert item["annotated"].dtype == torch.bool and item["annotated"].all()
    assert item["clip_plane"].dtype == torch.int64 and item["clip_plane"].ndim == 0
    assert item["start"] == 8 and isinstance(item["clip_id"], str)
    assert ds.windows[1] == (item["clip_id"], 8)
    raw = ds.read_window(item["clip_id"], 8)
    np.testing.assert_array_equal(item["frames"][0].numpy(), raw["frames"])
    assert ds[-1]["start"] == 12
    with pytest.raises(IndexError, match="out of range"):
        ds[len(ds)]


def test_dataloader_with_workers_matches_single_process(dataset_dir):
    ds = ClipWindowDataset(dataset_dir / "train.h5", window=8)
    ds[0]  # open a handle in the parent: workers must not reuse it
    single = [ds[i] for i in range(len(ds))]
    loader = DataLoader(ds, batch_size=2, num_workers=2, shuffle=False)
    batches = list(loader)
    assert batches[0]["frames"].dtype == torch.uint8
    frames = torch.cat([b["frames"] for b in batches])
    torch.testing.assert_close(frames, torch.stack([s["frames"] for s in single]))
    assert [c for b in batches for c in b["clip_id"]] == [s["clip_id"] for s in single]


def test_split_over_several_files_keeps_at_most_the_limit_open(dataset_dir):
    paths = [dataset_dir / f"{s}.h5" for s in ("train", "validation", "test")]
    ds = ClipWindowDataset(paths, window=8, max_open_files=2)
    parts = [ClipWindowDataset(p, window=8) for p in paths]
    assert len(ds) == sum(len(p) for p in parts) and ds.split == "train"
    expected = [p[i]["frames"] for p in parts for i in range(len(p))]
    for i in range(len(ds)):
        torch.testing.assert_close(ds[i]["frames"], expected[i])
        assert len(ds.files) <= 2
    ds.close()
    assert len(ds.files) == 0
    with pytest.raises(InputError, match="repeats clip"):
        ClipWindowDataset([paths[0], paths[0]], window=8)


def test_pickle_drops_the_open_files(dataset_dir):
    ds = ClipWindowDataset(dataset_dir / "train.h5", window=8)
    ds[0]
    assert len(ds.files) == 1
    clone = pickle.loads(pickle.dumps(ds))
    assert len(clone.files) == 0
    torch.testing.assert_close(clone[0]["frames"], ds[0]["frames"])
    ds.close()


def test_batch_to_float_with_and_without_augmentation(dataset_dir):
    ds = ClipWindowDataset(dataset_dir / "train.h5", window=8)
    batch = next(iter(DataLoader(ds, batch_size=3)))
    plain = batch_to_float(batch)
    assert plain["frames"].dtype == plain["masks"].dtype == torch.float32
    torch.testing.assert_close(plain["frames"], batch["frames"].float() / 255)
    a = batch_to_float(batch, "cpu", Augment(), epoch_generator(1, 0))
    b = batch_to_float(batch, "cpu", Augment(), epoch_generator(1, 0))
    torch.testing.assert_close(a["frames"], b["frames"])
    assert not torch.equal(a["frames"], plain["frames"])
    assert a["masks"].dtype == torch.float32 and set(a["masks"].unique().tolist()) <= {0.0, 1.0}
    assert batch["frames"].dtype == torch.uint8  # the caller's batch is left as it was
    with pytest.raises(ValueError, match="augment needs a generator"):
        batch_to_float(batch, None, Augment())


def test_batch_to_float_workspace_reuses_its_tensors_and_changes_nothing(dataset_dir):
    ds = ClipWindowDataset(dataset_dir / "train.h5", window=8)
    loader = iter(DataLoader(ds, batch_size=2))
    first, second = next(loader), next(loader)
    workspace: dict = {}
    a = batch_to_float(first, "cpu", Augment(), epoch_generator(1, 0), workspace=workspace)
    expected = batch_to_float(first, "cpu", Augment(), epoch_generator(1, 0))
    torch.testing.assert_close(a["frames"], expected["frames"])
    torch.testing.assert_close(a["masks"], expected["masks"])
    pointers = a["frames"].data_ptr(), a["masks"].data_ptr()
    b = batch_to_float(second, "cpu", Augment(), epoch_generator(1, 1), workspace=workspace)
    assert (b["frames"].data_ptr(), b["masks"].data_ptr()) == pointers  # the same memory, refilled
    smaller = {k: v[:1] if isinstance(v, torch.Tensor) else v for k, v in second.items()}
    c = batch_to_float(smaller, "cpu", Augment(), epoch_generator(1, 2), workspace=workspace)
    assert c["frames"].shape[0] == 1 and c["frames"].data_ptr() != pointers[0]  # a new shape, new tensors


def test_split_datasets(dataset_dir):
    sets = split_datasets(dataset_dir, window=8)
    assert set(sets) == {"train", "validation", "test"}
    assert sets["test"].split == "test"


def test_bad_inputs(tmp_path, dataset_dir):
    with pytest.raises(InputError, match="nope.h5: is not a readable HDF5 file"):
        ClipWindowDataset(tmp_path / "nope.h5")
    with pytest.raises(ValueError, match="window and stride must be >= 1"):
        ClipWindowDataset(dataset_dir / "train.h5", window=0)
    with pytest.raises(InputError, match=r"has no clip\(s\) \['zzz'\]"):
        ClipWindowDataset(dataset_dir / "train.h5", clip_ids=["zzz"])
    with pytest.raises(ValueError, match="need limit >= 1"):
        OpenFiles(0)
