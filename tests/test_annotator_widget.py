"""The annotator dock widget, driven as a radiologist would: keys, buttons, painting into layers."""

import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_ultramn.annotation.session import ADJUDICATED, AnnotationSession
from tests.project_factory import disk, make_clip_project

pytestmark = pytest.mark.gui

SHIFT = Qt.KeyboardModifier.ShiftModifier
CTRL = Qt.KeyboardModifier.ControlModifier


def press(viewer, qtbot, key, modifier=Qt.KeyboardModifier.NoModifier):
    qtbot.keyClick(viewer.window._qt_viewer.canvas.native, key, modifier)


def annotator(make_napari_viewer):
    viewer = make_napari_viewer()
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-ultramn", "Annotator")
    return viewer, widget


@pytest.fixture
def project(tmp_path):
    return make_clip_project(tmp_path / "proj", n_clips=3, n_frames=8, shape=(48, 64))


def test_label_trace_interpolate_undo_flag_and_move_on(make_napari_viewer, qtbot, project, monkeypatch):
    from qtpy.QtWidgets import QMessageBox

    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.Yes)
    viewer, w = annotator(make_napari_viewer)
    assert "<b>F1</b></td><td>plane transverse_wrist" in w.keys_label.text()
    assert "<b>Shift-I</b></td><td>interpolate keyframes" in w.keys_label.text()
    w.project_edit.setText(str(project.root))
    w.rater_edit.setText("r1")
    w.open_project_button.click()
    assert w.progress_label.text() == "0 / 3 clips done" and w.queue_list.count() == 3
    w.queue_list.itemActivated.emit(w.queue_list.item(0))  # double-click the first clip
    s = w.session
    assert s.clip_id == "c0" and not w.preannotate_button.isEnabled()

    press(viewer, qtbot, Qt.Key.Key_F2)  # plane by key, even with the nerve layer active
    assert s.annotation.clip_plane == "transverse_forearm"

    nerve = w.layers["nerve"]
    nerve.brush_size = 9
    nerve.paint((0, 24, 12), 1)
    assert s.annotation.keyframes() == [0]
    s.flush()  # the GUI saves on a worker thread; flush waits for it
    assert project.annotations.load("c0", "r1").keyframes() == [0]
    assert "mm²" in w.measure_label.text()  # the current frame at once, the clip table after a pause
    qtbot.waitUntil(lambda: w.measure_table.rowCount() == 1, timeout=5000)
    assert w.measure_table.horizontalHeaderItem(2).text() == "area mm²"
    assert w.measure_table.horizontalHeaderItem(3).toolTip() == "perimeter mm"
    viewer.dims.set_current_step(0, 6)
    nerve.paint((6, 24, 20), 1)
    press(viewer, qtbot, Qt.Key.Key_I, SHIFT)
    assert [s.annotation.frames[t].provenance for t in range(7)] == ["drawn"] + ["interpolated"] * 5 + ["drawn"]
    qtbot.waitUntil(lambda: w.measure_table.rowCount() == 7, timeout=5000)
    assert "Centroid excursion over 7 frames" in w.excursion_label.text()
    assert nerve.data[3].max() == 2  # filled frames are shown in the 'filled' colour

    press(viewer, qtbot, Qt.Key.Key_Z, CTRL)
    assert sorted(s.annotation.frames) == [0, 6] and not nerve.data[3].any()
    press(viewer, qtbot, Qt.Key.Key_Z, CTRL | SHIFT)
    assert len(s.annotation.frames) == 7 and nerve.data[3].any()
    viewer.dims.set_current_step(0, 0)
    press(viewer, qtbot, Qt.Key.Key_K)  # next keyframe
    assert viewer.dims.current_step[0] == 6

    viewer.dims.set_current_step(0, 2)
    press(viewer, qtbot, Qt.Key.Key_0)
    viewer.dims.set_current_step(0, 3)
    press(viewer, qtbot, Qt.Key.Key_0)
    assert s.annotation.frame_planes()[1:5] == [
        "transverse_forearm",
        "non_standard",
        "non_standard",
        "transverse_forearm",
    ]

    w.comment_edit.setText("shadow over the nerve")
    press(viewer, qtbot, Qt.Key.Key_F, SHIFT)
    s.flush()
    saved = project.annotations.load("c0", "r1")
    assert (saved.quality, saved.comment, len(saved.frames)) == ("poor", "shadow over the nerve", 7)
    assert "[flagged]" in w.queue_list.item(0).text()

    press(viewer, qtbot, Qt.Key.Key_D, SHIFT)
    assert asked == ["c0: 1 of 8 frames are not traced (frame 8). Mark it done anyway?"]
    assert w.progress_label.text().startswith("1 / 3 clips done · median ")  # timed by real actions
    viewer.dims.set_current_step(0, 2)
    nerve.paint((2, 24, 30), 1)  # the last stroke: switching clips must write it before unlocking
    press(viewer, qtbot, Qt.Key.Key_N)  # next unlabelled clip; c0's lock is released
    assert w.session.clip_id != "c0" and "clip c0" not in [lay.name for lay in viewer.layers]
    assert project.annotations.load("c0", "r1").frames[2].provenance == "drawn"
    AnnotationSession.open(project, "c0", "r1").close()
    w.close_session()


