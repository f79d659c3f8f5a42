"""The annotator with real input: actions count as active time, review shows raters and their
colours, status lines describe the open clip, nothing is clipped at 1366x768."""

import numpy as np
import pytest
from qtpy.QtCore import Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import QLineEdit

from napari_ultramn._widgets.annotator_panels import TRACK_COLOURS, rater_colour, track_pixmap
from napari_ultramn.annotation.session import AnnotationSession
from tests.annotator_gui import clipped, key, settle
from tests.fakes import FakeClock
from tests.project_factory import disk, make_clip_project

pytestmark = pytest.mark.gui

SHAPE = (48, 64)


@pytest.fixture
def project(tmp_path):
    return make_clip_project(tmp_path / "proj", n_clips=3, n_frames=6, shape=SHAPE)


def annotator(make_napari_viewer, project, rater="r1", review=False, show=False):
    viewer = make_napari_viewer(show=show)
    _dock, w = viewer.window.add_plugin_dock_widget("napari-ultramn", "Annotator")
    w.open_project(project.root, rater, review=review)
    return viewer, w


def test_real_actions_in_this_window_count_as_active_time(make_napari_viewer, qtbot, project):
    viewer, w = annotator(make_napari_viewer, project, show=True)
    other = QLineEdit()  # another window (another viewer, an e-mail): not this clip's work
    qtbot.addWidget(other)
    other.show()
    clock = FakeClock()
    w.ctl.activity.clock = clock
    w.open_clip("c0")
    clock.wait(10)
    key(viewer, qtbot, "K")  # a key on the canvas
    assert w.session.annotation.active_seconds == 10
    clock.wait(5)
    qtbot.keyClicks(w.comment_edit, "gel")  # typing in the dock: the first key closes the pause
    assert w.session.annotation.active_seconds == 15
    clock.wait(600)  # away for ten minutes, then a click: one idle threshold counts
    qtbot.mouseClick(w.sections["Keys"].toggle, Qt.MouseButton.LeftButton)
    assert w.session.annotation.active_seconds == 75
    clock.wait(30)
    qtbot.keyClicks(other, "elsewhere")
    assert w.session.annotation.active_seconds == 75
    w.close_session()  # the comment is written, with the time
    saved = w.project.annotations.load("c0", "r1")
    assert (saved.comment, saved.active_seconds, saved.work_sessions) == ("gel", 75, 1)
    clock.wait(20)
    key(viewer, qtbot, "K")  # no clip open: nothing to credit
    assert w.project.annotations.load("c0", "r1").active_seconds == 75


def _two_raters_on_c0_one_on_c1(project):
    for clip_id, rater, radius in (("c0", "r1", 5), ("c0", "r2", 8), ("c1", "r1", 6)):
        with AnnotationSession.open(project, clip_id, rater) as s:
            s.set_mask(0, disk(SHAPE, (24, 12), radius))


def test_review_marks_clips_with_two_raters_and_shows_the_layer_colours(make_napari_viewer, qtbot, project):
    _two_raters_on_c0_one_on_c1(project)
    viewer, w = annotator(make_napari_viewer, project, rater="chief", review=True, show=True)
    window = viewer.window._qt_window
    window.resize(1366, 768)
    items = [w.queue_list.item(i) for i in range(w.queue_list.count())]
    assert [i.text() for i in items] == [
        "◆ c0   p0   [not started]   2 raters   transverse_wrist",
        "c2   p0   [not started]   0 raters   transverse_wrist",
        "c1   p1   [not started]   1 rater   transverse_forearm",
    ]
    assert [i.font().bold() for i in items] == [True, False, False]
    assert all(i.toolTip() == i.text() for i in items)  # the list elides; the tooltip has it all
    w.queue_list.setCurrentItem(items[0])
    w.queue_list.setFocus()
    qtbot.keyClick(w.queue_list, Qt.Key.Key_Return)  # opens c0
    assert w.session is not None and w.session.clip_id == "c0"
    raters = w.layers["raters"]
    assert [lay.metadata["rater"] for lay in raters] == ["r1", "r2"]
    legend = w.rater_legend.text()
    for i, lay in enumerate(raters):  # the legend's colour is the layer's colour
        layer_rgb = np.asarray(lay.colormap.color_dict[i + 1])[:3]
        assert np.allclose(QColor(rater_colour(i)).getRgbF()[:3], layer_rgb, atol=1 / 255)
        assert f'color: {rater_colour(i)}">■</span>&nbsp;{lay.metadata["rater"]}' in legend
        assert w.pick_combo.itemData(i, Qt.ItemDataRole.DecorationRole) == QColor(rater_colour(i))
    settle()
    assert w.rater_legend.isVisible()
    assert clipped(w) == []
    w.close_session()
    assert w.rater_legend.text() == ""

    w.open_project(project.root, "r1", review=False)  # blind: no counts, no legend, no raters named
    assert w.queue_list.item(0).text() == "c0   p0   [in progress]" and not w.queue_list.item(0).font().bold()
    w.open_clip("c1")
    assert w.sections["Review: other raters"].isHidden() and w.layers["raters"] == []
    w.close_session()


def test_status_lines_describe_the_clip_that_is_open(make_napari_viewer, project):
    viewer, w = annotator(make_napari_viewer, project)
    w.open_clip("c0")
    w.session.set_mask(0, disk(SHAPE, (24, 12), 5))
    w.refresh_clip_view([0])
    assert w.save_label.full_text().startswith("c0: autosaved ")
    held = AnnotationSession.open(project, "c1", "r1")  # another window has c1
    try:
        assert not w.open_clip("c1")
    finally:
        held.close()
    assert "already open in another window" in w.message_label.text()
    assert (w.clip_label.text(), w.save_label.full_text(), w.frame_label.text(), w.measure_label.text()) == (
        "No clip open.",
        "",
        "",
        "",
    )
    assert w.open_clip("c1") and w.save_label.full_text() == "c1: no changes yet (saved as you work)"
    w.close_session()


def test_empty_masks_show_as_a_thin_line_in_the_frame_strip(qtbot):
    codes = np.array([3, 3, 3, -1])  # model, model (empty), model (empty), unannotated
    img = track_pixmap(
        codes, np.zeros(4, bool), current=-1, width=40, empty=np.array([False, True, True, False])
    ).toImage()

    def rgb(x, y):
        c = img.pixelColor(x, y)
        return c.red(), c.green(), c.blue()

    magenta, unannotated = tuple(TRACK_COLOURS[3]), tuple(TRACK_COLOURS[-1])
    assert rgb(5, 6) == magenta  # a proposed nerve fills the band
    assert rgb(15, 6) == rgb(25, 6) == unannotated  # 'no nerve found' does not
    assert rgb(15, 1) == magenta  # ...but is marked as the model's, with a thin line
    assert rgb(35, 1) == rgb(35, 6) == unannotated
