"""Demo stage: build the participant-split dataset from the demo project, then validate it."""

from __future__ import annotations

from collections import Counter
from typing import Any

from napari_ultramn.demo.context import DemoContext
from napari_ultramn.progress import Progress, ProgressGen
from napari_ultramn.report import ReportSection, escape, table_html


def choose_labels(project) -> tuple[str | None, str | None]:
    """``(consensus, rater)``: majority when some clip has two raters, else the busiest rater."""
    raters: Counter[str] = Counter()
    multi = False
    for clip_id in project.annotations.clip_ids():
        names = project.annotations.raters(clip_id)
        raters.update(names)
        multi = multi or len(names) >= 2
    if multi:
        try:
            from dataset_tools import consensus  # noqa: F401
        except ImportError:
            multi = False
    if multi or not raters:
        return "majority", None
    return None, raters.most_common(1)[0][0]


def demo_stage(ctx: DemoContext) -> ProgressGen[ReportSection]:
    from dataset_tools.build import build_dataset
    from dataset_tools.dataset_summary import counts_table, manifest_summary
    from dataset_tools.validate import validate_dataset
    from napari_ultramn.errors import InputError
    from napari_ultramn.project import Project

    project = Project.open(ctx.paths["project"])
    out = ctx.out_dir / "dataset"
    size = (64, 64) if ctx.quick else (128, 128)
    shortest = min((r["n_frames"] for r in project.clips()), default=1)
    # the model's window is 16 frames (8 quick); never exclude the phantom's clips for length alone
    min_frames = max(1, min(8 if ctx.quick else 16, shortest))
    consensus, rater = choose_labels(project)
    opts: dict[str, Any] = dict(size=size, seed=ctx.seed, min_frames=min_frames, overwrite=True)
    try:
        manifest = yield from build_dataset(project, out, consensus=consensus, rater=rater, **opts)
    except InputError:
        if rater is not None:
            raise
        # no clip reached a consensus (e.g. one rater per clip): fall back to one rater
        consensus, rater = (
            None,
            Counter(r for c in project.annotations.clip_ids() for r in project.annotations.raters(c)).most_common(1)[0][
                0
            ],
        )
        manifest = yield from build_dataset(project, out, rater=rater, **opts)
    ctx.paths["dataset"] = out
    ctx.results["dataset_manifest"] = manifest
    problems = yield from validate_dataset(out, fingerprints=not ctx.quick)
    yield Progress(1, 1, f"dataset built ({len(problems)} validation problem(s))")
    s = manifest_summary(manifest)
    summary = (
        f"<p>Built <code>{escape(out)}</code> from <code>{escape(project.root)}</code> with labels "
        f"from <b>{escape(s['labels'])}</b>, frames resampled to {size[0]} x {size[1]} pixels, "
        f"split by participant (seed {s['seed']}, ratios {s['ratios']['train']} / "
        f"{s['ratios']['validation']} / {s['ratios']['test']}): {s.get('train_clips', 0)} / "
        f"{s.get('validation_clips', 0)} / {s.get('test_clips', 0)} clips from "
        f"{s.get('train_participants', 0)} / {s.get('validation_participants', 0)} / "
        f"{s.get('test_participants', 0)} participants (train / validation / test), "
        f"{s['frames']} frames; {s['excluded']} clip(s) excluded.</p>"
    )
    checks = (
        "<p class='good'>validate-dataset: no problems (checksums, shapes, label ranges, "
        "no participant or source file in two splits).</p>"
        if not problems
        else "<p class='bad'>validate-dataset found problems:</p><ul>"
        + "".join(f"<li>{escape(p)}</li>" for p in problems)
        + "</ul>"
    )
    excluded = ""
    if manifest["excluded"]:
        import pandas as pd

        excluded = "<h3>Excluded clips</h3>" + table_html(pd.DataFrame(manifest["excluded"]))
    html = summary + checks + "<h3>Counts per split, plane and side</h3>" + table_html(counts_table(out)) + excluded
    return ReportSection("Participant-split dataset", html)
