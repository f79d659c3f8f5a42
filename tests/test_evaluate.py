"""Evaluation: reference metric values, tables per clip/participant/quality, baselines side by side."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_ultramn.errors import InputError
from napari_ultramn.progress import run_to_end
from tests.model_factory import PLANES, write_tiny_dataset


@pytest.fixture(scope="module")
def trained(tiny_run):
    return tiny_run


def square(size=20, top=5, left=5, side=8):
    m = np.zeros((size, size), bool)
    m[top : top + side, left : left + side] = True
    return m


@pytest.mark.parametrize(
    ("pred", "truth", "dice", "iou", "hd95_px"),
    [
        (square(), square(), 1.0, 1.0, 0.0),
        (np.zeros((20, 20), bool), np.zeros((20, 20), bool), 1.0, 1.0, 0.0),  # "no nerve", correctly
        (square(), np.zeros((20, 20), bool), 0.0, 0.0, np.nan),
        (square(left=5), square(left=7), 2 * 48 / 128, 48 / 80, 2.0),  # 8x8 squares, 2 px apart
    ],
)
def test_frame_metric_reference_values(pred, truth, dice, iou, hd95_px):
    from napari_ultramn.model.evaluate import frame_metrics

    m = frame_metrics(pred[None], truth[None], spacing_mm=(0.5, 0.25))
    assert m["dice"][0] == pytest.approx(dice)
    assert m["iou"][0] == pytest.approx(iou)
    np.testing.assert_allclose(m["hd95_px"][0], hd95_px)
    assert m["csa_error_mm2"][0] == pytest.approx(abs(pred.sum() - truth.sum()) * 0.125)
    assert np.isnan(frame_metrics(pred[None], truth[None], spacing_mm=None)["hd95_mm"][0])


def test_hd95_uses_the_spacing():
    from napari_ultramn.model.evaluate import frame_metrics

    m = frame_metrics(square(left=5)[None], square(left=7)[None], spacing_mm=(0.5, 0.25))
    assert m["hd95_mm"][0] == pytest.approx(0.5)  # 2 columns of 0.25 mm


def test_plane_metrics_confusion_and_macro_f1():
    from napari_ultramn.model.evaluate import plane_metrics

    truth = np.array([0, 0, 1, 1, -1])
    pred = np.array([0, 1, 1, 1, 2])
    summary, cm = plane_metrics(truth, pred, ["a", "b", "c"])
    assert summary["plane_accuracy"] == pytest.approx(0.75) and summary["n_plane_frames"] == 4
    assert summary["plane_macro_f1"] == pytest.approx(np.mean([2 / 3, 0.8]))
    assert cm["pred:b"].tolist() == [1, 2, 0] and cm["truth"].tolist() == ["a", "b", "c"]


def test_evaluate_run_writes_tables_and_report(trained, tmp_path):
    from napari_ultramn.model.evaluate import evaluate_run
    from napari_ultramn.model.runlog import run_summary

    ds, run = trained
    result = run_to_end(evaluate_run(run, ds, "test", device="cpu"))
    s = result.summary["ultramn"]
    for key in ("plane_accuracy", "plane_macro_f1", "dice", "iou", "hd95_mm", "csa_error_mm2", "clip_plane_accuracy"):
        assert key in s
    assert 0.0 <= s["dice"] <= 1.0 and s["n_clips"] == 2 and s["n_frames"] == 24
    out = run / "eval" / "test"
    for name in ("frames", "clips", "participants", "quality", "confusion"):
        assert (out / f"ultramn_{name}.csv").is_file()
    assert len(result.tables["ultramn/quality"]) == 2  # ok + poor
    frames = result.tables["ultramn/frames"]
    one_empty = frames["empty"] == "one"  # napari_ultramn.metrics' convention: counted, not averaged
    assert frames.loc[one_empty, "hd95_px"].isna().all() and frames.loc[~one_empty, "hd95_px"].notna().all()
    assert s["n_one_empty_frames"] == int(one_empty.sum()) == result.tables["ultramn/clips"]["n_one_empty"].sum()
    assert json.loads((out / "metrics.json").read_text())["primary"] == "ultramn"
    assert "Model evaluation (test)" in (out / "report.html").read_text()
    assert run_summary(run)["test_dice"] == pytest.approx(s["dice"])


def test_baselines_are_trained_alike_and_reported_side_by_side(trained, tmp_path):
    from napari_ultramn.model.checkpoint import load_checkpoint
    from napari_ultramn.model.evaluate import evaluate_run

    ds, run = trained
    result = run_to_end(evaluate_run(run, ds, "validation", baselines=True, out_dir=tmp_path / "ev", device="cpu"))
    assert list(result.summary) == ["ultramn", "unet2d", "ultramn_notemporal"]
    for name in ("unet2d", "ultramn_notemporal"):
        args = load_checkpoint(run / "baselines" / name)["args"]
        assert args["epochs"] == 2 and args["window"] == 8 and args["model"] == name
    assert "unet2d" in (tmp_path / "ev" / "report.html").read_text()


def test_vocabulary_mismatch_is_reported(trained, tmp_path):
    from napari_ultramn.model.evaluate import evaluate_run

    ds, run = trained
    other = write_tiny_dataset(tmp_path / "other", n_clips=(1, 1, 1))
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["vocabulary"] = PLANES[:2] + ["non_standard"]
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="differs from the model's"):
        run_to_end(evaluate_run(run, other, "test", device="cpu"))


def test_cli_evaluate(trained, tmp_path, capsys):
    from napari_ultramn.cli import main

    ds, run = trained
    assert (
        main(["evaluate", str(run), str(ds), "--split", "test", "--out", str(tmp_path / "o"), "--device", "cpu", "-q"])
        == 0
    )
    out = capsys.readouterr().out
    assert "plane accuracy (frames)" in out and "ultramn" in out and "best epoch" in out
    assert main(["evaluate", str(tmp_path / "none"), str(ds), "-q"]) == 2
    assert "no such run folder or checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_cli_export_model_agrees_with_eager(trained, tmp_path, capsys, fmt):
    from napari_ultramn.cli import main

    _, run = trained
    out = tmp_path / f"model.{'pt' if fmt == 'torchscript' else 'onnx'}"
    assert main(["export-model", str(run), "--format", fmt, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert out.is_file() and "max abs diff" in text and "plane_clip" in text


def test_cli_export_onnx_stream_runs_frame_by_frame_like_the_stream(trained, tmp_path, capsys):
    import numpy as np
    import onnxruntime as ort

    from napari_ultramn.cli import main

    _, run = trained
    out = tmp_path / "stream.onnx"
    assert main(["export-model", str(run), "--format", "onnx-stream", "--out", str(out)]) == 0
    assert "matches StreamingUltraMN frame by frame" in capsys.readouterr().out
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    feeds = {
        i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32) for i in session.get_inputs()
    }
    names = [o.name for o in session.get_outputs()]
    result = dict(zip(names, session.run(None, feeds)))
    mask = result["mask_prob"]
    assert mask.ndim == 2 and np.all((mask >= 0) & (mask <= 1))
