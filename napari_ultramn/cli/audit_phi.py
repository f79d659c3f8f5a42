"""``ultramn audit-phi PATH... [--identifiers CSV]``: proof that nothing identifying left ingest."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit-phi",
        help="search projects, datasets, reports and runs for identifiers and burned-in text",
        description="Search every file under each PATH (JSON, CSV, HTML, text, HDF5 attributes and "
        "strings, every DICOM element, file and folder names, and text burned into frames) for the "
        "identifiers ingest saw (PROJECT/.secret/identifiers.json of the project holding PATH, or "
        "--identifiers), for identifier-shaped values (person names, record numbers, dates), and "
        "for burned-in text. Hits are listed with file and location; identifiers are printed "
        "masked. Exit status 0 when clean, 1 on any hit, 2 on bad usage.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="project, dataset, report or run folder, or a file")
    p.add_argument(
        "--identifiers",
        metavar="CSV",
        help="identifiers to search for, a CSV with columns kind,value (default: the "
        "project's .secret/identifiers.json)",
    )
    p.add_argument(
        "--project",
        metavar="PROJECT",
        action="append",
        default=[],
        help="project whose identifiers to use, for a dataset or run folder kept outside it (repeatable)",
    )
    p.add_argument(
        "--no-pixels", action="store_true", help="skip the search for text burned into frames and images (faster)"
    )
    p.add_argument("--json", metavar="OUT", help="also write the report as JSON (atomic)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def gather_identifiers(paths: list[str], csv_path: str | None, projects: list[str]):
    """The identifiers to search for: the CSV, the named projects', and those of every project
    holding (or held by) a PATH. Raises InputError when there are none to be had."""
    from dataset_tools.phi_audit import (
        find_projects,
        identifiers_file,
        load_identifiers,
        read_identifiers_csv,
    )
    from napari_ultramn.errors import InputError

    found = read_identifiers_csv(csv_path) if csv_path else []
    roots: list[str | Path] = list(projects)
    for project in projects:
        if not identifiers_file(project).is_file():
            raise InputError(project, "has no .secret/identifiers.json (ingest writes it; or give --identifiers CSV)")
    if not csv_path and not projects:
        roots = [r for path in paths for r in find_projects(path)]
        if not roots:
            raise InputError(
                paths[0],
                "no identifiers to search for: no project with "
                ".secret/identifiers.json holds it; give --identifiers CSV or --project PROJECT",
            )
    for root in dict.fromkeys(str(r) for r in roots):
        found += load_identifiers(root)
    return found


def run(args) -> int:
    from dataset_tools.phi_audit import audit_paths
    from napari_ultramn.atomic import atomic_write_json
    from napari_ultramn.progress import run_with_progress_bar
    from napari_ultramn.schema import validate

    identifiers = gather_identifiers(args.paths, args.identifiers, args.project)
    report = run_with_progress_bar(
        audit_paths(args.paths, identifiers, burned_text=not args.no_pixels), desc="audit-phi", quiet=args.quiet
    )
    for line in report.lines():
        print(line)
    if args.json:
        obj = report.to_dict()
        validate(obj, "phi_audit", args.json)
        atomic_write_json(args.json, obj)
    return 0 if report.clean else 1
