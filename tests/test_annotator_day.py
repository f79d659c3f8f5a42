"""A day of work at 1366x768, only real keys and mouse: label a clip end to end and move on."""

import pytest
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QMessageBox

from tests.annotator_gui import canvas, drag, key, settle
from tests.project_factory import make_clip_project

pytestmark = pytest.mark.gui


def type_into(qtbot, edit, text: str) -> None:
    edit.setFocus()
    qtbot.keyClick(edit, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClicks(edit, text)
    qtbot.keyClick(edit, Qt.Key.Key_Tab)


def test_a_day_of_work(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: pytest.fail(f"asked: {a[2]}"))
    project = make_clip_project(tmp_path / "proj", n_clips=2, n_frames=8, shape=(48, 64))
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1366, 768)
    _dock, w = viewer.window.add_plugin_dock_widget("napari-ultramn", "Annotator")
    type_into(qtbot, w.project_edit, str(project.root))
    type_into(qtbot, w.rater_edit, "r1")
    qtbot.mouseClick(w.open_project_button, Qt.MouseButton.LeftButton)
    key(viewer, qtbot, "N")  # the first clip to label
    assert w.session.clip_id == "c0"
    settle(10)
    nerve = w.layers["nerve"]
    viewer.layers.selection.active = nerve
    key(viewer, qtbot, "P")  # napari's paint tool, by napari's own key
    for _ in range(3):
        key(viewer, qtbot, "]")  # napari: a bigger brush
    tool = (str(nerve.mode), nerve.selected_label, nerve.brush_size)
    assert tool[0] == "paint"

    def at(t):  # napari's own frame keys
        while viewer.dims.current_step[0] != t:
            key(viewer, qtbot, "Right" if viewer.dims.current_step[0] < t else "Left")

    def stroke(t, row, col):
        at(t)
        drag(viewer, nerve, [(row, col - 4), (row, col), (row + 2, col + 4)])

    key(viewer, qtbot, "F2")  # plane
    type_into(qtbot, w.range_start, "3")  # frames 3-4 as shown: the probe slipped
    type_into(qtbot, w.range_stop, "4")
    w.range_plane.setCurrentText("non_standard")
    qtbot.mouseClick(w.range_button, Qt.MouseButton.LeftButton)
    stroke(0, 24, 14)
    stroke(5, 24, 20)
    key(viewer, qtbot, "Shift-I")  # interpolate
    assert [w.session.annotation.frames[t].provenance for t in range(6)] == [
        "drawn",
        "interpolated",
        "interpolated",
        "interpolated",
        "interpolated",
        "drawn",
    ]
    key(viewer, qtbot, "Control-Right")  # propagate from frame 6 to the end
    assert w.pending is not None and "press Alt-A to accept" in w.message_label.text()
    assert w.progress_bar.format() == "frame 8 / 8 %p%"  # the core's 0-based progress, counted as shown
    at(7)
    key(viewer, qtbot, "Alt-A")  # accept up to here
    assert w.pending is None and w.message_label.text() == "Accepted the propagation into frames 7–8."
    stroke(3, 24, 26)  # correct an interpolated frame: the correction spreads to frames 2-3 and 5 as shown
    assert w.session.annotation.frames[3].provenance == "drawn"
    assert [w.session.annotation.frames[t].provenance for t in (1, 2, 4)] == ["propagated"] * 3
    key(viewer, qtbot, "Control-Z")  # one step takes back the correction and its spread
    assert (
        w.session.annotation.frames[3].provenance == "interpolated" and w.message_label.text() == "Undone: frames 2–5."
    )
    assert [w.session.annotation.frames[t].provenance for t in (1, 2, 4)] == ["interpolated"] * 3
    key(viewer, qtbot, "Control-Shift-Z")
    assert w.session.annotation.frames[3].provenance == "drawn"
    w.comment_edit.setFocus()
    qtbot.keyClicks(w.comment_edit, "probe slipped at frames 3-4")
    key(viewer, qtbot, "Shift-D")  # done: nothing missing, so nothing asked
    assert w.progress_label.text().startswith("1 / 2 clips done")  # then the median time, if any
    key(viewer, qtbot, "N")
    assert w.session.clip_id == "c1"

    saved = project.annotations.load("c0", "r1")
    assert [saved.frames[t].provenance for t in range(8)] == [
        "drawn",
        "propagated",
        "propagated",
        "drawn",
        "propagated",
        "drawn",
        "propagated",
        "propagated",
    ]
    assert [(r.start, r.stop, r.plane) for r in saved.plane_ranges] == [(2, 4, "non_standard")]
    assert (saved.clip_plane, saved.status, saved.comment) == (
        "transverse_forearm",
        "done",
        "probe slipped at frames 3-4",
    )
    new = w.layers["nerve"]
    assert (str(new.mode), new.selected_label, new.brush_size) == tool  # the tool never changed
    assert canvas(viewer).width() >= 683
    w.close_session()
