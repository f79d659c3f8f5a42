"""The project agreement report: tidy CSVs, self-contained HTML, bad input with clear messages."""

import shutil

import numpy as np
import pandas as pd
import pytest

from dataset_tools.agreement.project_report import agreement_report
from dataset_tools.agreement.synthetic import make_synthetic_project
from napari_ultramn.annotation import ClipAnnotation
from napari_ultramn.progress import Progress, run_collecting, run_to_end
from napari_ultramn.report import ReportSection


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("agreement")
    project, _ = make_synthetic_project(
        root, n_participants=4, clips_per_participant=2, n_frames=8, uncalibrated=(1,), seed=1
    )
    # simulated raters copy the ground truth's quality ('ok'); give the grade something to agree on
    for cid, rater, grade in (
        ("P000_c0", "r2", "poor"),
        ("P001_c1", "r3", "unusable"),
        ("P002_c0", "r1", "poor"),
        ("P002_c0", "r2", "poor"),
        ("P003_c1", "r3", "poor"),
    ):
        ann = project.annotations.load(cid, rater)
        ann.quality = grade
        project.annotations.save(ann)
    progress, result = run_collecting(agreement_report(project, root / "out", n_boot=30, seed=0))
    return project, result, progress


def test_files_and_rows(report):
    project, result, progress = report
    out = result.out_dir
    for name in (
        "frame_pairs",
        "boundary_by_pair",
        "boundary_by_clip",
        "boundary_by_participant",
        "plane_overall",
        "plane_pairwise",
        "plane_per_label",
        "plane_confusion",
        "area_icc",
        "bland_altman",
        "worst_frames",
        "summary",
        "quality_overall",
        "quality_pairwise",
    ):
        assert (out / f"{name}.csv").is_file(), name
    pairs = pd.read_csv(out / "frame_pairs.csv")
    expected = 0
    for cid in project.clip_ids():
        anns = project.annotations.load_all(cid)
        names = sorted(anns)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                expected += len(set(anns[a].frames) & set(anns[b].frames))
    assert len(pairs) == expected
    assert set(pairs["pair"]) == {"r1-r2", "r1-r3", "r2-r3"}
    assert all(isinstance(p, Progress) for p in progress) and progress[-1].done == progress[-1].total


def test_no_silent_nan_in_summary(report):
    _, result, _ = report
    summary = result.summary()
    mm = summary[summary["unit"].isin(["", "mm", "mm2"])]
    assert mm["value"].notna().all()
    assert {"ICC(1,1)", "ICC(2,1)", "ICC(3,1)", "ICC(1,k)", "ICC(2,k)", "ICC(3,k)"} <= set(summary["coefficient"])
    quality = summary[summary["what"] == "quality grade (ordinal)"]
    assert len(quality) == 1 + 3 * 2  # ordinal alpha + linear and quadratic kappa per rater pair
    assert (quality["ci_low"] <= quality["value"] + 1e-12).all()
    icc = result.stats["area_icc"].query("unit == 'mm2'").set_index("form")
    assert icc.loc["ICC(2,1)", "ci_method"].startswith("generalized")
    assert {"ci_low_F", "ci_low_boot_participants"} <= set(icc.columns)
    assert "Image-quality grade (ordinal)" in result.report_path.read_text()
    calibrated = result.stats["boundary_by_pair"].query("unit == 'mm'")
    assert (calibrated["ci_low"] <= calibrated["mean"] + 1e-12).all()


def test_uncalibrated_clip_in_pixels(report):
    _, result, _ = report
    pairs = result.tables.frame_pairs
    assert set(pairs.loc[pairs["clip_id"] == "P000_c1", "unit"]) == {"px"}
    assert any("no pixel calibration (P000_c1)" in n for n in result.notes)
    html = result.report_path.read_text()
    assert "no pixel calibration" in html and "px" in html


def test_html_self_contained(report):
    _, result, _ = report
    html = result.report_path.read_text()
    assert html.count("data:image/png;base64") >= 4  # kappa, Dice, Bland-Altman, thumbnails
    assert 'src="http' not in html and "<script src" not in html
    assert "MONAI" in html and "Shrout" in html
    section = result.section()
    assert isinstance(section, ReportSection) and "Inter-rater agreement" == section.title


def test_seeded_bootstrap(report, tmp_path):
    project, result, _ = report
    again = run_to_end(agreement_report(project, tmp_path, n_boot=30, seed=0))
    pd.testing.assert_frame_equal(again.summary(), result.summary())


