"""The ``ultramn`` command: one sub-command per module in this package.

Each module ``napari_ultramn/cli/<name>.py`` defines ``register(subparsers)``, which adds its parser
and sets ``func=run`` (``run(args) -> int``). Heavy imports stay inside ``run`` so ``ultramn --help``
is instant. Errors we raise on purpose (:class:`UltramnError`) print as one line, exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import UltramnError

#: Sub-command modules, in the order ``ultramn --help`` lists them.
COMMAND_MODULES = (
    "demo",
    "phantom",
    "ingest",
    "annotate",
    "agreement",
    "build_dataset",
    "validate_dataset",
    "audit_phi",
    "inspect_dataset",
    "train",
    "evaluate",
    "preannotate",
    "export_model",
)


def available_commands() -> list[str]:
    """Command modules present in this installation (tests check that all of them are)."""
    import importlib.util

    return [n for n in COMMAND_MODULES if importlib.util.find_spec(f"{__name__}.{n}") is not None]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="ultramn",
        description="Median-nerve ultrasound: phantom data, ingest, annotation, agreement, "
        "datasets and the UltraMN model.",
    )
    parser.add_argument("--version", action="version", version=f"napari-ultramn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in available_commands():
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except UltramnError as exc:
        print(f"ultramn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ultramn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
