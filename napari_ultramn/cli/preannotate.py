"""``ultramn preannotate RUN_DIR PROJECT``: model proposals into a project, and what to label next."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "preannotate",
        help="write model proposals into a project and rank unlabelled clips by uncertainty",
        description="Writes nerve masks (provenance 'model', with confidence), the clip plane and "
        "non-standard frame ranges as annotations of rater 'model' (default). Into a named rater it "
        "only fills frames without a mask and never touches a clip that rater marked done. Clips no "
        "human has labelled are ranked by plane entropy + mask-boundary uncertainty (CSV + printed).",
    )
    p.add_argument("run_dir", help="run folder (uses best.pt) or a checkpoint file")
    p.add_argument("project", help="annotation project folder")
    p.add_argument("--clips", nargs="+", default=None, help="clip ids (default: every clip)")
    p.add_argument("--rater", default="model", help="rater id to write into (default: model)")
    p.add_argument("--ranking", default=None, help="ranking CSV path (default RUN_DIR/preannotation_ranking.csv)")
    p.add_argument("--device", default="auto")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from napari_ultramn.model.preannotate import preannotate_project
    from napari_ultramn.progress import run_with_progress_bar

    out = run_with_progress_bar(
        preannotate_project(
            args.run_dir,
            args.project,
            rater=args.rater,
            clip_ids=args.clips,
            ranking_csv=args.ranking,
            device=args.device,
        ),
        desc="preannotate",
        quiet=args.quiet,
    )
    print(
        f"{args.project}: proposals written for {len(out['written'])} clip(s) as rater '{args.rater}'"
        + (f"; left alone (rater marked them done): {', '.join(out['skipped'])}" if out["skipped"] else "")
    )
    ranking = out["ranking"]
    todo = ranking[~ranking["human_labelled"]] if len(ranking) else ranking
    if len(todo):
        cols = ["rank", "clip_id", "predicted_plane", "plane_entropy", "boundary_uncertainty", "uncertainty"]
        print("Label next (most uncertain first):")
        print(todo[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"ranking: {out['csv']}")
    return 0
