"""``ultramn phantom OUT --participants N``: write a synthetic median-nerve DICOM study."""

from __future__ import annotations

import argparse


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "phantom",
        help="write a synthetic median-nerve ultrasound study (DICOM + ground truth)",
        description="Write a seeded phantom study: per participant both sides x four planes as "
        "multi-frame ultrasound DICOM files (burned-in text, region calibration, fake identities), "
        "ground-truth nerve masks in OUT/ground_truth/ and OUT/study.csv.",
    )
    p.add_argument("out", metavar="OUT", help="output folder")
    p.add_argument("--participants", type=int, required=True, metavar="N", help="number of participants")
    p.add_argument("--frames", type=int, default=32, metavar="T", help="frames per clip (default 32)")
    p.add_argument(
        "--size",
        type=int,
        nargs=2,
        default=(256, 256),
        metavar=("H", "W"),
        help="imaging region size in pixels (default 256 256)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--compress",
        choices=("none", "jpeg"),
        default="none",
        help="pixel data: uncompressed 8-bit (default) or JPEG baseline colour",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..phantom.study import write_study
    from ..progress import run_with_progress_bar

    gen = write_study(
        args.out, args.participants, seed=args.seed, n_frames=args.frames, size=tuple(args.size), compress=args.compress
    )
    table = run_with_progress_bar(gen, desc="phantom", quiet=args.quiet)
    frames = int(table["n_frames"].sum())
    print(
        f"wrote {len(table)} clips ({frames} frames) of {table['patient_id'].nunique()} participants "
        f"to {args.out} (study.csv, dicom/, ground_truth/)"
    )
    return 0
