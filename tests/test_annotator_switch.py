"""Moving from clip to clip at 1366x768 with real keys and mouse: the layers are made once and
refilled (same layer objects, the new clip's data, the rater's tool kept), for clips of other
sizes too, and the next clip is read ahead."""

import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_ultramn.annotation.clip_annotation import ClipAnnotation
from napari_ultramn.io.hdf5clip import write_hdf5_clip
from tests.annotator_gui import drag, key, settle
from tests.project_factory import disk, make_clip_project

pytestmark = pytest.mark.gui

ROLES = ("image", "nerve", "outline")


def add_clip(project, clip_id, n_frames, shape, spacing_mm, participant="p9"):
    """One more clip of another size and pixel spacing."""
    frames = np.random.default_rng(3).integers(0, 60, size=(n_frames, *shape), dtype=np.uint8)
    frames[:, : shape[0] // 2] += 100  # a brighter top half, to tell it apart on screen
    meta = {
        "clip_id": clip_id,
        "participant": participant,
        "plane": project.planes[0],
        "spacing_mm": spacing_mm,
        "spacing_source": "stored",
        "source_sha256": "f" * 64,
    }
    write_hdf5_clip(project.root / "clips" / f"{clip_id}.h5", frames, meta)
    project.upsert_clips(
        [
            {
                "clip_id": clip_id,
                "file": f"clips/{clip_id}.h5",
                "participant": participant,
                "side": "right",
                "plane": project.planes[0],
                "source_sha256": "f" * 64,
                "n_frames": n_frames,
                "frame_shape": list(shape),
                "spacing_mm": list(spacing_mm),
                "spacing_source": "stored",
            }
        ]
    )
    return frames


@pytest.fixture
def dock(make_napari_viewer, tmp_path):
    project = make_clip_project(tmp_path / "proj", n_clips=2, n_frames=8, shape=(48, 64))
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1366, 768)
    _dock, w = viewer.window.add_plugin_dock_widget("napari-ultramn", "Annotator")
    w.open_project(project.root, "r1")
    yield project, viewer, w
    w.close_session()


def at_frame(viewer, qtbot, t):
    while viewer.dims.current_step[0] != t:  # napari's own frame keys, as a person steps
        key(viewer, qtbot, "Right" if viewer.dims.current_step[0] < t else "Left")


