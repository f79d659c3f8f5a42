"""``ultramn unlock PATH``: break a lock whose holder cannot be checked from here.

Locks of dead processes on this host are taken over automatically; this is for a lock written on
another machine (a shared project folder) after its session ended without releasing it. A holder
that is alive on this host is refused unless ``--force``.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "unlock",
        help="remove a lock left by a session or run that is over (e.g. on another machine)",
        description="Remove an annotation lock (annotations/<clip>/<rater>.lock) or an output "
        "folder's lock (OUT.lock, or give the folder OUT). Only do this once the holder named in "
        "the error message is known to have ended: two writers would overwrite each other.",
    )
    p.add_argument("path", help="the lock file, or the output folder whose OUT.lock to remove")
    p.add_argument("--force", action="store_true", help="remove it even if its holder is still running on this machine")
    p.set_defaults(func=run)


def run(args) -> int:
    from napari_ultramn.holders import break_lock, describe_holder

    path, info = break_lock(args.path, force=args.force)
    print(f"{path}: removed (it was held by {describe_holder(info)})")
    return 0