def test_worst_frames_are_lowest_dice(report):
    _, result, _ = report
    worst = result.worst_frames(5)
    pairs = result.tables.frame_pairs
    assert worst["dice"].iloc[0] == pytest.approx(pairs["dice"].min())


def single_clip_project(tmp_path, raters=("r1",)):
    return make_synthetic_project(tmp_path, n_participants=2, clips_per_participant=1, n_frames=4, raters=raters)[0]


def test_one_rater(tmp_path):
    project = single_clip_project(tmp_path)
    with pytest.raises(ValueError, match=r"at least two raters; found only 'r1' \(2 clip\(s\)\)"):
        run_to_end(agreement_report(project, tmp_path / "out"))


def test_disjoint_raters(tmp_path):
    project = single_clip_project(tmp_path, raters=("r1", "r2"))
    c0, c1 = project.clip_ids()
    shutil.rmtree(project.annotations.root / c0)  # r1, r2 only on c1 ...
    (project.annotations.path(c1, "r2")).unlink()  # ... now r1 on c1 only
    ann = project.annotations.load(c1, "r1")
    ann.clip_id, ann.rater = c0, "r2"
    project.annotations.save(ann)  # and r2 on c0 only
    with pytest.raises(ValueError, match="raters labelled disjoint clips: no clip is annotated by two raters"):
        run_to_end(agreement_report(project, tmp_path / "out"))


def test_mismatched_mask_shape(tmp_path):
    project = single_clip_project(tmp_path, raters=("r1", "r2"))
    cid = project.clip_ids()[0]
    bad = ClipAnnotation(cid, "r3", 4, (10, 12))
    bad.set_mask(0, np.ones((10, 12), bool))
    project.annotations.save(bad)
    with pytest.raises(ValueError, match=r"r3.json: annotation of 4 frames of 10x12 does not match clip"):
        run_to_end(agreement_report(project, tmp_path / "out"))


def test_open_by_path_and_labels_only(tmp_path):
    project = single_clip_project(tmp_path, raters=("r1", "r2"))
    for cid in project.clip_ids():
        for rater in ("r1", "r2"):
            ann = project.annotations.load(cid, rater)
            ann.frames = {}
            project.annotations.save(ann)
    result = run_to_end(agreement_report(project.root, tmp_path / "out", n_boot=5))
    assert "boundary_by_pair" not in result.stats
    assert any("boundary and area agreement are not reported" in n for n in result.notes)
    assert result.report_path.is_file()


def test_report_reader_is_the_store_and_rejects_bad_run_lengths(tmp_path):
    import json

    from dataset_tools.agreement.tables import read_annotation

    project = single_clip_project(tmp_path, raters=("r1", "r2"))
    cid = project.clip_ids()[0]
    fast, slow = read_annotation(project, cid, "r1"), project.annotations.load(cid, "r1")
    np.testing.assert_array_equal(fast.mask_stack()[0], slow.mask_stack()[0])
    assert fast.frame_planes() == slow.frame_planes()
    path = project.annotations.path(cid, "r1")
    obj = json.loads(path.read_text())
    first = next(iter(obj["frames"]))
    obj["frames"][first]["rle"][0] = 1.5
    path.write_text(json.dumps(obj))
    with pytest.raises(ValueError, match=f"r1.json: does not match schema 'annotation' at frames/{first}/rle"):
        read_annotation(project, cid, "r1")
    obj["frames"][first]["provenance"] = "guessed"
    path.write_text(json.dumps(obj))
    with pytest.raises(ValueError, match="r1.json: does not match schema 'annotation'"):
        read_annotation(project, cid, "r1")


def test_one_empty_frames_are_counted_not_averaged(tmp_path):
    project = single_clip_project(tmp_path, raters=("r1", "r2"))
    for cid in project.clip_ids():
        ann = project.annotations.load(cid, "r2")
        for t in (0, 1):
            ann.set_mask(t, np.zeros(ann.frame_shape, bool), "drawn")
        project.annotations.save(ann)
    result = run_to_end(agreement_report(project, tmp_path / "out", n_boot=5))
    pairs = result.tables.frame_pairs
    assert (pairs["empty"] == "one").sum() == 4
    hd95 = result.summary().query("coefficient == 'hd95'").iloc[0]
    assert np.isfinite(hd95["value"]) and "4 frame(s) with one mask empty" in hd95["note"]
    bp = result.stats["boundary_by_pair"].query("pair == 'all' and metric == 'hd95'").iloc[0]
    assert bp["n_one_empty"] == 4 and bp["n_frames"] == len(pairs) - 4
