"""The simulated annotator of benchmarks/bench_effort.py (issue 14) on one tiny phantom clip."""

import numpy as np
import pytest

from benchmarks.bench_effort import GOOD, polygon_clicks, run_strategy
from napari_ultramn.annotation.session import AnnotationSession
from napari_ultramn.metrics import dice
from napari_ultramn.phantom import generate_clip
from tests.project_factory import phantom_project


@pytest.fixture(scope="module")
def tiny():
    return generate_clip(
        "transverse_forearm", seed=1, n_frames=12, size=(80, 80), degraded_fraction=0.0, out_of_plane_probability=0.0
    )


@pytest.mark.parametrize("strategy", [1, 2, 3, 4])
def test_simulated_annotator_finishes_every_frame_and_counts_its_work(tmp_path, tiny, strategy):
    project = phantom_project(tmp_path / "proj", tiny)
    with AnnotationSession.open(project, "c0", "sim") as s:
        r = run_strategy(strategy, s, tiny.masks, keyframe_every=4)
        ann = s.annotation
    n = tiny.n_frames
    assert len(ann.frames) == n
    for t, fm in ann.frames.items():  # every frame accepted by eye, or drawn (a person's noise)
        assert fm.is_human or dice(fm.mask, tiny.masks[t]) >= GOOD, t
    assert r["drawn"] == n if strategy == 1 else 0 < r["drawn"] < n
    assert r["clicks"] >= r["drawn"] * 3 and r["tool_s"] > 0
    saved = project.annotations.load("c0", "sim")
    assert set(saved.frames) == set(range(n))
    assisted = sum(fm.provenance == "assisted" for fm in saved.frames.values())
    assert (assisted > 0) == (r["assisted"] > 0) and (strategy >= 4 or assisted == 0)


def test_polygon_clicks():
    yy, xx = np.mgrid[:40, :40]
    disk = (yy - 20) ** 2 + (xx - 18) ** 2 <= 64
    assert polygon_clicks(np.zeros((40, 40), bool)) == 1
    assert 6 <= polygon_clicks(disk) <= 30
