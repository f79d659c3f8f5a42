"""The frame number beside napari's slider is 1-based while the annotator is docked, typing N
shows frame N, and closing the clip or the dock gives napari its own (0-based) number back."""

import numpy as np
import pytest
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QLabel, QLineEdit

from tests.annotator_gui import LEFT, open_annotator, settle
from tests.project_factory import make_clip_project

pytestmark = pytest.mark.gui

CTRL = Qt.KeyboardModifier.ControlModifier


def slider_row(viewer):
    return viewer.window._qt_viewer.dims.slider_widgets[0]


def shown_numbers(viewer) -> tuple[str, str]:
    """(current, total) as visible in the time slider's row, whoever's widgets they are."""
    row = slider_row(viewer)
    current = [w.text() for w in row.findChildren(QLineEdit, "slice_label") if w.isVisible()]
    total = [w.text() for w in row.findChildren(QLabel, "slice_label") if w.isVisible()]
    assert len(current) == 1 and len(total) == 1, "one frame number and one total on screen"
    return current[0], total[0]


@pytest.fixture
def docked(make_napari_viewer, tmp_path):
    project = make_clip_project(tmp_path / "proj", n_clips=2, n_frames=12, shape=(40, 48))
    return open_annotator(make_napari_viewer, project, "r1", "c0")  # 1366x768


def type_frame(qtbot, box, text: str) -> None:
    qtbot.mouseClick(box, LEFT)
    qtbot.keyClick(box, Qt.Key.Key_A, CTRL)
    qtbot.keyClicks(box, text)
    qtbot.keyClick(box, Qt.Key.Key_Return)
    settle()


def test_the_number_beside_the_slider_counts_from_one_and_typing_n_shows_frame_n(docked, qtbot):
    viewer, w = docked
    row = slider_row(viewer)
    assert not row.curslice_label.isVisible() and not row.totslice_label.isVisible()  # napari's 0-based ones
    assert shown_numbers(viewer) == ("1", "12")
    viewer.dims.set_current_step(0, 11)  # the last frame, as napari's slider or a key moves it
    settle()
    assert shown_numbers(viewer) == ("12", "12")
    assert w.frame_label.text().startswith("Frame 12 / 12")

    type_frame(qtbot, w.frame_numbers.current, "7")
    assert viewer.dims.current_step[0] == 6  # 0-based inside
    assert shown_numbers(viewer) == ("7", "12")
    assert w.frame_label.text().startswith("Frame 7 / 12")  # the dock agrees
    type_frame(qtbot, w.frame_numbers.current, "99")  # past the end: the last frame
    assert viewer.dims.current_step[0] == 11 and shown_numbers(viewer) == ("12", "12")

    w.open_clip("c1")  # napari rebuilds nothing here, but the numbers follow the new clip
    settle()
    assert shown_numbers(viewer)[1] == "12" and not row.curslice_label.isVisible()


def test_closing_the_dock_gives_napari_its_own_numbers_back(docked):
    viewer, w = docked
    viewer.dims.set_current_step(0, 3)
    settle()
    assert shown_numbers(viewer) == ("4", "12")
    viewer.window.remove_dock_widget(w)
    settle()
    if not len(viewer.layers):  # the clip's layers went with the dock: any 12-frame stack
        viewer.add_image(np.zeros((12, 8, 8), np.uint8))
    viewer.dims.set_current_step(0, 3)
    settle()
    row = slider_row(viewer)
    assert row.curslice_label.isVisible() and row.totslice_label.isVisible()
    assert shown_numbers(viewer) == ("3", "11")  # napari's own: index and last index
