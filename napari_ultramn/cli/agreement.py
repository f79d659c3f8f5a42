"""``ultramn agreement PROJECT --out DIR``: inter-rater agreement as CSV tables and an HTML report."""

from __future__ import annotations

import argparse

from napari_ultramn.parallel import add_workers_argument


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "agreement",
        help="inter-rater agreement of an annotation project (CSV tables + HTML report)",
        description="Measure how well the raters of a project agree: plane labels (percent agreement, "
        "Cohen's and Fleiss' kappa, Krippendorff's alpha, Gwet's AC1), nerve boundaries (Dice, IoU, "
        "Hausdorff, HD95, ASSD, surface Dice in mm; MONAI's convention) and nerve area (ICC, "
        "Bland-Altman), with bootstrap confidence intervals over participants. Writes tidy CSV "
        "files and a self-contained report.html to DIR.",
    )
    p.add_argument("project", help="annotation project folder")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the CSV files and report.html")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument(
        "--bootstrap",
        type=int,
        default=200,
        metavar="N",
        help="bootstrap replicates over participants (default 200; 0 = no intervals)",
    )
    p.add_argument(
        "--tolerance-mm", type=float, default=0.5, metavar="MM", help="surface Dice tolerance in mm (default 0.5)"
    )
    add_workers_argument(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from dataset_tools.agreement.project_report import agreement_report
    from napari_ultramn.errors import InputError
    from napari_ultramn.progress import run_with_progress_bar
    from napari_ultramn.project import Project

    if args.bootstrap < 0:
        raise InputError(None, f"--bootstrap must be 0 or more, got {args.bootstrap}")
    if args.tolerance_mm <= 0:
        raise InputError(None, f"--tolerance-mm must be positive, got {args.tolerance_mm}")
    project = Project.open(args.project)
    gen = agreement_report(
        project, args.out, seed=args.seed, n_boot=args.bootstrap, tolerance_mm=args.tolerance_mm, workers=args.workers
    )
    result = run_with_progress_bar(gen, desc="agreement", quiet=args.quiet)
    summary = result.summary()
    if not args.quiet:
        for row in summary.to_dict("records"):
            ci = "" if row["ci_low"] != row["ci_low"] else f"  [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
            print(f"{row['what']:<22} {row['coefficient']:<20} {row['value']:.3f}{ci} {row['unit']}")
        for note in result.notes:
            print(f"note: {note}")
    print(f"report: {result.report_path}")
    return 0
