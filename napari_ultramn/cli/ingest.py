"""``ultramn ingest SOURCE PROJECT``: register and de-identify clips into an annotation project."""

from __future__ import annotations

import argparse

from napari_ultramn.parallel import add_workers_argument


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ingest",
        help="register and de-identify clips into an annotation project",
        description="Register DICOM files, videos and frame folders under SOURCE into PROJECT "
        "(created if missing): pseudonymise participants, shift dates, drop identifiers, crop "
        "frames to the imaging area (a saved correction, the mapping CSV's region, the DICOM "
        "ultrasound regions, else detected in the pixels; a file whose area cannot be found is "
        "refused). Re-ingesting a file is a no-op. Exit status 2 when any file failed.",
    )
    p.add_argument("source", help="a clip file or a folder searched recursively")
    p.add_argument("project", help="annotation project folder")
    p.add_argument(
        "--mapping",
        metavar="CSV",
        help="CSV with columns file, patient_id, side, plane, sex, age_band "
        "(0-9 ... 80-89, 90+), site, region ('x0 y0 x1 y1' source pixels, x1 y1 exclusive); "
        "overrides the file; required for videos and frame folders without identity",
    )
    p.add_argument("--planes", nargs="+", help="plane vocabulary for a new project (default: the four UltraMN planes)")
    p.add_argument(
        "--keep-dicom",
        action="store_true",
        help="also keep de-identified DICOM copies (PS3.15 basic profile) in PROJECT/dicom/",
    )
    p.add_argument(
        "--no-crop",
        action="store_true",
        help="keep the whole frame of a file whose imaging area cannot be established "
        "(recorded in project.json and the clip record; never for BurnedInAnnotation files)",
    )
    p.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        help="how long to wait for another ingest into PROJECT to finish (default 1800)",
    )
    add_workers_argument(p)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from dataset_tools.ingest import ingest
    from napari_ultramn.progress import run_with_progress_bar
    from napari_ultramn.project import LOCK_TIMEOUT_S

    summary = run_with_progress_bar(
        ingest(
            args.source,
            args.project,
            mapping_csv=args.mapping,
            planes=args.planes,
            keep_dicom=args.keep_dicom,
            no_crop=args.no_crop,
            lock_timeout_s=LOCK_TIMEOUT_S if args.wait is None else args.wait,
            workers=args.workers,
        ),
        desc="ingest",
        quiet=args.quiet,
    )
    files, freed = summary.cleaned
    if files:
        print(f"removed {files} temporary file(s) of interrupted runs ({freed / 1e6:.1f} MB) from {args.project}")
    print(f"{args.project}: {summary.line()}")
    for clip_id, note in summary.recropped:
        print(f"  re-cropped: {clip_id}: {note}")
    for name, problem in summary.failed:
        print(f"  failed: {name}: {problem}")
    for pair in summary.duplicates:
        print(
            f"  likely one patient under two ids: {pair.clip_a} ({pair.participant_a}) and {pair.clip_b} "
            f"({pair.participant_b}) hold near-identical frames (distance {pair.distance:.3f}); "
            "build-dataset keeps them in one split"
        )
    if summary.audit is not None:
        print(f"PHI audit of what this ingest wrote: {summary.audit.summary()}")
        if summary.audit.hits:
            print("\n".join(f"  {line}" for line in summary.audit.lines()))
    if summary.failed:
        return 2
    return 1 if summary.audit is not None and summary.audit.hits else 0
