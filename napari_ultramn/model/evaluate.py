"""Evaluate a trained run on a dataset split, optionally beside the two baselines trained alike.

Metrics (all on the split's clips, whole clips run in windows by ``checkpoint.predict_clip``):

- planes: per-frame accuracy, macro-F1 (over classes present in truth or prediction), confusion
  matrix (rows = truth), clip-plane accuracy; frames labelled -1 (unknown) are skipped.
- nerve: per annotated frame Dice, IoU, HD95 in mm (stored spacing) and px, and the absolute
  cross-sectional-area error in mm^2, from :mod:`napari_ultramn.metrics` (MONAI's boundary
  definitions) with the agreement report's empty-mask convention: both empty -> Dice 1, HD95 0
  (a correct "no nerve here"); one empty -> Dice 0, HD95 undefined (NaN), the frame flagged
  ``empty='one'`` and counted (``n_one_empty``), never averaged in. Uncalibrated clips get NaN in
  the mm columns and keep ``hd95_px``. Per clip = mean over its annotated frames; per participant
  and per image-quality grade = mean over clips (each clip counts once, however long).

``--baselines`` trains the per-frame 2D U-Net and the model without temporal convolutions with the
run's own arguments (same epochs, batch, window, learning rate, seed and time budget) on the same
dataset into ``RUN_DIR/baselines/<name>/``, then reports all models side by side. A finished
baseline run is reused, not retrained.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write_json, atomic_write_text
from ..progress import Progress, ProgressGen, relay
from ..report import ReportSection, escape, image_html, table_html
from ..vocabulary import BASELINE_MODELS
from . import data
from .checkpoint import load_checkpoint, model_from_checkpoint, predict_clip

BASELINES = BASELINE_MODELS
SEG_COLUMNS = ("dice", "iou", "hd95_mm", "csa_error_mm2")


@dataclass
class EvalResult:
    """Summaries per model name, tables (DataFrames) per '<model>/<table>', where files went."""

    summary: dict[str, dict]
    tables: dict[str, Any] = field(default_factory=dict)  # pandas DataFrames
    out_dir: Path | None = None
    section: ReportSection | None = None


def prediction_masks(pred: dict, threshold: float = 0.5) -> np.ndarray:
    """``(T, H, W) bool`` nerve masks: pixel probability and the frame's presence both > threshold."""
    return (pred["nerve_prob"] > threshold) & (pred["presence_prob"] > threshold)[:, None, None]


def frame_metrics(pred: np.ndarray, gt: np.ndarray, spacing_mm) -> dict[str, np.ndarray]:
    """Dice, IoU, HD95 (mm and px), CSA error (mm^2) and ``empty`` per frame of ``(N, H, W)`` masks.

    Dice, IoU and HD95 are :func:`napari_ultramn.metrics.frame_metrics`, the functions and the
    empty-mask convention the agreement report uses: both empty -> Dice 1, HD95 0; one empty ->
    Dice 0, HD95 NaN with ``empty == 'one'`` (counted separately, left out of the HD95 means).
    """
    from ..metrics import frame_metrics as pair_frames

    px = pair_frames(pred, gt)
    a, b = pred.reshape(len(pred), -1).sum(1).astype(float), gt.reshape(len(gt), -1).sum(1).astype(float)
    out = {"dice": px["dice"], "iou": px["iou"], "hd95_px": px["hd95"], "empty": px["empty"]}
    if spacing_mm is None:
        out["hd95_mm"] = np.full(len(pred), np.nan)
        out["csa_error_mm2"] = np.full(len(pred), np.nan)
    else:
        out["hd95_mm"] = pair_frames(pred, gt, spacing_mm=tuple(spacing_mm))["hd95"]
        out["csa_error_mm2"] = np.abs(a - b) * float(spacing_mm[0]) * float(spacing_mm[1])
    return out


def plane_metrics(truth: np.ndarray, pred: np.ndarray, labels: list[str]) -> tuple[dict, object]:
    """Accuracy, macro-F1 and the confusion matrix (DataFrame, rows = truth) over known frames."""
    import pandas as pd

    known = truth >= 0
    t, p = truth[known], pred[known]
    cm = np.zeros((len(labels), len(labels)), dtype=int)
    np.add.at(cm, (t, p), 1)
    tp = np.diag(cm).astype(float)
    fp, fn = cm.sum(0) - tp, cm.sum(1) - tp
    present = (cm.sum(0) + cm.sum(1)) > 0
    f1 = np.where(present, 2 * tp / np.maximum(2 * tp + fp + fn, 1), np.nan)
    summary = {
        "plane_accuracy": float((t == p).mean()) if len(t) else float("nan"),
        "plane_macro_f1": float(np.nanmean(f1)) if present.any() else float("nan"),
        "n_plane_frames": int(len(t)),
    }
    frame = pd.DataFrame(cm, columns=[f"pred:{n}" for n in labels])
    frame.insert(0, "truth", labels)
    return summary, frame


