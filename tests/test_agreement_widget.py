"""Agreement widget: compute through the manifest-opened dock widget, open the worst frame."""

import pytest

from dataset_tools.agreement.synthetic import make_synthetic_project

pytestmark = pytest.mark.gui


@pytest.fixture
def project(tmp_path):
    return make_synthetic_project(tmp_path, n_participants=2, clips_per_participant=1, n_frames=6)[0]


def test_compute_and_open_worst_frame(make_napari_viewer, project, tmp_path):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-ultramn", "Agreement")
    widget.project_edit.setText(str(project.root))
    widget.out_edit.setText(str(tmp_path / "out"))
    widget.bootstrap_spin.setValue(10)
    widget.compute_button.click()  # ULTRAMN_SYNC_WORKERS=1: runs to the end here
    assert widget.error is None, widget.error
    assert widget.result is not None and (tmp_path / "out" / "report.html").is_file()
    assert widget.summary_table.rowCount() > 10
    assert widget.worst_table.rowCount() > 0
    widget.worst_table.selectRow(0)
    widget.open_button.click()
    worst = widget.result.worst_frames(50)
    clip_id, frame = worst.loc[0, "clip_id"], int(worst.loc[0, "frame"])
    names = [layer.name for layer in viewer.layers]
    assert names == [clip_id, f"{clip_id} r1", f"{clip_id} r2", f"{clip_id} r3"]
    assert viewer.dims.current_step[0] == frame
    assert widget.worst_table.item(0, 1).text() == str(frame + 1)  # frames on screen are 1-based
    assert f"{clip_id}, frame {frame + 1} / " in widget.status.text()
    widget.open_worst(0)  # reopening replaces, never duplicates
    assert len(viewer.layers) == 4


def test_bad_project_shows_message(make_napari_viewer, tmp_path):
    from napari_ultramn._widgets.agreement import AgreementWidget

    widget = AgreementWidget(make_napari_viewer())
    widget.project_edit.setText(str(tmp_path))
    widget.compute_button.click()
    assert "is not an UltraMN project" in widget.status.text()


def test_one_rater_shows_message(make_napari_viewer, tmp_path):
    from napari_ultramn._widgets.agreement import AgreementWidget

    project, _ = make_synthetic_project(tmp_path, n_participants=1, clips_per_participant=1, n_frames=4, raters=("r1",))
    widget = AgreementWidget(make_napari_viewer())
    widget.project_edit.setText(str(project.root))
    widget.compute_button.click()
    assert "at least two raters" in widget.status.text()
    assert widget.compute_button.isEnabled()
