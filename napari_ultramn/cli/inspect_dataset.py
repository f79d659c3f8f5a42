"""``ultramn inspect-dataset DIR``: print the counts table of a built dataset."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect-dataset",
        help="print a dataset's counts per split, plane and side",
        description="Print participants, clips, frames and annotated frames per split, plane and "
        "side, read from the HDF5 files themselves, and the manifest's summary.",
    )
    p.add_argument("dataset", help="dataset folder (built by ultramn build-dataset)")
    p.add_argument("--clips", action="store_true", help="also list every clip")
    p.add_argument("--csv", metavar="FILE", help="also write the counts table as CSV")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from dataset_tools.dataset_summary import (
        clip_table,
        counts_table,
        manifest_summary,
        read_manifest,
    )
    from napari_ultramn.atomic import atomic_write_text
    from napari_ultramn.errors import InputError

    counts = counts_table(args.dataset)
    print(counts.to_string(index=False))
    if (Path(args.dataset) / "manifest.json").exists():
        s = manifest_summary(read_manifest(args.dataset))
        print(
            f"\nproject {s['project']}; labels {s['labels']}; split seed {s['seed']}, ratios "
            f"{s['ratios']['train']}/{s['ratios']['validation']}/{s['ratios']['test']}; "
            f"{s['excluded']} clip(s) excluded"
        )
    else:
        raise InputError(
            Path(args.dataset) / "manifest.json", "file not found (an incomplete build? run ultramn validate-dataset)"
        )
    if args.clips:
        print()
        print(clip_table(args.dataset).to_string(index=False))
    if args.csv:
        atomic_write_text(args.csv, counts.to_csv(index=False))
    return 0