def test_polygon_propagation_accept_writer_and_preannotate(make_napari_viewer, qtbot, project, tmp_path, monkeypatch):
    viewer, w = annotator(make_napari_viewer)
    w.open_project(project.root, "r1")
    w.open_clip("c1")
    s = w.session
    square = np.array([[0, 18, 6], [0, 18, 15], [0, 29, 15], [0, 29, 6]], float)
    w.layers["outline"].add_polygons([square])
    assert s.annotation.keyframes() == [0]
    qtbot.waitUntil(lambda: len(w.layers["outline"].data) == 0, timeout=2000)  # emptied once napari is done
    assert s.annotation.frames[0].mask.sum() == 12 * 10

    viewer.dims.set_current_step(0, 0)
    press(viewer, qtbot, Qt.Key.Key_Right, CTRL)
    assert w.pending is not None and "propagation preview" in [lay.name for lay in viewer.layers]
    assert sorted(s.annotation.frames) == [0]  # nothing changes before accepting
    viewer.dims.set_current_step(0, 4)
    press(viewer, qtbot, Qt.Key.Key_A, Qt.KeyboardModifier.AltModifier)
    assert [s.annotation.frames[t].provenance for t in sorted(s.annotation.frames)] == ["drawn"] + ["propagated"] * 4
    assert w.pending is None and not any(  # the preview layer is kept, hidden, for the next one
        lay.visible for lay in viewer.layers if lay.name == "propagation preview"
    )
    assert w.layers["nerve"].metadata["provenance"][:6] == [0, 2, 2, 2, 2, -1]

    from napari_ultramn.annotation.store import load_annotation_file

    viewer.layers.selection.active = w.layers["nerve"]
    [out] = viewer.layers.save(str(tmp_path / "c1_r1.json"), selected=True, plugin="napari-ultramn")
    back = load_annotation_file(out)
    assert (back.clip_id, back.rater) == ("c1", "r1") and sorted(back.frames) == [0, 1, 2, 3, 4]

    # Pre-annotate: enabled only with a model run chosen; never overwrites the human frames.
    import types

    import napari_ultramn.model.preannotate as pre
    from napari_ultramn.progress import Progress

    w.model_edit.setText(str(tmp_path / "no-such-run"))
    assert not w.preannotate_button.isEnabled()
    w.model_edit.setText(str(tmp_path))
    assert w.preannotate_button.isEnabled()

    def fake_preannotate(run_dir, clip):
        yield Progress(1, 1, "predicting")
        masks = np.zeros(clip.shape, bool)
        masks[:, 20:30, 20:30] = True
        return types.SimpleNamespace(
            masks=masks,
            confidence=np.full(clip.n_frames, 0.7),
            frame_planes=["longitudinal_wrist"] * clip.n_frames,
            clip_plane="longitudinal_wrist",
        )

    monkeypatch.setattr(pre, "preannotate_clip", fake_preannotate)
    s.set_clip_plane(None)
    w.preannotate_button.click()
    assert [s.annotation.frames[t].provenance for t in range(8)] == ["drawn"] + ["propagated"] * 4 + ["model"] * 3
    assert s.annotation.clip_plane == "longitudinal_wrist"
    viewer.dims.set_current_step(0, 6)
    w.layers["nerve"].paint((6, 25, 25), 0)  # erase part of the proposal
    fm = s.annotation.frames[6]
    assert fm.provenance == "model_edited" and 0 < fm.edited_fraction < 1
    w.close_session()


