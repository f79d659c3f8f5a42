"""Issue 14 "Effort, measured": how much drawing each annotation strategy saves.

A simulated annotator works through the same :class:`AnnotationSession` methods the annotator
widget calls, on phantom clips ingested into a real project on disk (``write_study`` -> ``ingest``
-> ``AnnotationSession.open``). It draws a frame as a person would: the ground truth with the
smooth boundary noise of ``simulate_raters``' first habit (``HABITS[0]``). It is honest: it sees
what a person sees. It compares a frame to the truth only to decide, as a person does by eye,
whether it would redraw it (Dice < 0.9); every decision of *where* to look comes from the tool
(keyframe plan, frame order, doubt list). It stops when it has looked at every frame since that
frame last changed, which leaves every frame at Dice >= 0.9 to the truth (or drawn by it).

Strategies: (1) every frame drawn (the baseline); (2) keyframes every 10th frame + interpolation,
frames checked in order, a correction becomes a keyframe and the clip is re-interpolated;
(3) + propagation: frame 1 drawn, propagated to the end, frames checked most doubtful first
(``session.doubts``), a correction spreads (``session.correct``); (4) + smart keyframes: a
correction first tries ``smart_keyframe.propose_mask`` from one click in the nerve (a second
click if that fails), accepted as 'assisted' when it looks right, drawn otherwise; (5) +
pre-annotation by a small UltraMN trained on *other* phantom participants, applied with
``session.apply_proposals``, then (4)'s review.

Counted per clip: human-drawn frames (share of all frames), assisted frames, corrections
(frames redrawn or re-proposed after the tool's mask looked wrong), clicks (polygon vertices a
person would click for a drawing: the contour simplified to 1 px; one per tool action or smart
click), tool seconds (wall time inside the session and model calls: what the person waits for),
and person-time ratio = tool s / (10 s x drawn frames); tool CPU seconds too, steadier than wall time
on a shared machine and close to a quiet machine's wall time (the tool's work is single-threaded).
Medians over clips.

    python benchmarks/bench_effort.py            # 2 participants (16 clips), model trained first
    python benchmarks/bench_effort.py --quick    # smoke run, about a minute (numbers meaningless)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset_tools.simulate_raters import HABITS, load_ground_truth, smooth_field  # noqa: E402
from napari_ultramn.annotation.interpolate import _signed_distance  # noqa: E402
from napari_ultramn.annotation.session import AnnotationSession  # noqa: E402
from napari_ultramn.metrics import dice  # noqa: E402
from napari_ultramn.progress import run_to_end  # noqa: E402

GOOD = 0.9  # Dice to the truth at which a person accepts a mask
DRAW_S = 10.0  # a person's time to draw one frame
STRATEGIES = ("every frame", "keyframes + interpolation", "+ propagation", "+ smart keyframes", "+ pre-annotation")


def polygon_clicks(mask: np.ndarray) -> int:
    """Vertices a person clicks to trace ``mask`` (its contour simplified to 1 px); 1 for "no nerve"."""
    from skimage.measure import approximate_polygon, find_contours

    if not mask.any():
        return 1
    contours = find_contours(np.pad(mask, 1).astype(np.uint8), 0.5)
    return sum(max(3, len(approximate_polygon(c, 1.0)) - 1) for c in contours)


def _deepest(mask: np.ndarray) -> tuple[int, int]:
    """The point of ``mask`` farthest from its edge: where a person clicks "this is the nerve"."""
    d = _signed_distance(mask)
    return tuple(int(v) for v in np.unravel_index(int(np.argmax(d)), mask.shape))


class Annotator:
    """One simulated person on one open session; counts what it does and times the tool."""

    def __init__(self, session: AnnotationSession, truth: np.ndarray, rng: np.random.Generator, smart=None):
        self.s, self.truth, self.rng, self.smart = session, truth, rng, smart
        self.n = truth.shape[0]
        self.counts = {"drawn": 0, "assisted": 0, "corrections": 0, "clicks": 0, "tool_s": 0.0, "tool_cpu_s": 0.0}
        self._sdf = {}

    # -- the person ----------------------------------------------------------------------
    def draw(self, t: int) -> np.ndarray:
        """The truth traced by hand: smooth boundary noise of ``HABITS[0]``."""
        habit = HABITS[0]
        if not self.truth[t].any():
            mask = np.zeros_like(self.truth[t])
        else:
            sdf = self._sdf.setdefault(t, _signed_distance(self.truth[t]))
            mask = sdf + habit.grow_px + smooth_field(sdf.shape, self.rng, habit.jitter_px) > 0
        self.counts["drawn"] += 1
        self.counts["clicks"] += polygon_clicks(mask)
        return mask

    def looks_wrong(self, t: int) -> bool:
        """By eye: would a person redraw this frame? (The only use of the truth besides drawing.)"""
        fm = self.s.annotation.frames.get(t)
        return fm is None or dice(fm.mask, self.truth[t]) < GOOD

    # -- the tool ------------------------------------------------------------------------
    def tool(self, fn, *args, clicks: int = 1, **kw):
        """Call the tool (one button or key: ``clicks``); its wall time is the person's wait."""
        self.counts["clicks"] += clicks
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kw)
        finally:
            self.counts["tool_s"] += time.perf_counter() - t0
            self.counts["tool_cpu_s"] += time.process_time() - c0

    def changed(self, fn) -> set[int]:
        """Frames whose mask ``fn()`` replaced."""
        before = dict(self.s.annotation.frames)
        fn()
        after = self.s.annotation.frames
        return {t for t in set(before) | set(after) if before.get(t) is not after.get(t)}

    def smart_correct(self, t: int) -> None:
        """Try the smart keyframe (one click, then a corrective one); draw if it still looks wrong."""
        frame = np.asarray(self.s.clip.frames[t])
        prior = self.s.annotation.frames.get(t)
        truth = self.truth[t]
        positive, negative = [_deepest(truth)] if truth.any() else [], []
        for _attempt in range(2):
            if not positive:
                break
            proposal = self.tool(
                self.smart,
                frame,
                positive,
                negative,
                prior=None if prior is None else prior.mask,
                spacing_mm=self.s.clip.spacing_mm,
            )
            if dice(proposal, truth) >= GOOD:
                self.counts["assisted"] += 1
                self._correct(t, proposal, assisted=True)
                return
            missed, spilled = truth & ~proposal, proposal & ~truth  # where the person clicks next
            if spilled.sum() > missed.sum():
                negative.append(_deepest(spilled))
            elif missed.any():
                positive.append(_deepest(missed))
        self._correct(t, self.draw(t))

    def _correct(self, t: int, mask: np.ndarray, assisted: bool = False) -> None:
        self.tool(self.s.correct, t, mask, clicks=0, assisted=assisted)

    # -- review --------------------------------------------------------------------------
    def review(self, next_frame, fix) -> None:
        """Look at frames in the tool's order; fix those that look wrong; until all were seen since
        they last changed."""
        seen = set(self.s.annotation.keyframes())
        for _ in range(20 * self.n):
            t = next_frame(seen)
            if t is None:
                return
            if self.looks_wrong(t):
                self.counts["corrections"] += 1
                seen -= self.changed(lambda t=t: fix(t))
            seen.add(t)
        raise RuntimeError("review did not converge")

    def in_order(self, seen):
        return next((t for t in range(self.n) if t not in seen), None)

    def by_doubt(self, seen):
        worst = self.tool(self.s.doubts, exclude=seen, limit=1, clicks=0)
        return worst[0].frame if worst else self.in_order(seen)


