"""The annotator's check tools (issue 14): J jumps to the most doubtful frame, an edit spreads
(one undo step) and the strip marks what it changed."""

import numpy as np
import pytest

from tests.annotator_gui import key, settle
from tests.project_factory import drifted, make_phantom, phantom_project

pytestmark = pytest.mark.gui


def test_check_doubtful_frame_spread_a_correction_and_undo(make_napari_viewer, qtbot, tmp_path):
    phantom = make_phantom()
    project = phantom_project(tmp_path / "proj", phantom)
    viewer = make_napari_viewer()
    _dock, w = viewer.window.add_plugin_dock_widget("napari-ultramn", "Annotator")
    assert "<b>J</b></td><td>check the next doubtful frame" in w.keys_label.text()  # bound: no clash
    assert w.open_project(project.root, rater="r1") and w.open_clip("c0")
    s = w.session
    n = s.annotation.n_frames
    s.set_mask(0, phantom.masks[0])
    with s.change("drifted propagation") as ann:
        for t in range(1, n):
            ann.set_mask(t, drifted(phantom, t), "propagated", confidence=0.9)
        ann.set_mask(11, np.roll(phantom.masks[11], 14, axis=0), "propagated", confidence=0.9)
    w.refresh_clip_view(list(range(n)))
    qtbot.waitUntil(lambda: w.doubt_list.count() > 0)
    assert w.doubt_list.item(0).text().startswith("frame 12: doubt")  # shown 1-based

    key(viewer, qtbot, "J")
    assert w.current_frame == 11 and "frame 12" in w.message_label.text()

    steps = len(s.history)
    w._do(lambda s: w._doubt_set_mask(s, 11, phantom.masks[11]))
    assert len(s.history) == steps + 1
    assert s.annotation.frames[11].provenance == "drawn"
    assert s.annotation.frames[n - 1].provenance == "propagated" and w._changed[0] == 1
    strip = w.changed_strip.pixmap().toImage()
    assert strip.pixelColor(strip.width() - 1, 2).red() == 255  # the last frame was changed: marked
    settle()
    assert "Correction of frame 12 spread to frames 2–11, frames 13–" in w.message_label.text()
    np.testing.assert_array_equal(w.layers["nerve"].data[20] > 0, s.annotation.frames[20].mask)

    w.undo()
    assert s.annotation.frames[11].provenance == "propagated"
    assert np.array_equal(s.annotation.frames[20].mask, drifted(phantom, 20))