def test_blind_mode_hides_raters_review_overlays_and_picks(make_napari_viewer, project):
    for rater, radius in (("r1", 5), ("r2", 8)):
        with AnnotationSession.open(project, "c0", rater) as s:
            s.set_mask(0, disk((48, 64), (24, 12), radius))
    viewer, w = annotator(make_napari_viewer)
    w.open_project(project.root, "r1")
    w.open_clip("c0")
    assert (
        not any(lay.name.startswith("rater ") for lay in viewer.layers)
        and w.sections["Review: other raters"].isHidden()
    )
    assert w.session.annotation.frames[0].mask.sum() == disk((48, 64), (24, 12), 5).sum()

    w.open_project(project.root, "chief", review=True)
    w.open_clip("c0")
    assert [lay.name for lay in viewer.layers if lay.name.startswith("rater ")] == ["rater r1", "rater r2"]
    assert not w.sections["Review: other raters"].isHidden() and not w.review_box.isHidden()
    w.pick_combo.setCurrentText("r2")
    w.pick_clip_button.click()
    assert w.progress_label.text() == "0 / 3 clips done"  # the queue is the adjudicated work
    assert w.queue_list.item(0).text() == "◆ c0   p0   [in progress]   2 raters   transverse_wrist"
    final = project.annotations.load("c0", ADJUDICATED)
    assert final.frames[0].mask.sum() == disk((48, 64), (24, 12), 8).sum()
    w.close_session()


def test_second_window_is_told_and_corrupt_file_needs_consent(make_napari_viewer, project):
    _v1, w1 = annotator(make_napari_viewer)
    _v2, w2 = annotator(make_napari_viewer)
    w1.open_project(project.root, "r1")
    assert w1.open_clip("c0")
    w2.open_project(project.root, "r1")
    assert not w2.open_clip("c0")
    assert "clip 'c0' of rater 'r1' is already open in another window" in w2.message_label.text()
    assert w2.session is None and "nerve" not in [lay.name for lay in _v2.layers]
    _v1.window.remove_dock_widget(w1)  # closing the dock releases the clip
    AnnotationSession.open(project, "c0", "r1").close()

    path = project.annotations.path("c1", "r1")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{broken")
    assert not w2.open_clip("c1")
    assert "r1.json: is not valid JSON" in w2.message_label.text() and not w2.set_aside_button.isHidden()
    assert path.read_text() == "{broken"
    w2.set_aside_button.click()
    assert w2.session is not None and w2.session.set_aside_path.read_text() == "{broken"
    w2.close_session()


def test_cli_opens_the_annotator_on_an_uncalibrated_clip(make_napari_viewer, tmp_path, monkeypatch, capsys):
    import napari

    from napari_ultramn.cli import main

    project = make_clip_project(tmp_path / "px", n_clips=3, n_frames=3, shape=(32, 40), spacing_mm=None)
    seen = {}

    def event_loop():  # stands in for napari.run(): look at the window, trace, "close" it
        from napari_ultramn._widgets.annotator import AnnotatorWidget

        # the dock the command added (found by class: napari's dock registry API differs by version)
        w = seen["widget"] = seen["viewer"].window._qt_window.findChild(AnnotatorWidget)
        seen["layers"] = [lay.name for lay in seen["viewer"].layers]
        w.session.set_mask(0, disk((32, 40), (16, 16), 5))
        w.refresh_clip_view([0])
        seen["texts"] = w.unit_label.text(), w.measure_label.text()  # closing the clip clears them

    monkeypatch.setattr(napari, "Viewer", lambda **kw: seen.setdefault("viewer", make_napari_viewer()))
    monkeypatch.setattr(napari, "run", event_loop)
    assert main(["annotate", str(project.root), "c2", "--rater", "r9"]) == 0
    assert "clip c2" in seen["layers"] and "nerve" in seen["layers"]
    w = seen["widget"]
    unit, measure = seen["texts"]
    assert "no calibration" in unit and "px²" in measure and "mm" not in measure
    assert w.unit_label.text() == "" and w.clip_label.text() == "No clip open."  # nothing stale
    AnnotationSession.open(project, "c2", "r9").close()  # the lock was released after the loop
    assert main(["annotate", str(project.root), "nope", "--rater", "r9"]) == 2
    assert "project has no clip 'nope'" in capsys.readouterr().err
