"""The Dataset widget says why clips were excluded and warns when a split comes out empty."""

import pytest
from qtpy.QtCore import Qt

from napari_ultramn._widgets.dataset import exclusion_summary, split_warning
from tests.project_factory import make_project


def _manifest(clips, participants, ratios=(0.7, 0.15, 0.15)):
    return {
        "split": {"ratios": dict(zip(("train", "validation", "test"), ratios))},
        "files": [
            {"split": s, "clips": c, "participants": p}
            for s, c, p in zip(("train", "validation", "test"), clips, participants)
        ],
    }


def test_reasons_are_counted_by_kind_and_given_whole_when_shared():
    excluded = [{"clip_id": f"c{i}", "reason": f"no consensus: {i % 2} rater(s), need 2"} for i in range(5)]
    excluded += [
        {"clip_id": "s", "reason": "too short for the window: 4 frames < 8"},
        {"clip_id": "u1", "reason": "flagged unusable by rater 'r1'"},
        {"clip_id": "u2", "reason": "flagged unusable by rater 'r1'"},
    ]
    assert exclusion_summary(excluded) == [
        ("no consensus", 5),
        ("flagged unusable by rater 'r1'", 2),
        ("too short for the window: 4 frames < 8", 1),
    ]
    assert exclusion_summary([]) == []


def test_an_empty_split_the_ratios_asked_for_is_named_in_words():
    assert split_warning(_manifest((10, 2, 2), (6, 1, 1))) == ""
    assert split_warning(_manifest((10, 0, 0), (6, 0, 0), ratios=(1, 0, 0))) == ""  # asked for
    text = split_warning(_manifest((1, 0, 0), (1, 0, 0)))
    assert text.startswith(
        "Warning: validation and test are empty although the ratios (0.7 / 0.15 / 0.15) "
        "ask for them: only 1 participant could be used"
    )
    assert "no validation (model choice, early stopping); no held-out test" in text
    assert "test is empty" in split_warning(_manifest((8, 2, 0), (4, 1, 0)))


@pytest.mark.gui
def test_the_widget_shows_reasons_the_clip_list_and_the_warning(make_napari_viewer, qtbot, tmp_path):
    # four participants, but only P000 has two raters on a long enough clip: a 1 / 0 / 0 split
    others = tuple(f"p{p}_c{k}" for p in (1, 2, 3) for k in (0, 1))
    project = make_project(
        tmp_path / "proj",
        n_participants=4,
        n_frames=10,
        raters=("r1", "r2"),
        unannotated=others,
        short={"p0_c1": 5},
        seed=3,
    )
    viewer = make_napari_viewer(show=True)
    _dock, w = viewer.window.add_plugin_dock_widget("napari-ultramn", "Dataset")
    qtbot.waitUntil(w.isVisible)
    w.project_edit.setText(str(project.root))
    w.out_edit.setText(str(tmp_path / "ds"))
    w.min_frames_spin.setValue(8)
    assert not w.excluded_button.isVisible() and not w.warning_label.isVisible()
    qtbot.mouseClick(w.build_button, Qt.MouseButton.LeftButton)  # synchronous in tests
    assert w.status.text().startswith("Built: 1 / 0 / 0 clips"), w.status.text()
    assert w.warning_label.isVisible() and w.warning_label.text().startswith(
        "Warning: validation and test are empty although the ratios (0.7 / 0.15 / 0.15) ask for them: "
        "only 1 participant could be used"
    )
    assert w.excluded_label.text() == (
        "7 clips excluded: 6 × no consensus: 0 rater(s), need 2; 1 × too short for the window: 5 frames < 8"
    )
    assert w.excluded_button.isVisible() and not w.excluded_table.isVisible()
    viewer.window._qt_window.resize(1366, 768)  # a laptop: the dock scrolls, no message is cut short
    qtbot.wait(50)
    for label in (w.warning_label, w.excluded_label, w.status):
        assert label.height() >= label.heightForWidth(label.width()), label.text()
    qtbot.mouseClick(w.excluded_button, Qt.MouseButton.LeftButton)
    assert w.excluded_table.isVisible() and w.excluded_button.text() == "Hide excluded clips"
    rows = {
        w.excluded_table.item(i, 0).text(): w.excluded_table.item(i, 2).text()
        for i in range(w.excluded_table.rowCount())
    }
    assert set(rows) == {*others, "p0_c1"} and rows["p0_c1"] == "too short for the window: 5 frames < 8"
    qtbot.mouseClick(w.excluded_button, Qt.MouseButton.LeftButton)
    assert not w.excluded_table.isVisible()

    w.min_frames_spin.setValue(4)  # rebuild with every clip of P000: still one participant
    w.overwrite_check.setChecked(True)
    qtbot.mouseClick(w.build_button, Qt.MouseButton.LeftButton)
    assert w.status.text().startswith("Built: 2 / 0 / 0 clips"), w.status.text()
    assert w.excluded_label.text() == "6 clips excluded: 6 × no consensus: 0 rater(s), need 2"
