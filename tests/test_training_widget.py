"""Training widget: follows a progress log, starts/cancels a process, lists runs, pre-annotates."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.gui


@pytest.fixture
def widget(make_napari_viewer):
    viewer = make_napari_viewer()
    _, w = viewer.window.add_plugin_dock_widget("napari-ultramn", "Training")
    yield w
    if w.process is not None and w.process.poll() is None:
        w.process.kill()
        w.process.wait()


def _log(path, records):
    with open(path, "a") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")


def test_follows_progress_log_with_curves(widget, tmp_path):
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    _log(
        run / "progress.jsonl",
        [
            {"event": "start", "epoch": 0, "step": 0, "total_steps": 10},
            {"event": "step", "epoch": 0, "step": 5, "losses": {"loss": 1.2}},
            {
                "event": "epoch",
                "epoch": 0,
                "step": 5,
                "metrics": {"val_loss": 1.0, "val_dice": 0.5, "val_plane_acc": 0.7, "score": 0.6},
            },
        ],
    )
    widget.follow(run)
    assert widget.progress_bar.maximum() == 10 and widget.progress_bar.value() == 5
    assert "val Dice 0.500" in widget.status_label.text()
    assert len(widget.loss_ax.lines) == 2 and len(widget.metric_ax.lines) == 2
    _log(run / "progress.jsonl", [{"event": "end", "reason": "epochs done", "step": 10}])
    widget.poll()
    assert widget.status_label.text() == "Finished: epochs done" and not widget.timer.isActive()
    assert widget.runs_table.rowCount() == 1 and widget.runs_table.item(0, 0).text() == "r1"


def test_start_then_cancel_a_training_process(widget, tmp_path, qtbot, monkeypatch):
    run = tmp_path / "run"
    script = (
        "import json,sys,time;f=open(sys.argv[1]+'/progress.jsonl','a');"
        "f.write(json.dumps({'event':'start','step':0,'total_steps':4})+'\\n');f.flush();time.sleep(60)"
    )
    monkeypatch.setattr(widget, "command", lambda resume: [sys.executable, "-c", script, str(run)])
    widget.dataset_edit.setText(str(tmp_path / "ds"))
    widget.run_edit.setText(str(run))
    widget.start_button.click()
    assert widget.process is not None and not widget.start_button.isEnabled()
    qtbot.waitUntil(lambda: bool(widget.follower.poll() or widget.follower.records), timeout=20_000)
    widget.cancel_button.click()
    assert widget.process.poll() is not None
    assert widget.start_button.isEnabled() and widget.resume_button.isEnabled()
    assert "Resume" in widget.status_label.text()


def test_runs_table_and_preannotate_open_clip(widget, tiny_run):
    _, run = tiny_run
    widget.runs_edit.setText(str(run.parent))
    widget.refresh_button.click()
    assert widget.runs_table.rowCount() == 1
    widget.runs_table.selectRow(0)
    assert widget.preannotate_run_edit.text().endswith("tiny") and widget.run_edit.text().endswith("tiny")
    cmd = widget.command(resume=True)  # resuming a listed run finds its dataset in run.json
    assert cmd[cmd.index("train") + 1].endswith("ds") and cmd[-1] == "--resume"
    clip = np.random.default_rng(0).integers(0, 255, (10, 32, 40), dtype=np.uint8)
    widget.viewer.add_image(clip, name="clip")
    widget.preannotate_button.click()  # ULTRAMN_SYNC_WORKERS=1: runs to the end here
    layer = widget.viewer.layers["clip proposal"]
    assert layer.data.shape == (10, 32, 40) and layer.metadata["provenance"] == "model"
    assert len(layer.metadata["confidence"]) == 10 and widget.preannotate_button.isEnabled()
    assert "Accept or edit" in widget.status_label.text()


def test_a_failing_process_shows_its_error(widget, tmp_path, qtbot, monkeypatch):
    script = "import sys; print('ultramn train: error: something is wrong'); sys.exit(2)"
    monkeypatch.setattr(widget, "command", lambda resume: [sys.executable, "-c", script])
    widget.dataset_edit.setText(str(tmp_path / "ds"))
    widget.run_edit.setText(str(tmp_path / "run"))
    widget.start_button.click()
    widget.process.wait(timeout=30)
    widget.poll()
    assert "exit 2" in widget.status_label.text() and "something is wrong" in widget.status_label.text()
    assert widget.start_button.isEnabled()


def test_labelling_loop_round_from_the_dock(widget, tmp_path, qtbot):
    """Click 'Train on labelled clips, then pre-annotate the rest': a real round in its own process."""
    from qtpy.QtCore import Qt

    from tests.model_factory import TINY_MODEL
    from tests.project_factory import make_project

    panel = widget.loop_panel
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    assert "Choose the project and a loop folder first" in panel.status_label.text() and panel.process is None
    project = make_project(
        tmp_path / "proj", n_participants=3, clips_per_participant=1, raters=("r1",), unannotated=("p2_c0",)
    )
    loop = tmp_path / "loop"
    qtbot.keyClicks(panel.project_edit, str(project.root))
    qtbot.keyClicks(panel.loop_edit, str(loop))
    widget.epochs_spin.setValue(1)
    widget.window_spin.setValue(8)
    widget.batch_spin.setValue(2)
    widget.device_combo.setCurrentText("cpu")
    tiny = ["--model-kwargs", json.dumps(TINY_MODEL)]
    real = panel.command
    panel.command = lambda: real() + tiny  # the dock's settings, a network small enough for a test
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    assert panel.running and not panel.start_button.isEnabled() and widget.timer.isActive()
    qtbot.waitUntil(lambda: not panel.running and panel.process is None, timeout=180_000)
    assert "round 1 done" in panel.status_label.text(), panel.status_label.text()
    assert panel.start_button.isEnabled() and project.annotations.exists("p2_c0", "model")
    assert widget.preannotate_run_edit.text() == str(loop / "round-1" / "model")  # followed its curves
    assert widget.follower is not None and any(r.get("event") == "end" for r in widget.follower.records)


def test_an_unwritable_run_or_loop_folder_is_one_message(widget, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    widget.dataset_edit.setText(str(tmp_path / "ds"))
    widget.run_edit.setText(str(blocker / "run"))
    widget.start_button.click()
    assert widget.process is None and widget.status_label.text().startswith(
        f"Cannot write the run folder {blocker / 'run'}"
    )
    panel = widget.loop_panel
    panel.project_edit.setText(str(tmp_path / "proj"))
    panel.loop_edit.setText(str(blocker / "loop"))
    panel.start_button.click()
    assert panel.process is None and panel.status_label.text().startswith(
        f"Cannot write the loop folder {blocker / 'loop'}"
    )
    assert panel.start_button.isEnabled() and widget.start_button.isEnabled()
