"""Frame numbers a person sees are 1-based everywhere; what is typed is what is kept; blind is blind."""

import pytest
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QMessageBox

from tests.project_factory import make_clip_project

pytestmark = pytest.mark.gui

CTRL = Qt.KeyboardModifier.ControlModifier


@pytest.fixture
def project(tmp_path):
    return make_clip_project(tmp_path / "proj", n_clips=2, n_frames=8, shape=(32, 40))


def annotator(make_napari_viewer, project, **kw):
    viewer = make_napari_viewer()
    _dock, w = viewer.window.add_plugin_dock_widget("napari-ultramn", "Annotator")
    w.open_project(project.root, "r1", **kw)
    return viewer, w


def type_into(qtbot, spin, text: str) -> None:
    """Select what the box holds and type over it, as a person does."""
    spin.setFocus()
    qtbot.keyClick(spin, Qt.Key.Key_A, CTRL)
    qtbot.keyClicks(spin, text)
    qtbot.keyClick(spin, Qt.Key.Key_Tab)


def test_a_range_typed_one_based_is_stored_zero_based_and_shown_one_based(make_napari_viewer, qtbot, project):
    viewer, w = annotator(make_napari_viewer, project)
    w.open_clip("c0")
    assert (w.range_start.minimum(), w.range_stop.maximum(), w.range_stop.value()) == (1, 8, 8)
    type_into(qtbot, w.range_start, "3")
    type_into(qtbot, w.range_stop, "5")
    w.range_plane.setCurrentText("non_standard")
    qtbot.mouseClick(w.range_button, Qt.MouseButton.LeftButton)
    w.session.flush()
    saved = w.project.annotations.load("c0", "r1")
    assert [(r.start, r.stop, r.plane) for r in saved.plane_ranges] == [(2, 5, "non_standard")]
    assert w.ranges_label.text() == "frames 3–5 non_standard"
    assert w.message_label.text() == "Frames 3–5 labelled non_standard."

    viewer.dims.set_current_step(0, 4)
    numbers = w.frame_numbers  # in place of napari's 0-based number beside the slider
    assert (numbers.current.text(), numbers.total.text()) == ("5", "8")
    assert w.frame_label.text().startswith("Frame 5 / 8 · unannotated · plane non_standard")
    assert w.measure_label.text() == "Frame 5: not traced"
    w.propagate_button.click()  # nothing traced here: the refusal counts as the dock does
    assert w.message_label.text() == "frame 5 has no mask to propagate; trace it first"
    w.close_session()
    assert not any(" / " in a for a in viewer.dims.axis_labels)
    assert numbers.current is None  # napari's own number is back


def test_typed_comment_is_saved_without_flag_and_done_asks_first(make_napari_viewer, qtbot, project, monkeypatch):
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.No)
    viewer, w = annotator(make_napari_viewer, project)
    w.open_clip("c0")
    assert w.save_label.text() == "c0: no changes yet (saved as you work)"
    w.comment_edit.setFocus()
    qtbot.keyClicks(w.comment_edit, "probe slipped")
    qtbot.waitUntil(lambda: w.session.saves > 0, timeout=3000)  # debounced
    w.session.flush()
    assert w.project.annotations.load("c0", "r1").comment == "probe slipped"
    assert w.save_label.text().startswith("c0: autosaved ")
    qtbot.keyClicks(w.comment_edit, ", redo")  # typed, then "Done" at once: nothing is lost
    w.done_button.click()
    assert asked == ["c0: no plane is set; 8 of 8 frames are not traced (frames 1–8). Mark it done anyway?"]
    w.session.flush()  # the dock saves on a worker thread
    saved = w.project.annotations.load("c0", "r1")
    assert (saved.status, saved.comment) == ("in_progress", "probe slipped, redo")
    assert w.message_label.text() == "c0 not marked done."
    w.open_clip("c1")  # the autosave line is about the clip now open
    assert w.save_label.text() == "c1: no changes yet (saved as you work)"
    assert w.comment_edit.text() == ""
    w.close_session()


def test_blind_mode_shows_nothing_from_the_header(make_napari_viewer, project):
    viewer, w = annotator(make_napari_viewer, project)
    assert [w.queue_list.item(i).text() for i in range(2)] == ["c0   p0   [not started]", "c1   p1   [not started]"]
    assert w.plane_filter.isHidden()
    w.open_clip("c0")
    assert w.plane_combo.currentIndex() == 0 and w.session.annotation.clip_plane is None
    assert w.clip_label.text() == "<b>c0</b> · participant p0 · 8 frames · status not started"
    assert "transverse" not in w.frame_label.text() + w.ranges_label.text()
    w.open_project(project.root, "chief", review=True)
    assert "transverse_wrist" in w.queue_list.item(0).text() and not w.plane_filter.isHidden()
    w.open_clip("c0")
    assert " · left · " in w.clip_label.text() and w.session.annotation.clip_plane == "transverse_wrist"
    w.close_session()


def test_a_comment_typed_just_before_the_window_closes_is_written(make_napari_viewer, qtbot, project):
    viewer, w = annotator(make_napari_viewer, project)
    w.open_clip("c1")
    w._draft_timer.setInterval(60_000)  # the window closes before the debounced save is due
    w.comment_edit.setFocus()
    qtbot.keyClicks(w.comment_edit, "gel ran out")
    assert w.project.annotations.load("c1", "r1") is None  # the debounce has not fired yet
    viewer.close()
    assert w.project.annotations.load("c1", "r1").comment == "gel ran out"