def _restate_baseline(name: str, p: Progress) -> Progress:
    return Progress(p.done, p.total, f"baseline {name}: {p.message}", p.metrics)


def evaluate_checkpoint(
    run, dataset_dir, split: str = "test", device: str = "cpu", name: str | None = None
) -> ProgressGen[dict]:
    """Run one checkpoint over a split; returns {'summary', 'frames', 'clips', 'confusion', 'example'}."""
    import pandas as pd

    model, ckpt = model_from_checkpoint(load_checkpoint(run))
    name = name or ckpt["model_config"].get("name", "model")
    labels = list(ckpt["plane_labels"])
    h5 = data.split_path(dataset_dir, split)
    data_labels = data.plane_labels(data.read_manifest(dataset_dir))
    if data_labels != labels:
        from ..errors import InputError

        raise InputError(dataset_dir, f"vocabulary {data_labels} differs from the model's {labels}")
    ids = data.clip_ids(h5)
    rows, clip_rows, truth, guess, example = [], [], [], [], None
    for i, clip in enumerate(data.iter_clips(h5)):
        yield Progress(i, len(ids), f"{name}: {clip['clip_id']}")
        pred = predict_clip(model, clip["frames"], window=ckpt["window"], input_size=ckpt["input_size"], device=device)
        masks = prediction_masks(pred)
        ann = np.flatnonzero(clip["annotated"])
        m = frame_metrics(masks[ann], clip["masks"][ann], clip["spacing_mm"])
        meta = {k: clip[k] for k in ("clip_id", "participant", "side", "quality")}
        for j, t in enumerate(ann):
            rows.append({**meta, "frame": int(t), **{k: v[j] if k == "empty" else float(v[j]) for k, v in m.items()}})
        plane_pred = pred["plane_prob"].argmax(1)
        truth.append(clip["plane_labels"])
        guess.append(plane_pred)
        known = clip["plane_labels"] >= 0
        true_clip = clip["plane"] if clip["plane"] in labels else None
        clip_rows.append(
            {
                **meta,
                "plane": clip["plane"],
                "n_frames": len(clip["frames"]),
                "n_annotated": len(ann),
                **{
                    k: float(np.nanmean(m[k])) if len(ann) and np.isfinite(m[k]).any() else float("nan")
                    for k in SEG_COLUMNS
                },
                "n_one_empty": int((m["empty"] == "one").sum()),
                "plane_accuracy": float((plane_pred[known] == clip["plane_labels"][known]).mean())
                if known.any()
                else float("nan"),
                "predicted_plane": labels[int(pred["clip_plane_prob"].argmax())],
                "clip_plane_correct": float(labels[int(pred["clip_plane_prob"].argmax())] == true_clip)
                if true_clip
                else float("nan"),
            }
        )
        if example is None and len(ann) and clip["masks"][ann].any():
            biggest = int(ann[np.argmax(clip["masks"][ann].reshape(len(ann), -1).sum(1))])
            example = (clip["frames"][biggest], clip["masks"][biggest], masks[biggest], clip["clip_id"], biggest)
    frames, clips = pd.DataFrame(rows), pd.DataFrame(clip_rows)
    planes, confusion = plane_metrics(
        np.concatenate(truth) if truth else np.zeros(0, int),
        np.concatenate(guess) if guess else np.zeros(0, int),
        labels,
    )
    summary = {
        "model": name,
        "checkpoint": ckpt["path"],
        "epoch": ckpt["epoch"],
        "n_clips": len(clips),
        "n_frames": len(frames),
        **planes,
        "clip_plane_accuracy": float(clips["clip_plane_correct"].mean()) if len(clips) else float("nan"),
        **{k: float(clips[k].mean()) if len(clips) else float("nan") for k in SEG_COLUMNS},
        "n_one_empty_frames": int(clips["n_one_empty"].sum()) if len(clips) else 0,
    }
    return {"summary": summary, "frames": frames, "clips": clips, "confusion": confusion, "example": example}


