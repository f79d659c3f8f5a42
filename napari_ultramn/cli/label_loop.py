"""``ultramn label-loop PROJECT --out LOOP_DIR``: train on what is labelled, pre-annotate the rest."""

from __future__ import annotations

import argparse

from napari_ultramn.vocabulary import MODEL_NAMES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "label-loop",
        help="train on the clips humans labelled so far, then pre-annotate the rest of the project",
        description="One round of the labelling loop: build a dataset from the clips a human has "
        "labelled (consensus of the human raters, validation split only), train a model on it, and "
        "write proposals (rater 'model') for every clip no human has labelled, recording each clip's "
        "doubt so the annotator's queue offers the most doubtful first. Each round gets its own "
        "LOOP_DIR/round-<k>/ (dataset, model); LOOP_DIR/loop.json follows the current one.",
    )
    p.add_argument("project", help="annotation project folder")
    p.add_argument("--out", required=True, dest="out_dir", help="loop folder (one sub-folder per round)")
    p.add_argument("--model", default="ultramn", choices=MODEL_NAMES)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--window", type=int, default=16, help="frames per training window (clips shorter are left out)")
    p.add_argument("--max-minutes", type=float, default=None, help="stop training after this much time")
    p.add_argument("--size", nargs=2, type=int, metavar=("H", "W"), help="resample frames to H x W pixels")
    p.add_argument(
        "--min-raters",
        type=int,
        default=1,
        metavar="N",
        help="a training frame needs at least N human raters (default 1)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model-kwargs", default="{}", metavar="JSON", help="network constructor arguments")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from dataset_tools.label_loop import label_loop
    from napari_ultramn.errors import InputError
    from napari_ultramn.progress import run_with_progress_bar

    from .train import parse_model_kwargs

    model_kwargs = parse_model_kwargs(args.model_kwargs)
    if args.min_raters < 1 or args.window < 1 or args.epochs < 1:
        raise InputError(None, "--min-raters, --window and --epochs must be at least 1")
    record = run_with_progress_bar(
        label_loop(
            args.project,
            args.out_dir,
            model=args.model,
            epochs=args.epochs,
            batch_size=args.batch_size,
            window=args.window,
            max_minutes=args.max_minutes,
            device=args.device,
            seed=args.seed,
            size=args.size,
            min_raters=args.min_raters,
            model_kwargs=model_kwargs,
        ),
        desc="label-loop",
        quiet=args.quiet,
    )
    print(record["message"])
    print(f"dataset {record['dataset']}; model {record['run']}")
    return 0
