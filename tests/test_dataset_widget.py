"""The Dataset dock widget: build from a project with progress, show counts, open a clip."""

import numpy as np
import pytest

from tests.project_factory import make_project

pytestmark = pytest.mark.gui


@pytest.fixture
def widget(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-ultramn", "Dataset")
    return widget


def test_build_and_open_clip(widget, tmp_path):
    project = make_project(tmp_path / "proj", n_participants=4, raters=("r1", "r2"), seed=2)
    widget.project_edit.setText(str(project.root))
    widget.project_edit.editingFinished.emit()
    assert [widget.rater_combo.itemText(i) for i in range(widget.rater_combo.count())] == ["r1", "r2"]
    widget.out_edit.setText(str(tmp_path / "ds"))
    widget.resize_check.setChecked(True)
    widget.height_spin.setValue(16)
    widget.width_spin.setValue(20)
    widget.min_frames_spin.setValue(8)
    widget.build_button.click()  # ULTRAMN_SYNC_WORKERS=1: runs to the end here
    assert widget.status.text().startswith("Built:"), widget.status.text()
    assert widget.progress.value() == widget.progress.maximum()
    assert (tmp_path / "ds" / "manifest.json").is_file()
    assert widget.counts_table.rowCount() == len(widget.manifest["counts"]) > 0
    assert widget.build_button.isEnabled() and not widget.cancel_button.isEnabled()

    assert widget.clip_combo.count() == len(widget.manifest["clips"])
    widget.clip_combo.setCurrentIndex(0)
    widget.open_button.click()
    image, labels = widget.viewer.layers[-2], widget.viewer.layers[-1]
    assert image.data.shape == labels.data.shape == (12, 16, 20)
    assert labels.data.dtype == np.uint8 and labels.data.max() == 1
    np.testing.assert_allclose(image.scale[1:], [0.2, 0.2])


def test_rater_mode_needs_a_rater_and_errors_are_shown(widget, tmp_path):
    widget.project_edit.setText(str(tmp_path / "not_a_project"))
    widget.out_edit.setText(str(tmp_path / "ds"))
    widget.labels_combo.setCurrentIndex(2)
    assert widget.rater_combo.isEnabled()
    widget.build_button.click()
    assert widget.status.text() == "Choose the rater whose labels to use."
    widget.rater_combo.setCurrentText("r1")
    widget.build_button.click()
    assert "is not an UltraMN project" in widget.status.text()
    assert not (tmp_path / "ds").exists()


def test_build_in_a_thread_worker(widget, tmp_path, qtbot, monkeypatch):
    monkeypatch.setenv("ULTRAMN_SYNC_WORKERS", "0")
    project = make_project(tmp_path / "proj", n_participants=3, raters=("r1",), seed=5)
    widget.project_edit.setText(str(project.root))
    widget.out_edit.setText(str(tmp_path / "ds"))
    widget.labels_combo.setCurrentIndex(2)
    widget.rater_combo.setCurrentText("r1")
    widget.min_frames_spin.setValue(8)
    widget.build_button.click()
    assert widget.worker is not None and not widget.build_button.isEnabled()
    qtbot.waitUntil(lambda: widget.build_button.isEnabled(), timeout=60000)
    assert widget.status.text().startswith("Built:"), widget.status.text()
    assert widget.manifest["label_source"]["rater"] == "r1"
    assert (tmp_path / "ds" / "manifest.json").is_file()
