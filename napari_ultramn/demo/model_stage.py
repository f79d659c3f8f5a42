"""``ultramn demo`` model stage: train briefly, evaluate on held-out participants, pre-annotate a clip.

Needs ``ctx.paths['dataset']`` (dataset stage) and ``ctx.paths['project']`` (ingest stage); sets
``ctx.paths['run']`` and ``ctx.results['model']`` (evaluation summary per model). Quick settings
train a tiny network for a few steps (seconds); the default trains a small UltraMN for at most
3 minutes on the CPU, enough for a visibly useful model on the phantom, not a converged one.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from napari_ultramn.demo.context import DemoContext
from napari_ultramn.progress import Progress, ProgressGen
from napari_ultramn.report import ReportSection, escape, image_html, table_html

QUICK: dict[str, Any] = {
    "epochs": 1,
    "batch_size": 2,
    "lr": 3e-3,
    "max_minutes": 0.5,
    "max_steps": 4,
    "model_kwargs": {"base_channels": 4, "depth": 2},
}
# bounded by epochs, never by seconds: a slow or busy machine takes longer and ends with the same model
FULL: dict[str, Any] = {
    "epochs": 15,
    "batch_size": 4,
    "lr": 3e-3,
    "max_minutes": None,
    "model_kwargs": {"base_channels": 8, "depth": 3},
}


def demo_window(manifest: dict, wanted: int) -> int:
    """The training window: ``wanted`` frames, or the shortest training clip if that is shorter."""
    lengths = [c["n_frames"] for c in manifest.get("clips", []) if c.get("split") == "train" and c.get("n_frames")]
    return max(1, min([wanted, *lengths]))


def pick_clip(project) -> str:
    """A clip no human has labelled (the realistic case), else the first clip."""
    from napari_ultramn.model.preannotate import human_labelled

    ids = project.clip_ids()
    return next((c for c in ids if not human_labelled(project, c)), ids[0])


def label_next_html(ranking) -> str:
    """The clips no human has labelled yet, most uncertain first (or a sentence saying there are none)."""
    todo = ranking[~ranking["human_labelled"].astype(bool)] if len(ranking) else ranking
    if not len(todo):
        return (
            "<p>Clips to label next: none. Every clip already has a human annotation (the simulated "
            "raters labelled them all); on a real project this table lists the clips no one has "
            "labelled yet, most uncertain first.</p>"
        )
    columns = {
        "rank": "rank",
        "clip_id": "clip",
        "participant": "participant",
        "predicted_plane": "predicted plane",
        "plane_probability": "plane probability",
        "uncertainty": "uncertainty (0-2)",
    }
    table = todo[[c for c in columns if c in todo.columns]].rename(columns=columns).head(10)
    table["rank"] = table["rank"].astype(int)
    return "<p>Clips to label next, most uncertain first:</p>" + table_html(table)


def demo_stage(ctx: DemoContext) -> ProgressGen[ReportSection]:
    from napari_ultramn.model.data import clip_ids, read_manifest
    from napari_ultramn.model.evaluate import evaluate_run, overlay
    from napari_ultramn.model.preannotate import preannotate_project
    from napari_ultramn.model.train import train_run
    from napari_ultramn.project import Project

    dataset = Path(ctx.paths["dataset"])
    run = ctx.out_dir / "run"
    if run.exists():  # a previous demo's run in our own output folder: start afresh
        shutil.rmtree(run)
    settings = dict(QUICK if ctx.quick else FULL)
    window = demo_window(read_manifest(dataset), 8 if ctx.quick else 16)
    summary = yield from train_run(dataset, run, window=window, device="cpu", seed=ctx.seed, **settings)
    ctx.paths["run"] = run
    # quick demos may have too few participants for a test split: say so and use validation
    split = "test" if clip_ids(dataset / "test.h5") else "validation"
    result = yield from evaluate_run(run, dataset, split, device="cpu")
    ctx.results["model"] = result.summary

    project = Project.open(ctx.paths["project"])
    clip_id = pick_clip(project)
    pre = yield from preannotate_project(run, project, clip_ids=[clip_id], device="cpu")
    ann = project.annotations.load(clip_id, "model")
    assert ann is not None  # preannotate_project just wrote it
    masks, _ = ann.mask_stack()
    t = int(np.argmax(masks.reshape(len(masks), -1).sum(1)))
    clip = project.open_clip(clip_id)
    thumb = image_html(
        overlay(clip.frame(t), np.zeros_like(masks[t]), masks[t]),
        f"{clip_id} frame {t}: model proposal (magenta)",
        width=260,
    )
    yield Progress(1, 1, "model stage done")

    s = settings
    net = ", ".join(f"{k} {v}" for k, v in s["model_kwargs"].items())
    held_out = (
        "held-out test participants"
        if split == "test"
        else "validation participants (the quick study has no test split)"
    )
    budget = f"at most {s['max_steps']} steps" if s.get("max_steps") else f"{s['epochs']} epochs"
    html = (
        f"<p>Trained <b>UltraMN</b> ({escape(net)}) on the <a href='dataset/'><code>dataset/</code></a>: "
        f"{summary['epochs_done']} epoch(s), {summary['steps']} steps, {summary['elapsed_s']:.0f} s on the CPU "
        f"(planned: {budget}, window {window} frames); stopped: {escape(summary['stop_reason'])}. "
        f"Best validation score (mean of nerve Dice and plane accuracy) {summary['best_score']:.3f} "
        f"at epoch {summary['best_epoch'] + 1} (epochs count from 1). Run folder "
        f"<a href='run/'><code>run/</code></a>; the evaluation alone: <a href='run/eval/{split}/report.html'>"
        f"<code>run/eval/{split}/report.html</code></a>. Evaluated on the {held_out}.</p>"
        + (result.section.html if result.section else "")
        + f"<h3>Pre-annotation</h3><p>Proposals for clip <code>{escape(clip_id)}</code> written as rater "
        f"'model' (never over a human's annotation).</p>" + label_next_html(pre["ranking"]) + thumb
    )
    return ReportSection("UltraMN model: training, evaluation, pre-annotation", html)