def activate(qtbot, w, clip_id):
    """Double-click the clip's line in the queue."""
    lst = w.queue_list
    item = next(lst.item(i) for i in range(lst.count()) if lst.item(i).data(0x0100) == clip_id)
    lst.scrollToItem(item)
    rect = lst.visualItemRect(item)
    qtbot.mouseClick(lst.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())  # Qt wants the press
    qtbot.mouseDClick(lst.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    settle(5)


def test_next_clip_refills_the_same_layers_keeps_the_tool_and_forgets_napari_undo(dock, qtbot):
    project, viewer, w = dock
    key(viewer, qtbot, "N")
    assert w.session.clip_id == "c0"
    before = {role: w.layers[role] for role in ROLES}
    n_layers = len(viewer.layers)
    nerve = before["nerve"]
    viewer.layers.selection.active = nerve
    key(viewer, qtbot, "P")  # napari's paint tool and a bigger brush, by napari's own keys
    for _ in range(2):
        key(viewer, qtbot, "]")
    tool = (str(nerve.mode), nerve.brush_size)
    drag(viewer, nerve, [(24, 10), (24, 14), (26, 18)])
    assert w.session.annotation.keyframes() == [0]

    key(viewer, qtbot, "N")  # c0 is started, so the next one to label is c1
    assert w.session.clip_id == "c1"
    assert {role: w.layers[role] for role in ROLES} == before and len(viewer.layers) == n_layers
    assert all(w.layers[r] is before[r] for r in ROLES)
    image = w.layers["image"]
    assert image.name == "clip c1" and image.metadata["clip_id"] == "c1" == nerve.metadata["clip_id"]
    np.testing.assert_array_equal(np.asarray(image.data[3]), project.open_clip("c1").frame(3))
    assert not nerve.data.any()  # c1 is not traced: nothing of c0 is left in the layer
    assert (str(nerve.mode), nerve.brush_size) == tool and tuple(image.contrast_limits) == (0, 255)
    nerve.undo()  # napari's own undo has nothing of c0's strokes to put into c1
    assert not nerve.data.any() and w.session.annotation.frames == {}

    activate(qtbot, w, "c0")  # back to c0 by a double-click in the queue
    assert w.session.clip_id == "c0" and w.layers["nerve"] is nerve
    assert nerve.data[0].any() and nerve.data[0].max() == 1 and not nerve.data[1:].any()
    drag(viewer, nerve, [(10, 40), (12, 44)])  # painting still reaches the session
    assert w.session.annotation.frames[0].mask.sum() > project.annotations.load("c0", "r1").frames[0].mask.sum() - 1


def test_clips_of_another_size_and_spacing_fit_the_dims_and_the_slider(dock, qtbot):
    project, viewer, w = dock
    big = add_clip(project, "wide", n_frames=12, shape=(60, 90), spacing_mm=(0.2, 0.1))
    w.open_project(project.root, "r1")
    w.open_clip("c0")
    nerve, image = w.layers["nerve"], w.layers["image"]
    at_frame(viewer, qtbot, 7)
    activate(qtbot, w, "wide")
    assert w.layers["nerve"] is nerve and w.layers["image"] is image
    assert nerve.data.shape == image.data.shape == (12, 60, 90)
    assert tuple(image.scale) == tuple(nerve.scale) == tuple(w.layers["outline"].scale) == (1.0, 0.2, 0.1)
    assert viewer.dims.nsteps[0] == 12
    np.testing.assert_array_equal(np.asarray(image.data[11]), big[11])
    at_frame(viewer, qtbot, 11)  # the slider reaches the longer clip's last frame
    assert "Frame 12 / 12" in w.frame_label.text()
    viewer.layers.selection.active = nerve
    key(viewer, qtbot, "P")
    drag(viewer, nerve, [(30, 40), (30, 46)])
    assert w.session.annotation.keyframes() == [11] and nerve.data[11].any()

    activate(qtbot, w, "c1")
    assert nerve.data.shape == (8, 48, 64) and viewer.dims.nsteps[0] == 8
    assert 0 <= viewer.dims.current_step[0] < 8 and tuple(nerve.scale) == (1.0, 0.1, 0.1)
    at_frame(viewer, qtbot, 7)
    assert "Frame 8 / 8" in w.frame_label.text()


def test_a_layer_deleted_by_hand_comes_back_and_closing_the_project_removes_them(dock, qtbot):
    project, viewer, w = dock
    w.open_clip("c0")
    nerve, image = w.layers["nerve"], w.layers["image"]
    viewer.layers.remove(nerve)  # the rater deleted the nerve layer in napari's layer list
    viewer.layers.remove(image)
    key(viewer, qtbot, "N")
    new = w.layers["nerve"]
    assert new is not nerve and new in viewer.layers and w.layers["image"] in viewer.layers
    assert viewer.layers.index(w.layers["image"]) < viewer.layers.index(new)  # the clip under the mask
    viewer.layers.selection.active = new
    key(viewer, qtbot, "P")
    drag(viewer, new, [(24, 20), (24, 26)])
    assert w.session.annotation.keyframes() == [0]  # the new layer's paint events are wired

    ours = [w.layers[r] for r in ROLES]
    w.open_project(project.root, "r1")  # closing the project removes the clip's layers
    assert w.layers == {} and not any(lay in viewer.layers for lay in ours)


def test_review_rater_layers_are_a_pool(dock, qtbot):
    project, viewer, w = dock
    for clip_id, raters in (("c0", ("r2", "r3")), ("c1", ("r2",))):
        for i, rater in enumerate(raters):
            ann = ClipAnnotation(clip_id, rater, 8, (48, 64))
            ann.set_mask(0, disk((48, 64), (24, 20 + 10 * i), 5), "drawn")
            project.annotations.save(ann)
    w.open_project(project.root, "boss", review=True)
    w.open_clip("c0")
    first = list(w.layers["raters"])
    assert [lay.name for lay in first] == ["rater r2", "rater r3"] and all(lay.visible for lay in first)
    activate(qtbot, w, "c1")
    assert w.layers["raters"] == first[:1] and first[0].name == "rater r2" and first[0].data[0].any()
    assert first[1] in viewer.layers and not first[1].visible and not first[1].data.any()
    assert [w.pick_combo.itemText(i) for i in range(w.pick_combo.count())] == ["r2"]
    activate(qtbot, w, "c0")
    assert w.layers["raters"] == first and first[1].visible and first[1].data[0].any()


def test_the_next_clip_is_read_ahead_and_used(dock, qtbot):
    project, viewer, w = dock
    key(viewer, qtbot, "N")
    qtbot.waitUntil(lambda: w.prefetch.ready("c1"), timeout=5000)  # decoded while c0 is worked on
    key(viewer, qtbot, "N")
    assert w.session.clip_id == "c1" and "_h5" not in w.session.clip.extra  # the decoded copy
    np.testing.assert_array_equal(np.asarray(w.layers["image"].data[5]), project.open_clip("c1").frame(5))
    assert not w.prefetch.ready("c1")  # handed over, not held twice


def test_a_clip_opened_again_shows_its_corrected_registry_record(dock, qtbot):
    # the dock reads a clip's record once per opening, not per action: a correction by the data
    # manager shows the next time the clip is opened
    project, viewer, w = dock
    activate(qtbot, w, "c0")
    old = dict(project.clip_record("c0"))
    assert f"participant {old['participant']}" in w.clip_label.text()
    project.upsert_clips([{**old, "participant": "p42"}])
    key(viewer, qtbot, "I")  # an action in the open clip: the record it shows is the one read at opening
    assert f"participant {old['participant']}" in w.clip_label.text()
    qtbot.mouseClick(w.open_project_button, Qt.MouseButton.LeftButton)  # the project again, then c0
    settle(5)
    activate(qtbot, w, "c0")
    assert w.session.clip_id == "c0"
    assert "participant p42" in w.clip_label.text()
