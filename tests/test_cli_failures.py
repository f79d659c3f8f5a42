"""Commands that cannot run here say why in one line (exit 2), and what to do about it."""

import importlib.util

import pytest

from napari_ultramn.cli import main as cli_main
from napari_ultramn.cli.gui_check import gui_problem
from napari_ultramn.progress import PlainProgress, Progress


@pytest.mark.parametrize(
    ("env", "platform", "xcb_cursor", "expected"),
    [
        ({}, "linux", "libxcb-cursor.so.0", "DISPLAY is not set"),
        ({"DISPLAY": ":0"}, "linux", None, "libxcb-cursor0"),
        ({"DISPLAY": ":0"}, "linux", "libxcb-cursor.so.0", None),
        ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", None, None),
        ({"QT_QPA_PLATFORM": "offscreen"}, "linux", None, None),
        ({}, "darwin", None, None),
    ],
)
def test_gui_problem_names_the_missing_piece(monkeypatch, env, platform, xcb_cursor, expected):
    monkeypatch.setattr("ctypes.util.find_library", lambda name: xcb_cursor if name == "xcb-cursor" else "x")
    problem = gui_problem(env, platform)
    if expected is None:
        assert problem is None
    else:
        assert expected in problem


def test_gui_problem_without_a_qt_binding_names_the_gui_extra(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    assert "pip install 'napari-ultramn[gui]'" in gui_problem({"DISPLAY": ":0"}, "linux")


def test_annotate_without_a_display_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    from tests.project_factory import make_project

    project = make_project(tmp_path / "project", n_participants=1, clips_per_participant=1, raters=())
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    assert cli_main(["annotate", str(project.root), "--rater", "ann"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no display" in err[0] and "xvfb-run" in err[0]


def test_onnx_export_without_onnx_names_the_export_extra(tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in ("onnx", "onnxruntime") else real(name, *a)
    )
    code = cli_main(["export-model", str(tmp_path / "run"), "--format", "onnx", "--out", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "pip install 'napari-ultramn[export]'" in err[0]
    assert not (tmp_path / "m.onnx").exists()


def test_plain_progress_prints_a_line_per_stage_and_at_most_one_per_interval():
    now = [0.0]
    lines = []
    plain = PlainProgress("demo", None, every_s=10, clock=lambda: now[0])
    for t, done, msg in [
        (0, 0, "phantom: start"),
        (1, 50, "phantom: clip 2"),
        (3, 100, "ingest: a"),
        (5, 200, "ingest: b"),
        (16, 500, "ingest: c"),
        (17, 1000, "report: done"),
    ]:
        now[0] = t
        lines.append(plain.line(Progress(done, 1000, msg)))
    shown = [line for line in lines if line]
    assert [line.split("] ", 1)[1] for line in shown] == ["phantom: start", "ingest: a", "ingest: c", "report: done"]
    assert "50%" in shown[2] and "0:16 left" in shown[2]  # time-based: 16 s for half, 16 s to go


def test_library_warnings_are_silenced_on_the_command_line_but_ours_show(monkeypatch):
    import warnings

    from napari_ultramn.cli import library_warnings_silenced

    monkeypatch.delenv("ULTRAMN_WARNINGS", raising=False)
    monkeypatch.setattr("sys.warnoptions", [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with library_warnings_silenced():
            warnings.warn_explicit("tracer note", UserWarning, "x.py", 1, module="torch.onnx.utils")
            warnings.warn_explicit("header quirk", UserWarning, "y.py", 1, module="pydicom.valuerep")
            warnings.warn("old API", DeprecationWarning, stacklevel=1)
            warnings.warn_explicit("clip has no calibration", UserWarning, "z.py", 1, module="napari_ultramn.io.dicom")
    assert [str(w.message) for w in caught] == ["clip has no calibration"]
    monkeypatch.setenv("ULTRAMN_WARNINGS", "1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with library_warnings_silenced():
            warnings.warn_explicit("tracer note", UserWarning, "x.py", 1, module="torch.onnx.utils")
    assert len(caught) == 1