def group_table(clips, by: str):
    """Mean of the clip metrics per participant / quality grade, with the clip count."""
    cols = [*SEG_COLUMNS, "plane_accuracy"]
    g = clips.groupby(by, dropna=False)
    out = g[cols].mean().reset_index()
    out.insert(1, "n_clips", g.size().values)
    if "n_one_empty" in clips:
        out["n_one_empty"] = g["n_one_empty"].sum().values
    return out


def overlay(frame: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """RGB thumbnail: truth outline green, prediction outline magenta."""
    from scipy import ndimage

    rgb = np.repeat(frame[..., None], 3, axis=2).astype(np.uint8)
    for mask, colour in ((truth, (40, 220, 60)), (pred, (230, 40, 230))):
        edge = mask & ~ndimage.binary_erosion(mask)
        rgb[edge] = colour
    return rgb


def baseline_kwargs(name: str, model_kwargs: dict) -> dict:
    """The run's network arguments minus the temporal ones a baseline has no use for."""
    drop = {"unet2d": ("temporal_kernel", "factorised"), "ultramn_notemporal": ("temporal_kernel",)}
    return {k: v for k, v in model_kwargs.items() if k not in drop.get(name, ())}


def train_baselines(run_dir, dataset_dir, names=BASELINES, device: str = "auto") -> ProgressGen[dict[str, Path]]:
    """Train each baseline with the run's own arguments into ``RUN_DIR/baselines/<name>``."""
    from .runlog import read_progress
    from .train import train_run

    args = dict(load_checkpoint(run_dir)["args"])
    out = {}
    for name in names:
        target = Path(run_dir) / "baselines" / name
        finished = any(r.get("event") == "end" for r in read_progress(target)) if target.exists() else False
        if not finished:
            resume = (target / "last.pt").exists()
            gen = train_run(
                args["dataset_dir"] if dataset_dir is None else dataset_dir,
                target,
                model=name,
                epochs=args["epochs"],
                batch_size=args["batch_size"],
                window=args["window"],
                lr=args["lr"],
                max_minutes=args.get("max_minutes"),
                seed=args["seed"],
                patience=args.get("patience", 5),
                device=device,
                resume=resume,
                model_kwargs=baseline_kwargs(name, args.get("model_kwargs") or {}),
            )
            yield from relay(gen, functools.partial(_restate_baseline, name))
        out[name] = target
    return out


def evaluate_run(
    run_dir,
    dataset_dir,
    split: str = "test",
    *,
    baselines: bool = False,
    out_dir=None,
    device: str = "auto",
    write: bool = True,
) -> ProgressGen[EvalResult]:
    """Evaluate ``run_dir`` (and, with ``baselines``, the two baselines) on ``split``.

    Writes ``out_dir`` (default ``RUN_DIR/eval/<split>``): metrics.json (summary per model), and per
    model ``<model>_frames.csv``, ``_clips.csv``, ``_participants.csv``, ``_quality.csv``,
    ``_confusion.csv``, plus ``report.html`` (the report section on its own page).
    """
    from .train import pick_device

    dev = str(pick_device(device))
    runs = {load_checkpoint(run_dir)["model_config"].get("name", "model"): Path(run_dir)}
    home = Path(run_dir) if Path(run_dir).is_dir() else Path(run_dir).parent  # a checkpoint file's run
    if baselines:
        wanted = tuple(b for b in BASELINES if b not in runs)
        runs.update((yield from train_baselines(home, dataset_dir, wanted, device=device)))
    result = EvalResult(summary={})
    examples = {}
    for name, path in runs.items():
        r = yield from evaluate_checkpoint(path, dataset_dir, split, device=dev, name=name)
        result.summary[name] = r["summary"]
        result.tables.update(
            {f"{name}/frames": r["frames"], f"{name}/clips": r["clips"], f"{name}/confusion": r["confusion"]}
        )
        if len(r["clips"]):
            result.tables[f"{name}/participants"] = group_table(r["clips"], "participant")
            result.tables[f"{name}/quality"] = group_table(r["clips"], "quality")
        examples[name] = r["example"]
    result.section = report_section(result, split, examples)
    if write:
        out = Path(out_dir) if out_dir else home / "eval" / split
        out.mkdir(parents=True, exist_ok=True)
        for key, df in result.tables.items():
            atomic_write_text(out / f"{key.replace('/', '_')}.csv", df.to_csv(index=False))
        atomic_write_json(out / "metrics.json", {"split": split, "primary": next(iter(runs)), "models": result.summary})
        from ..report import write_report

        write_report(out / "report.html", f"UltraMN evaluation ({split})", [result.section])
        result.out_dir = out
    yield Progress(
        1,
        1,
        "evaluation done",
        {n: {k: s.get(k) for k in ("dice", "plane_accuracy")} for n, s in result.summary.items()},
    )
    return result


#: Below these a model's proposals cost a rater more than they save: the report says so in words.
USABLE_DICE = 0.7
USABLE_PLANE_ACCURACY = 0.8

#: Summary keys -> column headers a reader understands without a manual (units in the header).
SUMMARY_COLUMNS = {
    "model": "model",
    "epoch": "best epoch",
    "n_clips": "clips",
    "dice": "nerve Dice",
    "iou": "nerve IoU",
    "hd95_mm": "HD95 (mm)",
    "n_one_empty_frames": "frames with one mask empty",
    "csa_error_mm2": "CSA error (mm²)",
    "plane_accuracy": "plane accuracy (frames)",
    "plane_macro_f1": "plane macro-F1",
    "clip_plane_accuracy": "plane accuracy (clips)",
}


def usability_note(summary: dict) -> str | None:
    """A sentence saying why a model is not usable yet (None when it is)."""
    dice, acc = summary.get("dice"), summary.get("plane_accuracy")
    short = []
    if dice is None or not np.isfinite(dice) or dice < USABLE_DICE:
        short.append(f"nerve Dice {_fmt(dice)} is below {USABLE_DICE}")
    if acc is None or not np.isfinite(acc) or acc < USABLE_PLANE_ACCURACY:
        short.append(f"plane accuracy {_fmt(acc)} is below {USABLE_PLANE_ACCURACY}")
    if not short:
        return None
    return (
        f"{summary.get('model', 'This model')} is not usable yet: {' and '.join(short)}. "
        "Its proposals would cost raters more time than they save; train it for longer "
        "(ultramn train ... --resume) or on more labelled clips."
    )


def _fmt(value) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.3f}"


