"""The annotator fits a 1366x768 laptop: the canvas keeps half the window, no text is clipped."""

import pytest
from qtpy.QtWidgets import (
    QApplication,
    QScrollArea,
)

from tests.annotator_gui import clipped
from tests.project_factory import make_clip_project

pytestmark = pytest.mark.gui


def settle():
    for _ in range(10):
        QApplication.processEvents()


def laptop(make_napari_viewer, tmp_path, height):
    project = make_clip_project(tmp_path / "proj", n_clips=3, n_frames=12, shape=(120, 160))
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(1366, height)
    _dock, w = viewer.window.add_plugin_dock_widget("napari-ultramn", "Annotator")
    w.open_project(project.root, "r1")
    w.open_clip("c0")
    window.resize(1366, height)
    settle()
    return viewer, w


@pytest.mark.parametrize("height", [768, 740])
def test_the_dock_fits_a_laptop_window_and_leaves_the_canvas_half(make_napari_viewer, tmp_path, height):
    viewer, w = laptop(make_napari_viewer, tmp_path, height)
    window = viewer.window._qt_window
    canvas = viewer.window._qt_viewer.canvas.native
    assert (window.width(), window.height()) == (1366, height)  # the dock did not stretch the window
    assert canvas.width() >= window.width() / 2 and canvas.height() >= window.height() / 2
    area = w.findChild(QScrollArea)
    assert area.widget().minimumSizeHint().width() <= area.viewport().width()  # nothing cut at the right
    for section in w.sections.values():  # everything unfolded, the review rows shown too
        section.setVisible(True)
        section.set_expanded(True)
    w.frame_label.setText(w.frame_label.text() + " · a very long status line " * 3)
    long_line = "c0: autosaved 12:00:00 → annotations/c0/" + "r1" * 60 + ".json (3 saves)"
    w.save_label.setText(long_line)
    settle()
    assert clipped(w) == []
    assert w.save_label.text().endswith("…") and w.save_label.toolTip() == long_line
    w.open_project(w.project.root, "chief", review=True)  # review: the plane filter shows too
    w.open_clip("c0")
    w.plane_filter.setCurrentIndex(w.plane_filter.findText("transverse_forearm"))
    w.range_plane.setCurrentText("longitudinal_forearm")
    settle()
    assert not w.plane_filter.isHidden() and clipped(w) == []
    w.close_session()


def test_sections_fold_and_the_project_folds_once_open(make_napari_viewer, tmp_path):
    _viewer, w = laptop(make_napari_viewer, tmp_path, 768)
    assert not w.sections["Project"].body.isVisible() and w.sections["Clip"].body.isVisible()
    assert not w.sections["Keys"].body.isVisible()
    w.sections["Keys"].toggle.click()
    assert w.sections["Keys"].body.isVisible() and "F1" in w.keys_label.text()
    w.close_session()
