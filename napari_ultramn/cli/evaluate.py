"""``ultramn evaluate RUN_DIR DATASET_DIR``: metrics on a split, optionally against the baselines."""

from __future__ import annotations

import argparse

from napari_ultramn.vocabulary import SPLITS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="evaluate a trained run on a dataset split (optionally beside the baselines)",
        description="Plane accuracy, macro-F1 and confusion matrix; nerve Dice, IoU, HD95 (mm) and CSA "
        "error (mm^2) per clip, participant and image-quality grade. Writes CSVs, metrics.json and "
        "report.html to --out (default RUN_DIR/eval/SPLIT).",
    )
    p.add_argument("run_dir", help="run folder made by `ultramn train` (or a checkpoint file)")
    p.add_argument("dataset_dir", help="dataset folder")
    p.add_argument("--split", default="test", choices=SPLITS)
    p.add_argument(
        "--baselines",
        action="store_true",
        help="also train (same arguments and budget) and evaluate the 2D U-Net and the no-temporal model",
    )
    p.add_argument("--out", default=None, help="output folder (default RUN_DIR/eval/SPLIT)")
    p.add_argument("--device", default="auto")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from napari_ultramn.model.evaluate import evaluate_run, summary_table
    from napari_ultramn.progress import run_with_progress_bar

    result = run_with_progress_bar(
        evaluate_run(
            args.run_dir, args.dataset_dir, args.split, baselines=args.baselines, out_dir=args.out, device=args.device
        ),
        desc="evaluate",
        quiet=args.quiet,
    )
    print(summary_table(result.summary).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    from ..model.evaluate import usability_note

    for summary in result.summary.values():
        if note := usability_note(summary):
            print(f"warning: {note}")
    print(f"wrote {result.out_dir}")
    return 0
