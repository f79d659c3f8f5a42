"""Tracing with the plugin's polygon layer, by real clicks on the canvas."""

import numpy as np
import pytest
from qtpy.QtCore import Qt

from tests.annotator_gui import canvas, click, settle
from tests.project_factory import make_clip_project

pytestmark = pytest.mark.gui


def test_a_clicked_polygon_becomes_a_drawn_mask_and_later_clicks_still_work(make_napari_viewer, qtbot, tmp_path):
    project = make_clip_project(tmp_path / "proj", n_clips=1, n_frames=6, shape=(48, 64))
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1366, 768)
    _dock, w = viewer.window.add_plugin_dock_widget("napari-ultramn", "Annotator")
    w.open_project(project.root, "r1")
    w.open_clip("c0")
    settle(10)
    outline = w.layers["outline"]
    viewer.layers.selection.active = outline
    outline.mode = "add_polygon"

    def trace(t, corners):
        viewer.dims.set_current_step(0, t)
        for r, c in corners:
            click(viewer, outline, r, c)
        qtbot.keyClick(canvas(viewer), Qt.Key.Key_Return)  # napari: finish the polygon
        qtbot.waitUntil(lambda: len(outline.data) == 0, timeout=2000)

    trace(0, [(10, 10), (10, 30), (30, 30), (30, 10)])
    fm = w.session.annotation.frames[0]
    # ~20x20 px; napari now and then drops one clicked vertex of a synthetic click (a triangle, half)
    assert fm.provenance == "drawn" and 150 < fm.mask.sum() < 450
    rows, cols = np.nonzero(fm.mask)
    assert rows.min() >= 9 and rows.max() <= 31 and cols.min() >= 9 and cols.max() <= 31
    assert w.message_label.text() == "Opened c0 for r1 (blind mode)."  # no error shown

    trace(3, [(20, 40), (20, 55), (35, 55), (35, 40)])  # the layer still works: a second polygon, another frame
    assert w.session.annotation.keyframes() == [0, 3] and w.session.annotation.frames[3].provenance == "drawn"
    w.session.flush()
    assert sorted(project.annotations.load("c0", "r1").frames) == [0, 3]
    w.close_session()
