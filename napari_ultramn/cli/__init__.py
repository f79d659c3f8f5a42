"""The ``ultramn`` command: one sub-command per module in this package.

Each module ``napari_ultramn/cli/<name>.py`` defines ``register(subparsers)``, which adds its parser
and sets ``func=run`` (``run(args) -> int``). Heavy imports stay inside ``run`` so ``ultramn --help``
is instant. Errors we raise on purpose (:class:`UltramnError`) print as one line, exit status 2;
so does an OSError that says an output cannot be written (full disk, read-only folder...) when a
library raised it past our writers (a safety net: writers raise OutputError themselves).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
import warnings
from pathlib import Path

from ..errors import OUTPUT_ERRNOS, UltramnError, describe_oserror

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
    "label_loop",
    "export_model",
    "export_registry",
    "unlock",
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
        with library_warnings_silenced():
            return int(args.func(args) or 0)
    except UltramnError as exc:
        print(f"ultramn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in OUTPUT_ERRNOS:
            raise
        # neutral wording: a library may have been reading (EACCES) as well as writing
        where = _shown_path(exc)
        problem = describe_oserror(exc)
        print(f"ultramn {args.command}: error: {f'{where}: ' if where else ''}{problem}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ultramn {args.command}: interrupted", file=sys.stderr)
        return 130


#: Libraries whose warnings speak to developers (deprecations, tracer notes, header quirks), not to a
#: data manager: silenced on the command line unless ULTRAMN_WARNINGS=1 or Python's -W is given.
QUIET_LIBRARIES = (
    "torch",
    "pydicom",
    "pingouin",
    "statsmodels",
    "monai",
    "onnx",
    "onnxruntime",
    "highdicom",
    "h5py",
    "hdf5plugin",
    "numpy",
    "scipy",
    "pandas",
    "skimage",
    "SimpleITK",
    "av",
    "imageio",
    "tifffile",
    "PIL",
    "matplotlib",
    "krippendorff",
    "napari",
    "vispy",
    "npe2",
    "magicgui",
    "pydantic",
    "tqdm",
)


@contextlib.contextmanager
def library_warnings_silenced():
    """Hide library warnings and deprecation notices while a command runs (ours still show)."""
    if os.environ.get("ULTRAMN_WARNINGS") == "1" or sys.warnoptions:
        yield
        return
    pattern = rf"({'|'.join(QUIET_LIBRARIES)})(\..*)?$"
    pydicom_log = logging.getLogger("pydicom")
    level = pydicom_log.level
    pydicom_log.setLevel(logging.ERROR)  # pydicom also logs each warning it gives
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=pattern)
            for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
                warnings.filterwarnings("ignore", category=category)
            yield
    finally:
        pydicom_log.setLevel(level)


def _shown_path(exc: OSError) -> str | None:
    """The file an OSError names, relative to the working folder when it lies inside it (the
    user gave relative paths; a library may have made them absolute)."""
    if exc.filename is None:
        return None
    path = Path(os.fsdecode(exc.filename))
    try:
        return str(path.relative_to(Path.cwd())) if path.is_absolute() else str(path)
    except ValueError:
        return str(path)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