def run_strategy(
    strategy: int, session: AnnotationSession, truth: np.ndarray, *, seed: int = 0, model=None, keyframe_every: int = 10
) -> dict:
    """Annotate one open clip with strategy 1-5; returns the counts, the final Dice and more."""
    from napari_ultramn.annotation.smart_keyframe import propose_mask as propose

    a = Annotator(session, truth, np.random.default_rng([seed, strategy]), smart=propose)
    s, n = session, truth.shape[0]
    if strategy == 1:
        for t in range(n):
            a.tool(s.set_mask, t, a.draw(t), clicks=0)
    elif strategy == 2:
        keys = sorted({*range(0, n, keyframe_every), n - 1})
        for t in keys:
            a.tool(s.set_mask, t, a.draw(t), clicks=0)
        a.tool(s.interpolate)

        def fix(t):
            a.tool(s.set_mask, t, a.draw(t), clicks=0)
            a.tool(s.interpolate)

        a.review(a.in_order, fix)
    else:
        if strategy == 5:
            from napari_ultramn.model.preannotate import preannotate_clip

            proposal = a.tool(lambda: run_to_end(preannotate_clip(model, s.clip, device="cpu")))
            a.tool(
                s.apply_proposals,
                {t: proposal.masks[t] for t in range(n)},
                {t: float(proposal.confidence[t]) for t in range(n)},
                proposal.frame_planes,
                clicks=0,
            )
        else:
            a.tool(s.set_mask, 0, a.draw(0), clicks=0)
            result = a.tool(lambda: run_to_end(s.propagation(0, 1)))
            a.tool(s.accept_propagation, result)
        fix = a.smart_correct if strategy >= 4 else (lambda t: a._correct(t, a.draw(t)))
        a.review(a.by_doubt, fix)
    a.tool(s.flush, clicks=0)
    final = [dice(s.annotation.frames[t].mask, truth[t]) for t in range(n)]
    return {**a.counts, "frames": n, "dice_min": min(final), "dice_median": float(np.median(final))}


