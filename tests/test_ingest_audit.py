"""Every ingest ends with audit-phi over what it wrote, and says what it found."""

from napari_ultramn.cli import main
from napari_ultramn.phantom.screen_recording import (
    make_screen_recording,
    text_only_screen,
    write_screen_recording,
)


def _mapping(tmp_path, rows):
    path = tmp_path / "map.csv"
    path.write_text("file,patient_id\n" + "".join(f"{f},{p}\n" for f, p in rows))
    return path


def test_cropped_screen_recording_audits_clean(tmp_path, capsys):
    rec = make_screen_recording("convex", seed=3, n_frames=6, size=(240, 320))
    write_screen_recording(tmp_path / "src" / "clip.mp4", rec.frames)
    code = main(
        [
            "ingest",
            str(tmp_path / "src"),
            str(tmp_path / "proj"),
            "-q",
            "--mapping",
            str(_mapping(tmp_path, [("clip.mp4", "MRN0012345")])),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PHI audit of what this ingest wrote: clean" in out


def test_a_screen_kept_whole_with_no_crop_fails_the_audit(tmp_path, capsys):
    write_screen_recording(tmp_path / "src" / "settings.png", text_only_screen(seed=1))
    code = main(
        [
            "ingest",
            str(tmp_path / "src"),
            str(tmp_path / "proj"),
            "-q",
            "--no-crop",
            "--mapping",
            str(_mapping(tmp_path, [("settings.png", "MRN0012345")])),
        ]
    )
    out = capsys.readouterr().out
    assert code == 1, out
    assert "PHI audit of what this ingest wrote: NOT clean" in out and "burned" in out.lower()
