"""View settings (window/level, nerve display) on disk, the window/level maths, cine timing, caliper length."""

import json
import math

import numpy as np
import pytest

from napari_ultramn.annotation import view_settings as vs
from napari_ultramn.annotation.measure import line_length
from napari_ultramn.errors import InputError


def test_settings_round_trip_per_clip_and_rater_and_leave_the_annotation_folder_alone(tmp_path):
    s = vs.ViewSettings((20.0, 180.0), "auto (1-99 %)", "outline")
    path = vs.save_view(tmp_path, "c0", "r1", s)
    assert path == tmp_path / "views" / "c0" / "r1.json"
    assert vs.load_view(tmp_path, "c0", "r1") == s
    assert vs.load_view(tmp_path, "c0", "r2") is None and vs.load_view(tmp_path, "c1", "r1") is None
    assert not (tmp_path / "annotations").exists()  # raters() would read a view file as a rater
    assert [p.name for p in path.parent.iterdir()] == ["r1.json"]  # atomic: no temporary left


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda o: o.update(contrast_limits=[200, 100]), "contrast_limits [200, 100] must be (low, high)"),
        (lambda o: o.update(nerve_display="dotted"), "at nerve_display: 'dotted' is not one of"),
        (lambda o: o.update(rater="r2"), "belongs to clip 'c0' of rater 'r2', not clip 'c0' of rater 'r1'"),
        (lambda o: o.pop("contrast_limits"), "'contrast_limits' is a required property"),
    ],
)
def test_a_bad_view_file_is_one_input_error_naming_it(tmp_path, edit, problem):
    path = vs.save_view(tmp_path, "c0", "r1", vs.ViewSettings((0, 255), None, "filled"))
    obj = json.loads(path.read_text())
    edit(obj)
    path.write_text(json.dumps(obj))
    with pytest.raises(InputError, match="r1.json") as err:
        vs.load_view(tmp_path, "c0", "r1")
    assert problem in str(err.value)


def test_not_json_and_bad_ids_are_refused(tmp_path):
    (tmp_path / "views" / "c0").mkdir(parents=True)
    (tmp_path / "views" / "c0" / "r1.json").write_text("{")
    with pytest.raises(InputError, match="is not valid JSON"):
        vs.load_view(tmp_path, "c0", "r1")
    with pytest.raises(ValueError, match="rater id '../x' is not allowed"):
        vs.save_view(tmp_path, "c0", "../x", vs.ViewSettings())


@pytest.mark.parametrize(
    ("limits", "dx", "dy", "expected"),
    [
        ((0, 255), 0, 0, (0, 255)),
        ((100, 150), 10, 0, (95, 155)),  # right: 10 px of 256 widen the window by 10 grey values
        ((100, 150), 0, 20, (120, 170)),  # down: the level rises (a darker image)
        ((100, 150), -1000, 0, (124.5, 125.5)),  # the window never closes: 1/256 of the range
        ((100, 150), 0, -1000, (-25, 25)),  # the level stays in the data
        ((0, 255), 5000, 0, (-128.5, 383.5)),  # at most twice the range (512 wide)
    ],
)
def test_a_drag_moves_window_and_level(limits, dx, dy, expected):
    assert vs.drag_window(limits, dx, dy, (0.0, 256.0)) == pytest.approx(expected)


def test_window_and_level_are_the_limits_width_and_centre():
    assert vs.limits_to_window((20, 180)) == (160, 100)
    assert vs.window_to_limits(160, 100) == (20, 180)
    assert vs.data_range(np.uint8) == (0, 255) and vs.data_range(np.int16) == (-32768, 32767)
    assert vs.data_range(np.float32, np.array([0.5, 2.0])) == (0.5, 2.0)


def test_presets_use_frames_spread_over_the_clip(rng):
    frames = np.zeros((40, 8, 8), np.uint8)
    frames[:20] = rng.integers(50, 100, (20, 8, 8))
    frames[20:] = rng.integers(100, 150, (20, 8, 8))
    sample = vs.sample_frames(frames, 16)
    assert len(sample) == 16
    lo, hi = vs.preset_limits("auto (1-99 %)", sample, (0, 255))
    assert 50 <= lo < 60 and 140 < hi <= 149  # both halves of the clip count
    assert vs.preset_limits("full range", sample, (0, 255)) == (0, 255)
    assert vs.preset_limits("dark scan (0-50 %)", sample, (0, 255)) == (0, 127.5)
    assert vs.preset_limits("auto (1-99 %)", np.full((2, 3, 3), 7), (0, 255)) == (0, 255)  # flat
    with pytest.raises(ValueError, match="unknown window/level preset 'x'"):
        vs.preset_limits("x", sample, (0, 255))


@pytest.mark.parametrize(
    ("frame_time_ms", "fps", "known"),
    [
        (40.0, 25.0, True),
        (33.3333, 30.0, True),
        (None, vs.DEFAULT_FPS, False),
        (0.0, vs.DEFAULT_FPS, False),
        (float("nan"), vs.DEFAULT_FPS, False),
    ],
)
def test_cine_runs_at_the_clip_rate_or_says_it_assumes_one(frame_time_ms, fps, known):
    got, is_known = vs.cine_fps(frame_time_ms)
    assert got == pytest.approx(fps, rel=1e-4) and is_known == known


def test_cine_loops_the_non_standard_range_around_the_frame_else_the_clip():
    from napari_ultramn.annotation.clip_annotation import PlaneRange

    ranges = [PlaneRange(2, 5, "non_standard"), PlaneRange(6, 9, "transverse_wrist"), PlaneRange(4, 8, "non_standard")]
    assert [vs.cine_default_range(ranges, "non_standard", t, 12) for t in (0, 2, 4, 7, 8, 11)] == [
        (0, 11),
        (2, 4),
        (4, 7),
        (4, 7),
        (0, 11),
        (0, 11),
    ]  # the last range marked wins, as in the file
    assert vs.cine_default_range([], "non_standard", 0, 1) == (0, 0)


def test_cine_loops_over_its_range():
    assert vs.cine_interval_ms(25.0) == 40 and vs.cine_interval_ms(25.0, 2.0) == 20
    assert [vs.next_cine_frame(t, 2, 4) for t in (0, 2, 3, 4, 9)] == [2, 3, 4, 2, 2]


@pytest.mark.parametrize(
    ("spacing", "expected", "unit"),
    [
        ((0.1, 0.1), 0.5, "mm"),
        ((0.1, 0.05), math.hypot(0.3, 0.2), "mm"),
        (None, 5.0, "px"),
    ],
)
def test_a_caliper_is_measured_in_physical_units(spacing, expected, unit):
    length, got_unit = (
        line_length((0, 3, 0), (0, 0, 4), spacing) if spacing == (0.1, 0.1) else line_length((3, 0), (0, 4), spacing)
    )
    assert got_unit == unit and length == pytest.approx(expected)
