"""``ultramn demo --quick``: the whole pipeline runs and leaves a readable report and its files."""

import json

from napari_ultramn.cli import main as cli_main
from napari_ultramn.demo import STAGES


def test_quick_demo_runs_every_stage_and_writes_the_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli_main(["demo", "--out", str(out), "--quick", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "Open the report" in printed and "Demo finished in" in printed
    for name, _ in STAGES:  # the closing summary has a line per stage with its time
        assert any(line.strip().startswith(name) and " s" in line for line in printed.splitlines()), name
    # the quick model trains for seconds: the summary and the report say it is not usable
    assert "NOT usable yet" in printed
    html = (out / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "data:image/png;base64," in html
    assert "is not usable yet" in html
    for folder in ("study", "project", "agreement", "dataset", "run"):
        assert (out / folder).is_dir(), folder
        assert f"href='{folder}/'" in html  # linked relative to report.html
    assert (out / "dataset" / "manifest.json").is_file()
    assert html.count("<section") == len(STAGES)

    # one stage again on the same output folder: it finds the earlier stages' outputs, and the
    # report still holds every stage
    first_run = json.loads((out / "run" / "run.json").read_text())
    assert cli_main(["demo", "--out", str(out), "--quick", "-q", "--stages", "model"]) == 0
    printed = capsys.readouterr().out
    assert [line.split()[0] for line in printed.splitlines()[1:-1]] == ["model"]
    html = (out / "report.html").read_text()
    assert html.count("<section") == len(STAGES)
    assert json.loads((out / "run" / "run.json").read_text())["args"] == first_run["args"]


def test_a_stage_without_its_inputs_names_the_stage_to_run_first(tmp_path, capsys):
    out = tmp_path / "fresh"
    assert cli_main(["demo", "--out", str(out), "--quick", "-q", "--stages", "model"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "has no dataset/ from an earlier demo" in err[0] and "--stages dataset" in err[0]
