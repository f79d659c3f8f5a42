"""The researcher's loop: train on what humans have labelled so far, then pre-annotate the rest.

One *round* builds a dataset from the clips a human has labelled (consensus of the human raters,
model proposals never vote), trains UltraMN on it, and writes model proposals (rater 'model') for
every clip no human has labelled, recording how doubtful each one was so the annotator's queue
offers the most doubtful first. Rounds never overwrite each other: ``OUT/round-<k>/dataset`` and
``OUT/round-<k>/model``; ``OUT/loop.json`` says which round is current and how far it got (the
Training widget follows it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from napari_ultramn.annotation.clip_annotation import now_iso
from napari_ultramn.errors import InputError
from napari_ultramn.progress import Progress, ProgressGen
from napari_ultramn.schema import read_json, write_json

LOOP_FILE = "loop.json"
#: no test split: the loop's model is judged by the humans who correct its proposals
LOOP_RATIOS = (0.8, 0.2, 0.0)


def loop_state(out_dir: str | Path) -> dict | None:
    """The current round's record, or None before the first round."""
    path = Path(out_dir) / LOOP_FILE
    return read_json(path, "label_loop") if path.exists() else None


def next_round(out_dir: Path) -> int:
    rounds = [int(p.name.split("-", 1)[1]) for p in out_dir.glob("round-*") if p.name.split("-", 1)[1].isdigit()]
    return max(rounds, default=0) + 1


def split_clips(project) -> tuple[list[str], list[str]]:
    """(clips a human labelled, clips no human labelled), in registry order."""
    from napari_ultramn.model.preannotate import human_labelled

    labelled: list[str] = []
    todo: list[str] = []
    for cid in project.clip_ids():
        (labelled if human_labelled(project, cid) else todo).append(cid)
    return labelled, todo


def label_loop(
    project_root,
    out_dir,
    *,
    model: str = "ultramn",
    epochs: int = 20,
    batch_size: int = 4,
    window: int = 16,
    max_minutes: float | None = None,
    device: str = "auto",
    seed: int = 0,
    size=None,
    min_raters: int = 1,
    model_kwargs: dict | None = None,
    max_steps: int | None = None,
) -> ProgressGen[dict]:
    """Run one round (see module docstring); yields Progress, returns the round's record."""
    from dataset_tools.build import build_dataset
    from napari_ultramn.model.preannotate import preannotate_project
    from napari_ultramn.model.train import train_run
    from napari_ultramn.project import Project

    project = project_root if isinstance(project_root, Project) else Project.open(project_root)
    out_dir = Path(out_dir)
    labelled, todo = split_clips(project)
    participants = {project.clip_record(c).get("participant") for c in labelled}
    if len(participants) < 2:
        raise InputError(
            project.root,
            f"the loop trains on clips a human has labelled, from at least 2 "
            f"participants (one to validate on); so far {len(labelled)} clip(s) of "
            f"{len(participants)} participant(s). Label a few more clips first.",
        )
    k = next_round(out_dir)
    round_dir = out_dir / f"round-{k}"
    record: dict[str, Any] = {
        "format": "ultramn-label-loop",
        "schema_version": 1,
        "project": str(project.root),
        "round": k,
        "stage": "build",
        "started_at": now_iso(),
        "updated_at": now_iso(),
        "labelled_clips": labelled,
        "todo_clips": todo,
        "dataset": str(round_dir / "dataset"),
        "run": str(round_dir / "model"),
    }

    def mark(stage: str, **extra) -> None:
        record.update(stage=stage, updated_at=now_iso(), **extra)
        write_json(out_dir / LOOP_FILE, record, "label_loop")

    round_dir.mkdir(parents=True, exist_ok=True)
    mark("build", message=f"round {k}: building a dataset from {len(labelled)} labelled clip(s)")
    try:
        yield Progress(0, 3, record["message"])
        yield from build_dataset(
            project,
            round_dir / "dataset",
            consensus="majority",
            min_raters=min_raters,
            ratios=LOOP_RATIOS,
            seed=seed,
            size=size,
            min_frames=window,
        )
        mark("train", message=f"round {k}: training {model}")
        yield Progress(1, 3, record["message"])
        summary = yield from train_run(
            round_dir / "dataset",
            round_dir / "model",
            model=model,
            epochs=epochs,
            batch_size=batch_size,
            window=window,
            max_minutes=max_minutes,
            device=device,
            seed=seed,
            model_kwargs=model_kwargs,
            max_steps=max_steps,
        )
        training = {
            key: summary[key]
            for key in ("best_score", "best_epoch", "epochs_done", "steps", "stop_reason", "elapsed_s")
            if key in summary
        }
        mark(
            "preannotate",
            training=training,
            message=f"round {k}: pre-annotating {len(todo)} clip(s) no human has labelled",
        )
        yield Progress(2, 3, record["message"])
        written: list[str] = []
        if todo:
            pre = yield from preannotate_project(round_dir / "model", project, clip_ids=todo, device=device)
            written = list(pre["written"])
        mark(
            "done",
            preannotated=written,
            message=f"round {k} done: trained on {len(labelled)} clip(s), proposals for {len(written)}; "
            "the annotator's queue offers the most doubtful first",
        )
        yield Progress(3, 3, record["message"])
    except GeneratorExit:
        mark("cancelled", message=f"round {k} cancelled during {record['stage']}")
        raise
    except Exception as exc:
        mark("failed", message=f"round {k} failed during {record['stage']}: {exc}")
        raise
    return record
