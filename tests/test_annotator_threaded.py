"""The annotator's real threaded worker (not the synchronous test mode): propagate, Cancel, again."""

import pytest
from qtpy.QtCore import Qt

from tests.annotator_gui import drag, key, open_annotator, settle
from tests.project_factory import make_clip_project

pytestmark = pytest.mark.gui


def test_threaded_propagation_can_be_cancelled_and_run_again(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("ULTRAMN_SYNC_WORKERS", "0")  # napari's thread worker, as in a real session
    n = 400  # long enough that Cancel comes well before the end on any machine
    project = make_clip_project(tmp_path / "proj", n_clips=1, n_frames=n, shape=(64, 480))
    viewer, w = open_annotator(make_napari_viewer, project, "r1", "c0")
    nerve = w.layers["nerve"]
    viewer.layers.selection.active = nerve
    key(viewer, qtbot, "P")  # napari's paint tool
    for _ in range(3):
        key(viewer, qtbot, "]")
    drag(viewer, nerve, [(30, 8), (32, 10), (34, 12)])  # a keyframe on the disk in frame 1
    assert list(w.session.annotation.frames) == [0]

    key(viewer, qtbot, "Control-Right")  # propagate to the end, in a thread
    assert w._worker is not None and w._worker is not True  # a real worker, the dock still responsive
    qtbot.waitUntil(lambda: w.cancel_button.isEnabled(), timeout=30_000)  # shown once work lasts
    # the table's refill after the stroke (due 0.3 s after it) waits while the worker runs: it
    # would take the worker's CPU and Python's lock, and repaint the window mid-work
    assert w.measure_table.rowCount() == 0
    qtbot.mouseClick(w.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w._worker is None, timeout=30_000)
    qtbot.waitUntil(lambda: w.measure_table.rowCount() == 1, timeout=5_000)  # then it comes
    settle(10)
    assert w.message_label.text() == "Cancelled." and w.pending is None
    assert list(w.session.annotation.frames) == [0]  # nothing half-done reached the annotation
    assert not w.progress_bar.isVisible() and not w.cancel_button.isEnabled()
    assert str(nerve.mode) == "paint"

    viewer.dims.set_current_step(0, n - 5)  # a keyframe near the end: a short run to completion
    drag(viewer, nerve, [(30, n - 7), (32, n - 5), (34, n - 3)])
    key(viewer, qtbot, "Control-Right")
    qtbot.waitUntil(lambda: w._worker is None, timeout=60_000)
    assert w.pending is not None and sorted(w.pending.masks) == list(range(n - 4, n))
    assert "press Alt-A to accept" in w.message_label.text()
    key(viewer, qtbot, "Alt-A")
    assert set(w.session.annotation.frames) == {0, *range(n - 5, n)}