def make_project(root: Path, participants: int, n_frames: int, size: int, seed: int):
    """A phantom study ingested into a project: ``(project, study_dir)``."""
    from dataset_tools.ingest import ingest
    from napari_ultramn.phantom import write_study
    from napari_ultramn.project import Project

    study = root / "study"
    if (root / "project" / "project.json").is_file():  # a rerun in the same work folder
        return Project.open(root / "project"), study
    run_to_end(write_study(study, participants, seed=seed, n_frames=n_frames, size=(size, size)))
    run_to_end(ingest(study / "dicom", root / "project"))
    return Project.open(root / "project"), study


def train_model(root: Path, args) -> tuple:
    """A small UltraMN trained on phantom participants other than the ones annotated."""
    from benchmarks.bench_training_quality import write_phantom_dataset
    from napari_ultramn.model.preannotate import load_model
    from napari_ultramn.model.train import train_run

    run = root / "run"
    if (run / "best.pt").is_file():  # a model this work folder already trained (a rerun)
        print(f"model: reusing {run}", flush=True)
        return load_model(run)
    dataset = root / "train_dataset"
    if not (dataset / "manifest.json").is_file():
        write_phantom_dataset(
            dataset, args.train_participants, 1, 0, args.train_frames, args.train_size, seed=args.seed + 1
        )
    kw = {"base_channels": 4, "depth": 2} if args.quick else {"base_channels": 8, "depth": 3}
    t0 = time.perf_counter()
    summary = run_to_end(
        train_run(
            dataset,
            run,
            model="ultramn",
            epochs=args.epochs,
            batch_size=4,
            window=min(args.window, args.train_frames),
            lr=3e-3,
            device="cpu",
            seed=0,
            patience=10_000,
            model_kwargs=kw,
            max_steps=4 if args.quick else None,
        )
    )
    print(
        f"model: {args.train_participants} other participants ({args.train_frames} frames of "
        f"{args.train_size}x{args.train_size}), {summary['epochs_done']} epochs, "
        f"{summary['steps']} steps in {time.perf_counter() - t0:.0f} s; best validation score "
        f"{summary['best_score']:.3f}",
        flush=True,
    )
    return load_model(run)


def bench_spread(root: Path, size: int = 256, seed: int = 0) -> None:
    """Time one correction spreading over 30 frames (keyframes 0 and 32, correction at 16), per plane.

    The frames between come from a one-anchor propagation of frame 0 through the whole clip
    (drifting as it goes); Dice of frames 1-31 to the truth before and after the correction.
    """
    from napari_ultramn import DEFAULT_PLANES
    from napari_ultramn.io.hdf5clip import write_hdf5_clip
    from napari_ultramn.phantom import generate_clip
    from napari_ultramn.project import Project

    project = Project.create(Path(tempfile.mkdtemp(prefix="spread-", dir=root)) / "project")
    rows = []
    for i, plane in enumerate(DEFAULT_PLANES):
        clip = generate_clip(plane, seed=seed + i, n_frames=40, size=(size, size))
        cid, sha = f"spread{i}", f"{i:064x}"
        write_hdf5_clip(
            project.root / "clips" / f"{cid}.h5",
            clip.frames,
            {
                "clip_id": cid,
                "participant": "p0",
                "plane": plane,
                "spacing_mm": clip.spacing_mm,
                "spacing_source": "stored",
                "source_sha256": sha,
            },
        )
        project.upsert_clips(
            [
                {
                    "clip_id": cid,
                    "file": f"clips/{cid}.h5",
                    "participant": "p0",
                    "side": "right",
                    "plane": plane,
                    "source_sha256": sha,
                    "n_frames": 40,
                    "frame_shape": [size, size],
                    "spacing_mm": list(clip.spacing_mm),
                    "spacing_source": "stored",
                }
            ]
        )
        with AnnotationSession.open(project, cid, "spread", background_save=True) as s:
            s.set_mask(0, clip.masks[0])
            s.accept_propagation(run_to_end(s.propagation(0, 1)))
            s.set_mask(32, clip.masks[32])
            between = range(1, 32)
            before = np.mean([dice(s.annotation.frames[t].mask, clip.masks[t]) for t in between])
            t0, c0 = time.perf_counter(), time.process_time()
            changed = s.correct(16, clip.masks[16])
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            after = np.mean([dice(s.annotation.frames[t].mask, clip.masks[t]) for t in between])
        rows.append((plane, len(changed) - 1, seconds, before, after, cpu))
        print(
            f"spread {plane:22s} {len(changed) - 1} frames in {seconds:.2f} s ({cpu:.2f} CPU s); Dice of frames 2-32 "
            f"{before:.3f} -> {after:.3f}",
            flush=True,
        )
    print(
        f"correction spread over 30 frames of {size}x{size}: median {statistics.median(r[2] for r in rows):.2f} s "
        f"(max {max(r[2] for r in rows):.2f}; CPU {statistics.median(r[5] for r in rows):.2f} s); mean Dice of the frames between {np.mean([r[3] for r in rows]):.3f} "
        f"-> {np.mean([r[4] for r in rows]):.3f}\n"
    )


