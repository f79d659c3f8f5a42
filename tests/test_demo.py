"""``ultramn demo --quick``: the whole pipeline runs and leaves a readable report and its files."""

from napari_ultramn.cli import main as cli_main
from napari_ultramn.demo import STAGES


def test_quick_demo_runs_every_stage_and_writes_the_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli_main(["demo", "--out", str(out), "--quick", "-q"]) == 0
    assert "Open the report" in capsys.readouterr().out
    html = (out / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "data:image/png;base64," in html
    for folder in ("study", "project", "agreement", "dataset", "run"):
        assert (out / folder).is_dir(), folder
    assert (out / "dataset" / "manifest.json").is_file()
    assert html.count("<section") == len(STAGES)