def summary_table(summary: dict[str, dict]):
    """One row per model, headers in words with units; epochs counted from 1 as in the text."""
    import pandas as pd

    rows = []
    for s in summary.values():
        row = {header: s.get(key) for key, header in SUMMARY_COLUMNS.items()}
        if row["best epoch"] is not None:
            row["best epoch"] = int(row["best epoch"]) + 1
        rows.append(row)
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS.values()))


def report_section(result: EvalResult, split: str, examples: dict) -> ReportSection:
    """Side-by-side summary, per-participant and per-quality tables, confusion matrix, a thumbnail."""
    primary = next(iter(result.summary))
    warnings = [note for s in result.summary.values() if (note := usability_note(s))]
    parts = [
        *(f"<p class='warning'><b>Warning:</b> {escape(w)}</p>" for w in warnings),
        f"<p>Split <code>{escape(split)}</code>; whole clips, windowed. Dice/IoU: mean over clips of "
        "the per-frame mean over annotated frames (both empty = 1); HD95 0 where both masks are "
        "empty, undefined where one is (those frames are counted in <i>n_one_empty</i> and left "
        "out of the HD95 means; the agreement report's convention); CSA error is |area<sub>pred</sub> - area<sub>truth</sub>|, the nerve's "
        "cross-sectional area. Epochs count from 1.</p>",
        table_html(summary_table(result.summary)),
    ]
    for key, title in (
        ("participants", "per participant"),
        ("quality", "per image-quality grade"),
        ("confusion", "plane confusion matrix (rows = truth)"),
    ):
        if f"{primary}/{key}" in result.tables:
            parts.append(
                f"<h3>{escape(primary)}: {title}</h3>"
                + table_html(result.tables[f"{primary}/{key}"], float_format="{:.3f}")
            )
    thumbs = []
    for name, ex in examples.items():
        if ex is not None:
            frame, truth, pred, cid, t = ex
            thumbs.append(
                image_html(
                    overlay(frame, truth, pred), f"{name}: {cid} frame {t} (green truth, magenta model)", width=220
                )
            )
    parts.append("".join(thumbs))
    return ReportSection(f"Model evaluation ({split})", "".join(parts))


def read_metrics(run_dir, split: str = "test") -> dict:
    """The summary written by a previous evaluation, or {} (the run table shows it)."""
    path = Path(run_dir) / "eval" / split / "metrics.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
