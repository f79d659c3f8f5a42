"""``ultramn export-registry PROJECT``: write the clip registry as JSON, for audit.

The registry is ``PROJECT/registry.sqlite``; ingest already exports it to ``PROJECT/clips.json`` at
the end of every run. This writes it on demand (after an interrupted ingest, or elsewhere with
``--out``), schema-checked (``schemas/clips.schema.json``) and atomic.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export-registry",
        help="write a project's clip registry as JSON (clips.json) for audit",
        description="Export every clip record of the project's registry (registry.sqlite) to "
        "PROJECT/clips.json, or to --out. A project made before the registry was a database is "
        "converted first (its clips.json is kept as clips.json.bak-<time>).",
    )
    p.add_argument("project", help="the project folder")
    p.add_argument("--out", help="where to write the JSON (default: PROJECT/clips.json)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from napari_ultramn.project import CLIPS_FILE, Project

    project = Project.open(args.project)
    path = Path(args.out) if args.out else project.root / CLIPS_FILE
    n = project.registry.export(path)  # one snapshot: the count is what the file holds
    print(f"{path}: {n} clip records exported")
    return 0
