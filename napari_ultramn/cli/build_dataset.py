"""``ultramn build-dataset PROJECT OUT_DIR``: participant-split HDF5 training data from a project."""

from __future__ import annotations

import argparse
import sys

from napari_ultramn.parallel import add_workers_argument


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "build-dataset",
        help="build train/validation/test HDF5 files from an annotation project",
        description="Build one HDF5 file per split (train.h5, validation.h5, test.h5) from the "
        "consensus of several raters or from one rater, split by participant (stratified by plane, "
        "side and demographics), with a split file, a manifest and a dataset card. The build is "
        "written aside and renamed into OUT_DIR only when complete; one build at a time per OUT_DIR "
        "(OUT_DIR.lock); a replace interrupted by a crash is finished by the next run.",
    )
    p.add_argument("project", help="annotation project folder")
    p.add_argument("out_dir", help="dataset folder to create")
    labels = p.add_mutually_exclusive_group()
    labels.add_argument(
        "--consensus",
        choices=("majority", "staple"),
        default="majority",
        help="labels from the consensus of the raters (default: majority)",
    )
    labels.add_argument("--rater", help="labels from this one rater instead of a consensus")
    p.add_argument(
        "--min-raters", type=int, default=2, metavar="N", help="a consensus frame needs at least N raters (default 2)"
    )
    p.add_argument(
        "--size",
        nargs=2,
        type=int,
        metavar=("H", "W"),
        help="resample frames to H x W pixels (with --spacing-mm: crop/pad to it)",
    )
    p.add_argument(
        "--spacing-mm",
        type=float,
        metavar="S",
        help="resample to S mm per pixel (uncalibrated clips are then excluded)",
    )
    p.add_argument(
        "--ratios",
        nargs=3,
        type=float,
        default=(0.7, 0.15, 0.15),
        metavar=("TRAIN", "VAL", "TEST"),
        help="split ratios (default 0.7 0.15 0.15)",
    )
    p.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    p.add_argument("--split-file", metavar="F", help="reuse a saved split.json exactly")
    p.add_argument(
        "--min-frames",
        type=int,
        default=16,
        metavar="N",
        help="exclude clips shorter than N frames (the training window; default 16)",
    )
    p.add_argument(
        "--compression",
        choices=("zstd", "lz4", "gzip", "lzf", "none"),
        default="zstd",
        help="frame compression (default zstd: Blosc-Zstd, small and fast; lz4: fastest; "
        "gzip: readable by any HDF5 tool without hdf5plugin; lzf; none). "
        "Masks are always Blosc-LZ4.",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a dataset that build-dataset wrote in OUT_DIR (signed manifest, no "
        "other files); any other folder is refused and nothing is deleted",
    )
    p.add_argument(
        "--refuse-duplicates",
        action="store_true",
        help="stop, listing them, when clips of two participants hold near-identical frames "
        "(default: keep such participants in one split)",
    )
    add_workers_argument(p)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from dataset_tools.build import build_dataset
    from dataset_tools.dataset_summary import manifest_summary
    from napari_ultramn.errors import InputError
    from napari_ultramn.progress import run_with_progress_bar

    if args.min_frames < 1 or args.min_raters < 1:
        raise InputError(None, "--min-frames and --min-raters must be at least 1")
    try:
        gen = build_dataset(
            args.project,
            args.out_dir,
            consensus=None if args.rater else args.consensus,
            rater=args.rater,
            size=args.size,
            spacing_mm=args.spacing_mm,
            ratios=args.ratios,
            seed=args.seed,
            split_file=args.split_file,
            min_frames=args.min_frames,
            min_raters=args.min_raters,
            compression=None if args.compression == "none" else args.compression,
            overwrite=args.overwrite,
            refuse_duplicates=args.refuse_duplicates,
            notify=lambda line: print(line, file=sys.stderr),
            workers=args.workers,
        )
        manifest = run_with_progress_bar(gen, desc="build-dataset", quiet=args.quiet)
    except ValueError as exc:  # option problems found by the builder (InputError is one too)
        raise exc if isinstance(exc, InputError) else InputError(None, str(exc)) from None
    s = manifest_summary(manifest)
    print(
        f"{args.out_dir}: {s['train_clips']} / {s['validation_clips']} / {s['test_clips']} clips "
        f"(train / validation / test) from {s['train_participants']} / "
        f"{s['validation_participants']} / {s['test_participants']} participants, "
        f"{s['frames']} frames, labels {s['labels']}; {s['excluded']} clip(s) excluded"
    )
    for e in manifest["excluded"]:
        print(f"  excluded {e['clip_id']}: {e['reason']}")
    for group in manifest.get("suspected_duplicates", []):
        print(
            f"  kept together in {'/'.join(group['splits'])}: participants {', '.join(group['participants'])} "
            "share near-identical clips (likely one patient under two ids)"
        )
    return audit_dataset(args)


def audit_dataset(args) -> int:
    """``audit-phi`` over the new dataset against the project's identifiers; 1 when it finds any."""
    from dataset_tools.phi_audit import audit_paths, load_identifiers
    from napari_ultramn.progress import run_with_progress_bar

    report = run_with_progress_bar(
        audit_paths([args.out_dir], load_identifiers(args.project), workers=args.workers),
        desc="PHI audit",
        quiet=args.quiet,
    )
    print(f"PHI audit of {args.out_dir}: {report.summary()}")
    if report.hits:
        print("\n".join(f"  {line}" for line in report.lines()))
    return 1 if report.hits else 0
