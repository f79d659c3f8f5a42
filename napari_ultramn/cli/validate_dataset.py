"""``ultramn validate-dataset DIR``: check a built dataset; non-zero exit with the list of problems."""

from __future__ import annotations

import argparse

from napari_ultramn.parallel import add_workers_argument


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate-dataset",
        help="check a dataset: schema, checksums, shapes, label ranges, participant leaks",
        description="Verify the manifest and split file against their schemas, each file's "
        "sha256, every clip's shapes and label ranges, that no participant is in two splits, and "
        "that no source file or patient (identical frame content under two pseudonyms) appears "
        "twice. Exit status 0 when valid, 1 with the list of problems.",
    )
    p.add_argument("dataset", help="dataset folder (built by ultramn build-dataset)")
    p.add_argument(
        "--no-fingerprints", action="store_true", help="skip the frame-content comparison (faster; reads no frames)"
    )
    add_workers_argument(p)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from dataset_tools.validate import validate_dataset
    from napari_ultramn.progress import run_with_progress_bar

    problems = run_with_progress_bar(
        validate_dataset(args.dataset, fingerprints=not args.no_fingerprints, workers=args.workers),
        desc="validate-dataset",
        quiet=args.quiet,
    )
    if not problems:
        print(f"{args.dataset}: valid")
        return 0
    print(f"{args.dataset}: {len(problems)} problem(s):")
    for problem in problems:
        print(f"  - {problem}")
    return 1
