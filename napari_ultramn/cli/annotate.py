"""``ultramn annotate PROJECT [CLIP] --rater R [--review]``: open napari with the annotator on a clip."""

from __future__ import annotations

import argparse
import os


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "annotate",
        help="open the napari annotator on a project clip",
        description="Open napari with the Annotator dock widget on CLIP of PROJECT (default: the "
        "rater's next unlabelled clip). Work is autosaved on every change to "
        "PROJECT/annotations/CLIP/RATER.json. Blind mode by default: a rater sees only their "
        "own work; --review shows every rater's masks and saves the final one as 'adjudicated'.",
    )
    p.add_argument("project", metavar="PROJECT", help="annotation project folder")
    p.add_argument("clip", metavar="CLIP", nargs="?", help="clip id (default: next unlabelled)")
    p.add_argument("--rater", default=os.environ.get("ULTRAMN_RATER"), help="your rater id (default: $ULTRAMN_RATER)")
    p.add_argument(
        "--review", action="store_true", help="adjudicate: overlay all raters' masks and build the final annotation"
    )
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..annotation.queue import ClipQueue
    from ..annotation.session import ADJUDICATED
    from ..annotation.store import check_id
    from ..errors import InputError, UltramnError
    from ..project import Project

    if not args.rater:
        raise InputError(None, "say who you are: --rater R (or set ULTRAMN_RATER)")
    try:
        check_id("rater", args.rater)
    except ValueError as exc:
        raise InputError(None, str(exc)) from None
    project = Project.open(args.project)
    clip_id = args.clip
    if clip_id is None:
        clip_id = ClipQueue(project, ADJUDICATED if args.review else args.rater).next_unlabelled()
        if clip_id is None:
            print(f"nothing left to label for rater '{args.rater}' in {project.root}")
            return 0
    project.clip_record(clip_id)  # a wrong id is one clear error before any window opens

    from .gui_check import gui_problem

    if problem := gui_problem():
        raise UltramnError(problem)
    import napari

    viewer = napari.Viewer(title=f"UltraMN annotator · {project.name} · {args.rater}")
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-ultramn", "Annotator")
    widget.open_project(project.root, args.rater, review=args.review)
    if not widget.open_clip(clip_id):
        message = widget.message_label.text()
        viewer.close()
        raise UltramnError(message)
    try:
        napari.run()
    finally:
        widget.close_session()  # release the lock even if the event loop ends with an error
    return 0
