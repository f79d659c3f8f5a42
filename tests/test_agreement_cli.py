"""``ultramn agreement PROJECT --out DIR``."""

from dataset_tools.agreement.synthetic import make_synthetic_project
from napari_ultramn.cli import main


def test_cli_writes_report_and_prints_summary(tmp_path, capsys):
    project, _ = make_synthetic_project(tmp_path, n_participants=2, clips_per_participant=1, n_frames=5)
    out = tmp_path / "out"
    assert main(["agreement", str(project.root), "--out", str(out), "--bootstrap", "10", "--seed", "3"]) == 0
    assert (out / "report.html").is_file() and (out / "frame_pairs.csv").is_file()
    printed = capsys.readouterr().out
    assert f"report: {out / 'report.html'}" in printed
    assert "gwet_ac1" in printed and "ICC(2,1)" in printed and "hd95" in printed


def test_cli_errors_are_one_line(tmp_path, capsys):
    project, _ = make_synthetic_project(tmp_path, n_participants=1, clips_per_participant=1, n_frames=4, raters=("r1",))
    assert main(["agreement", str(project.root), "--out", str(tmp_path / "o"), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ultramn agreement: error:") and "at least two raters" in err
    assert main(["agreement", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    assert "is not an UltraMN project" in capsys.readouterr().err
    assert main(["agreement", str(project.root), "--out", str(tmp_path / "o"), "--bootstrap", "-1"]) == 2
    assert "--bootstrap must be 0 or more" in capsys.readouterr().err
