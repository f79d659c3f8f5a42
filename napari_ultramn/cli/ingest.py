"""``ultramn ingest SOURCE PROJECT``: register and de-identify clips into an annotation project."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ingest",
        help="register and de-identify clips into an annotation project",
        description="Register DICOM files, videos and frame folders under SOURCE into PROJECT "
        "(created if missing): pseudonymise participants, shift dates, drop identifiers, crop "
        "frames to the imaging region. Re-ingesting a file is a no-op.",
    )
    p.add_argument("source", help="a clip file or a folder searched recursively")
    p.add_argument("project", help="annotation project folder")
    p.add_argument("--mapping", help="CSV with columns file, patient_id, side, plane, sex, age_band, site "
                   "(overrides the file; required for videos and frame folders without identity)")
    p.add_argument("--planes", nargs="+", help="plane vocabulary for a new project (default: the four UltraMN planes)")
    p.add_argument("--keep-dicom", action="store_true",
                   help="also keep de-identified DICOM copies (PS3.15 basic profile) in PROJECT/dicom/")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from dataset_tools.ingest import ingest
    from napari_ultramn.progress import run_with_progress_bar

    summary = run_with_progress_bar(
        ingest(args.source, args.project, mapping_csv=args.mapping, planes=args.planes,
               keep_dicom=args.keep_dicom),
        desc="ingest", quiet=args.quiet,
    )
    print(f"{args.project}: {summary.line()}")
    for name, problem in summary.failed:
        print(f"  failed: {name}: {problem}")
    return 1 if summary.failed and not summary.added and not summary.skipped else 0
