"""Training: checkpoints that rebuild the model, exact resume, early stop, time budget, progress log.

The tiny dataset writer and trained-run helper live in ``tests/model_factory.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from napari_ultramn import NON_STANDARD
from napari_ultramn.errors import InputError
from tests.model_factory import PLANES, TINY_MODEL, TINY_TRAIN, train_tiny, write_tiny_dataset


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
    for key in (
        "model_config",
        "model_state",
        "plane_labels",
        "epoch",
        "optimizer",
        "scheduler",
        "scaler",
        "rng",
        "metrics",
    ):
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

    rc = main(
        [
            "train",
            str(tiny_dataset),
            "--out",
            str(tmp_path / "r"),
            "--epochs",
            "1",
            "--window",
            "8",
            "--device",
            "cpu",
            "--model-kwargs",
            json.dumps(TINY_MODEL),
            "-q",
        ]
    )
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
    save_checkpoint(
        tmp_path / "w" / "last.pt",
        {
            **{k: v for k, v in ckpt.items() if k not in ("format", "format_version", "path")},
            "plane_class_weights": stored,
        },
    )
    with pytest.raises(InputError, match=r"was trained with plane_class_weights \[1.0, 2.0, 3.0, 4.0, 5.0\], not None"):
        train_tiny(tiny_dataset, tmp_path / "w", epochs=2, resume=True, plane_class_weights=None)
    s = train_tiny(tiny_dataset, tmp_path / "w", epochs=2, resume=True, max_steps=1)
    assert s["plane_class_weights"] == stored
    assert load_checkpoint(tmp_path / "w" / "last.pt")["plane_class_weights"] == stored
    # None trains unweighted
    s = train_tiny(tiny_dataset, tmp_path / "u", epochs=1, max_steps=1, plane_class_weights=None)
    assert s["plane_class_weights"] is None
    assert load_checkpoint(tmp_path / "u" / "last.pt")["plane_class_weights"] is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"plane_class_weights": "balanced"}, "plane_class_weights must be 'auto', None or one weight per plane label"),
        ({"plane_class_weights": [1.0, 0.0, 1.0, 1.0, 1.0]}, r"plane_class_weights\[1\] must be finite and > 0"),
        ({"loss_kwargs": {"plane_class_weights": [1.0] * 5}}, "give plane_class_weights to train_run itself"),
    ],
)
def test_bad_plane_class_weights(tiny_dataset, tmp_path, kwargs, message):
    with pytest.raises(InputError, match=message):
        train_tiny(tiny_dataset, tmp_path / "r", **kwargs)
    assert not (tmp_path / "r" / "last.pt").exists()


def test_batches_travel_as_uint8_and_become_float_on_the_device(tiny_dataset, tmp_path):
    import torch

    from napari_ultramn.model.train import Trainer

    kw = {k: v for k, v in TINY_TRAIN.items() if k != "log_every"}
    tr = Trainer(
        tiny_dataset,
        tmp_path / "r",
        resume=False,
        seed=0,
        loss_kwargs=None,
        patience=5,
        weight_decay=0.0,
        model="ultramn",
        **kw,
    )
    for loader in (tr.train_loader, tr.val_loader):
        raw = next(iter(loader))
        assert raw["frames"].dtype == torch.uint8 and raw["masks"].dtype == torch.uint8
        batch = tr.to_device(raw)
        assert batch["frames"].dtype == torch.float32 and batch["masks"].dtype == torch.float32
        assert 0.0 <= float(batch["frames"].min()) and float(batch["frames"].max()) <= 1.0
        torch.testing.assert_close(batch["frames"], raw["frames"].float() / 255.0)
    assert tr.validation_step()["val_plane_acc"] >= 0.0
