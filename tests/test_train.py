"""Training: checkpoints that rebuild the model, exact resume, early stop, time budget, progress log.

Also holds the tiny dataset writer and trained-run helper that test_evaluate / test_preannotate /
test_ddp / test_training_widget import (``from tests.test_train import ...``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from napari_ultramn import DEFAULT_PLANES, NON_STANDARD
from napari_ultramn.errors import InputError
from napari_ultramn.progress import run_to_end

PLANES = [*DEFAULT_PLANES, NON_STANDARD]
TINY_MODEL = {"base_channels": 4, "depth": 2}
TINY_TRAIN = {"epochs": 2, "batch_size": 4, "window": 8, "lr": 3e-3, "device": "cpu", "workers": 0,
              "model_kwargs": TINY_MODEL, "log_every": 1}


# -- tiny data -------------------------------------------------------------------------------
def tiny_clip(rng, plane: int, n_frames: int, size: int, non_standard_tail: int):
    """Frames, masks and per-frame plane codes of one synthetic clip (a ringed disk on speckle)."""
    rows, cols = np.mgrid[0:size, 0:size]
    r0, c0 = rng.uniform(0.3, 0.7, 2) * size
    frames = rng.gamma(2.0, 12.0 + 8 * plane, size=(n_frames, size, size))
    masks = np.zeros((n_frames, size, size), bool)
    planes = np.full(n_frames, plane, np.int16)
    for t in range(n_frames - non_standard_tail):
        d = np.hypot(rows - r0, cols - c0 - 0.3 * t)
        masks[t] = d <= size * 0.15
        frames[t] += 120.0 * ((d > size * 0.15) & (d <= size * 0.22)) - 10 * masks[t]
    planes[n_frames - non_standard_tail:] = PLANES.index(NON_STANDARD)
    return np.clip(frames, 0, 255).astype(np.uint8), masks, planes


def write_tiny_dataset(root: Path, *, n_clips=(4, 2, 2), n_frames: int = 12, size: int = 32, seed: int = 0) -> Path:
    """A dataset folder in the ``dataset_tools.build`` layout: manifest + train/validation/test.h5."""
    import h5py

    from napari_ultramn.io.hdf5clip import write_clip_group

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    qualities = ("ok", "poor")
    for split, n in zip(("train", "validation", "test"), n_clips):
        with h5py.File(root / f"{split}.h5", "w") as fh:
            fh.attrs.update({"format": "ultramn-dataset", "split": split, "vocabulary": json.dumps(PLANES)})
            for i in range(n):
                plane = i % len(DEFAULT_PLANES)
                frames, masks, planes = tiny_clip(rng, plane, n_frames, size, 2 if i % 2 else 0)
                cid = f"{split}{i:02d}"
                g = fh.require_group("clips").create_group(cid)
                write_clip_group(g, frames, {"clip_id": cid, "participant": f"P{split[:2]}{i // 2}",
                                             "side": "left", "plane": PLANES[plane], "spacing_mm": (0.1, 0.1)})
                g.create_dataset("masks", data=masks.astype(np.uint8))
                g.create_dataset("plane_labels", data=planes)
                g.create_dataset("provenance", data=np.zeros(n_frames, np.int8))
                g.create_dataset("annotated", data=np.ones(n_frames, bool))
                g.attrs.update({"clip_plane": PLANES[plane], "clip_plane_code": plane, "quality": qualities[i % 2]})
    (root / "manifest.json").write_text(json.dumps({"format": "ultramn-dataset-manifest", "vocabulary": PLANES}))
    return root


def train_tiny(dataset: Path, run_dir: Path, **kw) -> dict:
    from napari_ultramn.model.train import train_run

    return run_to_end(train_run(dataset, run_dir, **{**TINY_TRAIN, **kw}))


_SHARED: dict = {}


def shared_run(tmp_path_factory) -> tuple[Path, Path]:
    """``(dataset, run)``: one tiny dataset and 2-epoch run per test session, shared (as
    ``tests.test_train``) by the evaluation, pre-annotation and widget tests to save CPU time."""
    if "run" not in _SHARED:
        root = tmp_path_factory.mktemp("shared")
        ds = write_tiny_dataset(root / "ds")
        train_tiny(ds, root / "runs" / "tiny", epochs=2)
        _SHARED["run"] = (ds, root / "runs" / "tiny")
    return _SHARED["run"]


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("data") / "ds")


# -- tests ---------------------------------------------------------------------------------
def test_training_writes_checkpoints_and_followable_log(tiny_dataset, tmp_path):
    from napari_ultramn.model.runlog import list_runs, read_progress

    summary = train_tiny(tiny_dataset, tmp_path / "runs" / "a")
    run = tmp_path / "runs" / "a"
    assert (run / "best.pt").is_file() and (run / "last.pt").is_file() and (run / "run.json").is_file()
    assert summary["epochs_done"] == 2 and summary["stop_reason"] == "epochs done"
    events = [r["event"] for r in read_progress(run)]
    assert events[0] == "start" and events[-1] == "end"
    assert events.count("epoch") == 2 and "step" in events
    epoch = next(r for r in read_progress(run) if r["event"] == "epoch")
    assert {"epoch", "step", "losses", "metrics", "elapsed_s"} <= set(epoch)
    assert {"val_dice", "val_plane_acc", "score"} <= set(epoch["metrics"])
    [row] = list_runs(tmp_path / "runs")
    assert row["run"] == "a" and row["epochs"] == 2 and row["model"] == "ultramn"


def test_checkpoint_alone_rebuilds_the_model(tiny_dataset, tmp_path):
    import torch

    from napari_ultramn.model.checkpoint import load_checkpoint, model_from_checkpoint

    train_tiny(tiny_dataset, tmp_path / "r", epochs=1)
    ckpt = load_checkpoint(tmp_path / "r" / "last.pt")
    for key in ("model_config", "model_state", "plane_labels", "epoch", "optimizer", "scheduler", "scaler", "rng", "metrics"):
        assert key in ckpt
    assert ckpt["plane_labels"] == PLANES and ckpt["input_size"] == [32, 32]
    model, _ = model_from_checkpoint(tmp_path / "r")
    x = torch.rand(1, 1, 8, 32, 32)
    out = model(x)
    assert out["seg"].shape == (1, 1, 8, 32, 32) and out["plane_frame"].shape == (1, 8, len(PLANES))


def test_cancel_then_resume_matches_an_unbroken_run(tiny_dataset, tmp_path):
    import torch

    from napari_ultramn.model.checkpoint import load_checkpoint
    from napari_ultramn.model.runlog import read_progress
    from napari_ultramn.model.train import train_run

    train_tiny(tiny_dataset, tmp_path / "full", epochs=2)
    gen = train_run(tiny_dataset, tmp_path / "cut", **{**TINY_TRAIN, "epochs": 2})
    for p in gen:  # Cancel (close the generator) right after the first epoch's checkpoint
        if "epoch" in p.metrics:
            gen.close()
            break
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] == 0
    summary = train_tiny(tiny_dataset, tmp_path / "cut", epochs=2, resume=True)
    assert summary["epochs_done"] == 2
    a = load_checkpoint(tmp_path / "full" / "last.pt")["model_state"]
    b = load_checkpoint(tmp_path / "cut" / "last.pt")["model_state"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=f"{k} differs after resume")
    assert [r["event"] for r in read_progress(tmp_path / "cut")].count("start") == 2


def test_refuses_to_clobber_and_to_resume_nothing(tiny_dataset, tmp_path):
    train_tiny(tiny_dataset, tmp_path / "r", epochs=1)
    with pytest.raises(InputError, match="already holds a run; pass --resume"):
        train_tiny(tiny_dataset, tmp_path / "r", epochs=1)
    with pytest.raises(InputError, match="has nothing to resume"):
        train_tiny(tiny_dataset, tmp_path / "empty", epochs=1, resume=True)


def test_bad_dataset_and_model_names(tmp_path):
    with pytest.raises(InputError, match="is not an UltraMN dataset"):
        train_tiny(tmp_path, tmp_path / "r")
    with pytest.raises(InputError, match="no such dataset folder"):
        train_tiny(tmp_path / "nope", tmp_path / "r")
    ds = write_tiny_dataset(tmp_path / "ds", n_clips=(1, 1, 1))
    with pytest.raises(InputError, match="unknown model 'resnet'"):
        train_tiny(ds, tmp_path / "r", model="resnet")
    with pytest.raises(InputError, match="yields no training windows of 64 frames"):
        train_tiny(ds, tmp_path / "r", window=64)
    with pytest.raises(InputError, match=r"frames of 32x32 px are not divisible by 2\*\*depth = 64"):
        train_tiny(ds, tmp_path / "r", model_kwargs={"base_channels": 4, "depth": 6})


def test_time_budget_and_early_stop(tiny_dataset, tmp_path):
    s = train_tiny(tiny_dataset, tmp_path / "t", epochs=5, max_minutes=0.0)
    assert s["steps"] == 1 and s["stop_reason"].startswith("time budget")
    s = train_tiny(tiny_dataset, tmp_path / "e", epochs=6, lr=0.0, patience=1)
    assert s["epochs_done"] == 2 and s["stop_reason"].startswith("early stop")


def test_progress_follower_waits_for_whole_lines(tmp_path):
    from napari_ultramn.model.runlog import ProgressFollower, RunLog

    log = RunLog(tmp_path)
    log.write("start", epoch=0, value=float("nan"))
    f = ProgressFollower(tmp_path / "progress.jsonl")
    assert [r["event"] for r in f.poll()] == ["start"]
    assert f.records[0]["value"] is None  # NaN is not JSON
    with open(tmp_path / "progress.jsonl", "a") as fh:
        fh.write('{"event": "step", "st')
    assert f.poll() == []
    with open(tmp_path / "progress.jsonl", "a") as fh:
        fh.write('ep": 3}\n')
    assert f.poll() == [{"event": "step", "step": 3}]
    log.close()


def test_cli_train(tiny_dataset, tmp_path, capsys):
    from napari_ultramn.cli import main

    rc = main(["train", str(tiny_dataset), "--out", str(tmp_path / "r"), "--epochs", "1", "--window", "8",
               "--device", "cpu", "--model-kwargs", json.dumps(TINY_MODEL), "-q"])
    assert rc == 0
    assert "1 epochs" in capsys.readouterr().out
    assert main(["train", str(tmp_path / "nope"), "--out", str(tmp_path / "x"), "-q"]) == 2
    assert "no such dataset folder" in capsys.readouterr().err


def test_step_limit_and_schedule_shape():
    from napari_ultramn.model.train import warmup_cosine

    assert warmup_cosine(0.0) == pytest.approx(0.01) and warmup_cosine(0.05) == pytest.approx(1.0)
    assert warmup_cosine(1.0) == pytest.approx(0.02) and warmup_cosine(0.5) < warmup_cosine(0.2)


def test_max_steps_stops_this_call(tiny_dataset, tmp_path):
    s = train_tiny(tiny_dataset, tmp_path / "s", epochs=5, max_steps=3)
    assert s["steps"] == 3 and s["stop_reason"] == "step limit of 3 reached" and s["epochs_done"] == 2


def test_plane_class_weights_come_from_the_training_split_and_survive_resume(tiny_dataset, tmp_path):
    from napari_ultramn.model.checkpoint import load_checkpoint, save_checkpoint
    from napari_ultramn.model.data import plane_label_counts
    from napari_ultramn.model.losses import inverse_frequency_weights

    # train split: clips of planes 0..3, the odd ones ending in 2 non-standard frames
    counts = plane_label_counts(tiny_dataset / "train.h5", len(PLANES))
    assert counts.tolist() == [12, 10, 12, 10, 4]
    expected = inverse_frequency_weights(counts.tolist())
    assert max(expected) == expected[PLANES.index(NON_STANDARD)]
    s = train_tiny(tiny_dataset, tmp_path / "w", epochs=1, max_steps=1)
    assert s["plane_class_weights"] == pytest.approx(expected)
    ckpt = load_checkpoint(tmp_path / "w" / "last.pt")
    assert ckpt["plane_class_weights"] == pytest.approx(expected)
    run_json = json.loads((tmp_path / "w" / "run.json").read_text())
    assert run_json["args"]["plane_class_weights"] == pytest.approx(expected)
    # a resume uses the checkpoint's weights, not a recomputation (the dataset may have changed)
    stored = [1.0, 2.0, 3.0, 4.0, 5.0]
    save_checkpoint(tmp_path / "w" / "last.pt", {**{k: v for k, v in ckpt.items() if k not in ("format", "format_version", "path")},
                                                 "plane_class_weights": stored})
    with pytest.raises(InputError, match=r"was trained with plane_class_weights \[1.0, 2.0, 3.0, 4.0, 5.0\], not None"):
        train_tiny(tiny_dataset, tmp_path / "w", epochs=2, resume=True, plane_class_weights=None)
    s = train_tiny(tiny_dataset, tmp_path / "w", epochs=2, resume=True, max_steps=1)
    assert s["plane_class_weights"] == stored
    assert load_checkpoint(tmp_path / "w" / "last.pt")["plane_class_weights"] == stored
    # None trains unweighted
    s = train_tiny(tiny_dataset, tmp_path / "u", epochs=1, max_steps=1, plane_class_weights=None)
    assert s["plane_class_weights"] is None
    assert load_checkpoint(tmp_path / "u" / "last.pt")["plane_class_weights"] is None


@pytest.mark.parametrize("kwargs, message", [
    ({"plane_class_weights": "balanced"}, "plane_class_weights must be 'auto', None or one weight per plane label"),
    ({"plane_class_weights": [1.0, 0.0, 1.0, 1.0, 1.0]}, r"plane_class_weights\[1\] must be finite and > 0"),
    ({"loss_kwargs": {"plane_class_weights": [1.0] * 5}}, "give plane_class_weights to train_run itself"),
])
def test_bad_plane_class_weights(tiny_dataset, tmp_path, kwargs, message):
    with pytest.raises(InputError, match=message):
        train_tiny(tiny_dataset, tmp_path / "r", **kwargs)
    assert not (tmp_path / "r" / "last.pt").exists()


def test_batches_travel_as_uint8_and_become_float_on_the_device(tiny_dataset, tmp_path):
    import torch

    from napari_ultramn.model.train import Trainer

    kw = {k: v for k, v in TINY_TRAIN.items() if k != "log_every"}
    tr = Trainer(tiny_dataset, tmp_path / "r", resume=False, seed=0, loss_kwargs=None, patience=5,
                 weight_decay=0.0, model="ultramn", **kw)
    for loader in (tr.train_loader, tr.val_loader):
        raw = next(iter(loader))
        assert raw["frames"].dtype == torch.uint8 and raw["masks"].dtype == torch.uint8
        batch = tr.to_device(raw)
        assert batch["frames"].dtype == torch.float32 and batch["masks"].dtype == torch.float32
        assert 0.0 <= float(batch["frames"].min()) and float(batch["frames"].max()) <= 1.0
        torch.testing.assert_close(batch["frames"], raw["frames"].float() / 255.0)
    assert tr.validation_step()["val_plane_acc"] >= 0.0
