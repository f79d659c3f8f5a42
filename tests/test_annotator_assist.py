"""Smart keyframe mode in the annotator (issue 14): real clicks and keys on napari's canvas."""

import numpy as np
import pytest
from qtpy.QtCore import QPoint, Qt
from qtpy.QtTest import QTest

from napari_ultramn.io.hdf5clip import write_hdf5_clip
from napari_ultramn.metrics import dice
from napari_ultramn.phantom import generate_clip
from tests.annotator_gui import canvas, click, key, open_annotator, settle, to_canvas
from tests.project_factory import make_clip_project

pytestmark = pytest.mark.gui


def tool(layer) -> tuple:
    return str(layer.mode), int(layer.selected_label), int(layer.brush_size)


def names(viewer) -> list[str]:
    return [lay.name for lay in viewer.layers]


@pytest.fixture
def phantom_project(tmp_path):
    """A one-clip project whose frames are a phantom transverse forearm clip (a rimmed nerve)."""
    clip = generate_clip("transverse_forearm", 2, n_frames=4, size=(192, 224))
    project = make_clip_project(tmp_path / "proj", n_clips=1, n_frames=4, shape=(192, 224), spacing_mm=clip.spacing_mm)
    meta = {
        "clip_id": "c0",
        "participant": "p0",
        "plane": project.planes[0],
        "spacing_mm": clip.spacing_mm,
        "spacing_source": "stored",
        "source_sha256": f"{0:064x}",
    }
    write_hdf5_clip(project.root / "clips" / "c0.h5", clip.frames, meta)
    return project, clip


def test_click_enter_saves_an_assisted_keyframe_and_leaves_the_tool_alone(make_napari_viewer, qtbot, phantom_project):
    project, clip = phantom_project
    viewer, w = open_annotator(make_napari_viewer, project, "r1", "c0")
    nerve = w.layers["nerve"]
    nerve.mode = "paint"
    nerve.brush_size = 5
    before = tool(nerve)
    viewer.dims.set_current_step(0, 1)
    truth = clip.masks[1]
    centre = np.argwhere(truth).mean(0)

    key(viewer, qtbot, "Shift-S")
    assert w.assist_active and w.assist_button.isChecked()
    click(viewer, nerve, *centre)  # napari would paint here: the mode takes the click instead
    assert not nerve.data[1].any()  # nothing painted
    assert w.assist_mask is not None and dice(w.assist_mask, truth) > 0.6
    assert "smart keyframe proposal" in names(viewer)
    assert viewer.layers.selection.active.name == "nerve"  # (the widget holds napari's proxies)
    # a Shift-click outside the nerve only ever shrinks the proposal
    outside = (int(centre[0]), int(np.nonzero(truth[int(centre[0])])[0].max()) + 12)
    p = to_canvas(viewer, nerve, *outside)
    QTest.mouseClick(canvas(viewer), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, p)
    settle(3)
    assert w.assist_negative and not w.assist_mask[outside]
    proposal = w.assist_mask.copy()

    qtbot.keyClick(canvas(viewer), Qt.Key.Key_Return)
    settle(5)
    fm = w.session.annotation.frames[1]
    assert fm.provenance == "assisted" and np.array_equal(fm.mask, proposal)
    assert not w.assist_active and "smart keyframe proposal" not in names(viewer)
    assert tool(nerve) == before and viewer.layers.selection.active.name == "nerve"  # napari's tool, label kept
    assert set(np.unique(nerve.data[1])) == {0, 4}  # the layer shows it as assisted

    # the brush refines it: a real stroke; the frame stays 'assisted' with the change measured
    r, c = np.argwhere(proposal)[0]
    QTest.mouseClick(
        canvas(viewer),
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        to_canvas(viewer, nerve, r - 4, c) + QPoint(0, 0),
    )
    settle(5)
    fm = w.session.annotation.frames[1]
    assert fm.provenance == "assisted" and fm.edited_fraction > 0

    # Escape drops a proposal without saving anything
    viewer.dims.set_current_step(0, 2)
    key(viewer, qtbot, "Shift-S")
    click(viewer, nerve, *np.argwhere(clip.masks[2]).mean(0))
    assert w.assist_mask is not None
    qtbot.keyClick(canvas(viewer), Qt.Key.Key_Escape)
    settle(3)
    assert w.assist_mask is None and 2 not in w.session.annotation.frames and w.assist_active
    key(viewer, qtbot, "Shift-S")
    assert not w.assist_active and tool(nerve) == before

    w.session.flush()
    saved = project.annotations.load("c0", "r1")
    assert saved.frames[1].provenance == "assisted" and sorted(saved.frames) == [1]
    w.close_session()


def test_the_strip_and_the_layer_have_a_colour_and_value_for_every_provenance():
    from napari_ultramn._widgets.annotator_layers import _VALUE
    from napari_ultramn._widgets.annotator_panels import TRACK_COLOURS
    from napari_ultramn.annotation.clip_annotation import PROVENANCES

    assert len(TRACK_COLOURS) == len(PROVENANCES) + 1  # the last one: unannotated
    assert set(_VALUE) == set(PROVENANCES) and _VALUE["assisted"] not in (_VALUE["drawn"], _VALUE["model"])
    assert tuple(TRACK_COLOURS[PROVENANCES.index("assisted")]) not in {tuple(c) for c in TRACK_COLOURS[:-2]}
