"""The Imaging region dock widget: detect on an uncropped recording, move the rectangle, save."""

import json

import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_ultramn.io import Region
from napari_ultramn.phantom.screen_recording import make_screen_recording, write_screen_recording
from napari_ultramn.region_corrections import load_corrections

pytestmark = pytest.mark.gui


def test_detect_move_and_save(make_napari_viewer, qtbot, tmp_path):
    rec = make_screen_recording("convex", 3, 6, (360, 480))
    source = write_screen_recording(tmp_path / "screen.mp4", rec.frames, rec.frame_time_ms)
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-ultramn", "Imaging region")
    widget.project_edit.setText(str(tmp_path / "project"))
    widget.source_edit.setText(str(source))
    qtbot.mouseClick(widget.detect_button, Qt.LeftButton)

    assert viewer.layers["source"].data.shape == (6, 360, 480)  # uncropped
    detected = widget.area.region
    ys, xs = np.nonzero(rec.area_mask)
    assert abs(detected.top - ys.min()) <= 6 and abs(detected.right - xs.max() - 1) <= 6
    assert viewer.layers["blanked"].data.any()  # corners outside the fan, overlays inside

    shapes = viewer.layers["imaging region"]
    shapes.data = [np.asarray(shapes.data[0]) + [5, -7]]  # the person drags it
    qtbot.mouseClick(widget.save_button, Qt.LeftButton)

    expected = Region(detected.top + 5, detected.left - 7, detected.bottom + 5, detected.right - 7)
    sha = widget.clip.sha256
    assert load_corrections(tmp_path / "project") == {sha: expected}
    saved = json.loads((tmp_path / "project" / "region_corrections.json").read_text())
    assert saved["corrections"][sha]["region"] == expected.as_list()
    assert "Saved region" in widget.status.text()