def table(rows: dict[int, list[dict]]) -> str:
    """Markdown table of medians over clips (person-time ratio on wall time and on CPU time)."""
    head = (
        "| strategy | drawn frames | assisted | corrections | clicks | tool s/clip (CPU s) | "
        "tool s / drawing s (CPU) | final Dice (min) |\n|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for k, rs in rows.items():
        med = {
            key: statistics.median(r[key] for r in rs)
            for key in ("assisted", "corrections", "clicks", "tool_s", "tool_cpu_s", "dice_median")
        }
        share = statistics.median(r["drawn"] / r["frames"] for r in rs)
        ratio, cpu_ratio = (
            statistics.median(r[key] / (DRAW_S * max(r["drawn"], 1)) for r in rs) for key in ("tool_s", "tool_cpu_s")
        )
        name = STRATEGIES[k - 1]
        lines.append(
            f"| ({k}) {name} | {100 * share:.1f}% | {med['assisted']:.0f} | {med['corrections']:.0f} | "
            f"{med['clicks']:.0f} | {med['tool_s']:.2f} ({med['tool_cpu_s']:.2f}) | "
            f"{ratio:.3f} ({cpu_ratio:.3f}) | "
            f"{med['dice_median']:.3f} ({min(r['dice_min'] for r in rs):.3f}) |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--participants", type=int, default=2, help="annotated participants (8 clips each)")
    ap.add_argument("--train-participants", type=int, default=4, help="other participants the model learns from")
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--size", type=int, default=128)
    # the model: small enough to train in minutes on 2 CPU cores (it pre-annotates at its own size)
    ap.add_argument("--train-frames", type=int, default=24)
    ap.add_argument("--train-size", type=int, default=64)
    ap.add_argument("--window", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--strategies", type=int, nargs="+", default=[1, 2, 3, 4, 5], choices=[1, 2, 3, 4, 5])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="work folder (default: a new temporary folder)")
    ap.add_argument("--no-spread", action="store_true", help="skip the 30-frame spread timing")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (numbers meaningless)")
    args = ap.parse_args(argv)
    if args.quick:
        args.participants, args.train_participants, args.frames, args.size, args.epochs = 1, 2, 16, 64, 1
        args.train_frames, args.train_size = 12, 32
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="ultramn-bench-effort-"))
    print(f"work folder: {root}", flush=True)
    project, study = make_project(root, args.participants, args.frames, args.size, args.seed)
    if not args.no_spread:
        bench_spread(root, 64 if args.quick else 256, args.seed)
    model = train_model(root, args) if 5 in args.strategies else None
    import skimage.registration  # noqa: F401 - loaded once per viewer, not per clip: keep it out of clip 1's time

    rows: dict[int, list[dict]] = {k: [] for k in sorted(args.strategies)}
    for rec in project.clips():
        truth = load_ground_truth(study, rec)["masks"]
        for k in rows:
            rater = f"sim{k}"
            with AnnotationSession.open(project, rec["clip_id"], rater, background_save=True) as session:
                r = run_strategy(k, session, truth, seed=args.seed, model=model)
            rows[k].append(r)
            print(
                f"{rec['clip_id']} ({k}) drawn {r['drawn']}/{r['frames']} assisted {r['assisted']} "
                f"corrections {r['corrections']} clicks {r['clicks']} tool {r['tool_s']:.2f} s "
                f"({r['tool_cpu_s']:.2f} CPU s) "
                f"Dice min {r['dice_min']:.3f}",
                flush=True,
            )
    print(
        f"\n{len(project.clips())} phantom clips of {args.frames} frames, {args.size}x{args.size}; "
        f"a person's drawing time {DRAW_S:.0f} s per drawn frame; medians over clips\n"
    )
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
