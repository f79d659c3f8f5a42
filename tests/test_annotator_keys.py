"""The annotator's keys never change napari's tool: real key events on the canvas, every binding."""

import pytest

from napari_ultramn._widgets import annotator_keys as keys
from tests.annotator_gui import key
from tests.project_factory import make_clip_project

pytestmark = pytest.mark.gui

_NAV = ("key_next_clip", "key_previous_clip")


def click(viewer, qtbot, spelling: str) -> None:
    key(viewer, qtbot, spelling)


def tool(layer) -> tuple:
    return str(layer.mode), int(layer.selected_label), int(layer.brush_size)


@pytest.fixture
def opened(make_napari_viewer, tmp_path, monkeypatch):
    from qtpy.QtWidgets import QMessageBox

    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.No)
    project = make_clip_project(tmp_path / "proj", n_clips=3, n_frames=6, shape=(32, 40))
    viewer = make_napari_viewer()
    _dock, w = viewer.window.add_plugin_dock_widget("napari-ultramn", "Annotator")
    w.open_project(project.root, "r1")
    w.open_clip("c0")
    yield viewer, w
    w.close_session()


def test_no_plugin_key_changes_the_labels_tool_even_after_holding_p_or_with_shapes_active(opened, qtbot):
    from napari.settings import get_settings

    viewer, w = opened
    nerve, outline = w.layers["nerve"], w.layers["outline"]
    nerve.paint((0, 16, 20), 1)  # a keyframe, so propagate and interpolate have something to do
    nerve.mode = "fill"
    click(viewer, qtbot, "Z")  # napari: pan/zoom, remembering 'fill' under the bare key Z
    click(viewer, qtbot, "P")  # napari: paint, remembering 'pan_zoom' under the bare key P
    nerve.brush_size = 7
    before = tool(nerve)
    assert before == ("paint", 1, 7)
    settings = get_settings().application
    delay, settings.hold_button_delay = settings.hold_button_delay, 0.0  # any release is "held" now
    try:
        table = [(b, a) for b, a in keys.bindings(w.plane_labels) if b.action not in _NAV]
        for b, _args in table:
            click(viewer, qtbot, b.key)
            assert tool(nerve) == before, f"{b.key} ({b.text}) changed the labels tool"
        assert w.session.annotation.clip_plane == w.plane_labels[len(keys.plane_bindings(w.plane_labels)) - 1]
        viewer.layers.selection.active = outline
        shapes_mode = str(outline.mode)
        for b, _args in table:
            click(viewer, qtbot, b.key)
            assert tool(nerve) == before and str(outline.mode) == shapes_mode, f"{b.key} with Shapes active"
        for spelling in ("N", "Shift-N"):  # a new clip keeps the rater's tool
            click(viewer, qtbot, spelling)
            assert tool(w.layers["nerve"]) == before, spelling
    finally:
        settings.hold_button_delay = delay
    click(viewer, qtbot, "F1")
    assert w.session.annotation.clip_plane == w.plane_labels[0]  # the keys did act


def test_closing_the_dock_leaves_napari_bindings_as_they_were(make_napari_viewer, tmp_path, qtbot):
    from napari.layers import Image, Labels, Shapes

    project = make_clip_project(tmp_path / "proj", n_clips=1, n_frames=4, shape=(32, 40))
    viewer = make_napari_viewer()

    def snapshot():
        return [dict(c.class_keymap) for c in (Image, Labels, Shapes)] + [dict(viewer.keymap)]

    before = snapshot()
    _dock, w = viewer.window.add_plugin_dock_widget("napari-ultramn", "Annotator")
    w.open_project(project.root, "r1")
    w.open_clip("c0")
    nerve_keymap = dict(w.layers["nerve"].keymap)
    assert snapshot() == before and nerve_keymap == {}
    viewer.window.remove_dock_widget(w)
    assert snapshot() == before and w.session is None
    click(viewer, qtbot, "F1")  # no longer the plugin's: nothing happens, nothing raised
    assert w.session is None and w._keys._targets == []


@pytest.mark.parametrize(
    ("key", "napari"),
    [
        ("Shift-P", "napari's Shapes Shift+P (napari:activate_add_polygon_lasso_mode)"),
        ("Alt-P", "napari's menu bar Alt+P"),
        ("Control-Z", "napari's Labels Ctrl+Z"),
        ("A", "napari's Shapes A (napari:select_"),  # select_all_shapes, or select_shapes_in_slice since 0.6.x
    ],
)
def test_a_key_napari_uses_is_refused_at_bind_time_naming_both(make_napari_viewer, monkeypatch, key, napari):
    viewer = make_napari_viewer()
    monkeypatch.setattr(keys, "KEYS", (keys.Binding(key, "undo", "my action"),))
    with pytest.raises(keys.KeyClash, match=f"plugin key {key} \\(my action\\) clashes with ") as err:
        keys.check(["transverse_wrist", "non_standard"], viewer)
    assert napari in str(err.value)


def test_the_key_list_names_napari_tool_keys_and_has_no_duplicates(make_napari_viewer):
    viewer = make_napari_viewer()
    keys.check(["a", "b", "c", "non_standard"], viewer)  # the shipped table passes
    text = keys.help_text(["a", "b", "non_standard"])
    assert "F1  plane a" in text and "F2  plane b" in text and "F3" not in text
    assert "P / E / F  paint / erase / fill (napari)" in text and "[ / ]  brush smaller / larger (napari)" in text


def test_typing_in_the_dock_never_reaches_napari_and_plugin_keys_work_from_the_dock(opened, qtbot):
    from napari.settings import get_settings
    from qtpy.QtCore import Qt

    viewer, w = opened
    nerve = w.layers["nerve"]
    nerve.paint((0, 16, 20), 1)
    nerve.paint((4, 16, 20), 1)
    viewer.dims.set_current_step(0, 0)
    click(viewer, qtbot, "P")  # napari: paint, remembering pan/zoom under the bare key P
    settings = get_settings().application
    delay, settings.hold_button_delay = settings.hold_button_delay, 0.0
    try:
        w.comment_edit.setFocus()
        qtbot.keyClicks(w.comment_edit, "probe slipped, zoom")  # the releases of p and z went to napari
        assert str(nerve.mode) == "paint" and w.comment_edit.text() == "probe slipped, zoom"
        qtbot.keyClick(w.interpolate_button, Qt.Key.Key_K)  # a plugin key with a button focused
        assert viewer.dims.current_step[0] == 4 and str(nerve.mode) == "paint"
    finally:
        settings.hold_button_delay = delay
