"""``ultramn demo [--out DIR]``: the whole pipeline on built-in synthetic data."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from ..demo import STAGES

    p = sub.add_parser(
        "demo",
        help="run the whole pipeline on a synthetic phantom study; ends with DIR/report.html",
        description="Phantom study -> de-identified project -> simulated raters and agreement -> "
        "participant-split datasets -> brief training, evaluation and pre-annotation. Everything "
        "it makes stays under DIR; the last thing it writes is DIR/report.html.",
    )
    p.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: seconds instead of minutes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--stages",
        nargs="+",
        choices=[name for name, _ in STAGES],
        help="run only these stages (later stages need the earlier ones' output)",
    )
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..demo import run_demo
    from ..progress import run_with_progress_bar

    result = run_with_progress_bar(
        run_demo(args.out, quick=args.quick, seed=args.seed, stages=args.stages), desc="demo", quiet=args.quiet
    )
    print("\n".join(result.summary_lines()))
    return 0
