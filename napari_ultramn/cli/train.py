"""``ultramn train DATASET_DIR --out RUN_DIR``: train UltraMN (or a baseline) on a built dataset.

Under ``torchrun --nproc_per_node N -m napari_ultramn train ...`` every process runs this command;
DistributedDataParallel is switched on by the ``WORLD_SIZE``/``RANK`` variables torchrun sets, and
only rank 0 prints, logs and writes checkpoints.
"""

from __future__ import annotations

import argparse
import json
import os

from napari_ultramn.vocabulary import MODEL_NAMES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train the UltraMN model (or a baseline) on a dataset folder",
        description="Train on DATASET_DIR/{train,validation}.h5 into RUN_DIR: AdamW with warm-up + "
        "cosine schedule, mixed precision on CUDA, early stopping on validation Dice + plane accuracy, "
        "best.pt/last.pt checkpoints, JSON-lines progress in RUN_DIR/progress.jsonl.",
    )
    p.add_argument("dataset_dir", help="folder made by `ultramn build-dataset`")
    p.add_argument("--out", required=True, dest="run_dir", help="run folder (checkpoints, progress log)")
    p.add_argument("--model", default="ultramn", choices=MODEL_NAMES)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--window", type=int, default=16, help="frames per training window (T)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    p.add_argument("--max-minutes", type=float, default=None, help="stop after this much training time")
    p.add_argument("--patience", type=int, default=5, help="epochs without a better validation score before stopping")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR from last.pt")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: 0 on CPU)")
    p.add_argument(
        "--model-kwargs",
        default="{}",
        metavar="JSON",
        help='network constructor arguments, e.g. \'{"base_channels": 8, "depth": 3}\'',
    )
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=run)


def parse_model_kwargs(text: str) -> dict:
    """The ``--model-kwargs`` JSON object (network constructor arguments), or one clear error."""
    from napari_ultramn.errors import InputError

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(None, f"--model-kwargs is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InputError(None, f"--model-kwargs must be a JSON object like '{{\"depth\": 3}}', got {text!r}")
    return value


def run(args) -> int:
    from napari_ultramn.model.train import train_run
    from napari_ultramn.progress import run_with_progress_bar

    model_kwargs = parse_model_kwargs(args.model_kwargs)
    main_rank = int(os.environ.get("RANK", "0")) == 0
    summary = run_with_progress_bar(
        train_run(
            args.dataset_dir,
            args.run_dir,
            model=args.model,
            epochs=args.epochs,
            batch_size=args.batch_size,
            window=args.window,
            lr=args.lr,
            max_minutes=args.max_minutes,
            device=args.device,
            resume=args.resume,
            seed=args.seed,
            model_kwargs=model_kwargs,
            patience=args.patience,
            workers=args.workers,
        ),
        desc="train",
        quiet=args.quiet or not main_rank,
    )
    if main_rank:
        m = summary["metrics"]
        print(
            f"{args.run_dir}: {summary['stop_reason']}; {summary['epochs_done']} epochs, {summary['steps']} steps, "
            f"{summary['elapsed_s'] / 60:.1f} min; best epoch {summary['best_epoch'] + 1} "
            f"(score {summary['best_score']:.3f}); last val Dice {m.get('val_dice', float('nan')):.3f}, "
            f"plane accuracy {m.get('val_plane_acc', float('nan')):.3f}"
        )
        from napari_ultramn.model.evaluate import usability_note

        note = usability_note(
            {
                "model": f"The model in {args.run_dir}",
                "dice": m.get("val_dice"),
                "plane_accuracy": m.get("val_plane_acc"),
            }
        )
        if note:
            print(f"warning: {note} (validation split; it stopped on: {summary['stop_reason']})")
    return 0
