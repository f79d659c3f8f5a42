"""``ultramn demo``: the whole pipeline on built-in synthetic data, ending in an HTML report.

phantom study -> de-identified project -> simulated raters + agreement -> participant-split
datasets -> training, evaluation and pre-annotation. Each stage is a generator
``demo_stage(ctx)`` in its own module (see :mod:`napari_ultramn.demo.context`); the report is
rewritten after every stage, so a person can open it while the demo still runs.

Each finished stage leaves its report section in ``OUT/.demo/<stage>.json``, so ``--stages model``
on an existing output re-runs the model stage and the report still shows every stage.
Progress is one share of the whole: each stage's own progress weighted by how long that stage
usually takes, so the estimate of time left is time-based, never frozen on a stage count.
"""

from __future__ import annotations

import importlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from napari_ultramn import __version__
from napari_ultramn.atomic import atomic_write_json
from napari_ultramn.demo.context import DemoContext
from napari_ultramn.progress import Progress, ProgressGen, relay
from napari_ultramn.report import ReportSection, escape, write_report

#: (stage name, module holding demo_stage), in pipeline order.
STAGES = (
    ("phantom", "napari_ultramn.demo.phantom_stage"),
    ("ingest", "napari_ultramn.demo.ingest_stage"),
    ("agreement", "napari_ultramn.demo.agreement_stage"),
    ("dataset", "napari_ultramn.demo.dataset_stage"),
    ("model", "napari_ultramn.demo.model_stage"),
)
#: Typical seconds per stage on an idle 2-core machine (quick, full): only shapes the progress bar
#: (full: measured by a run of .ci/run, the README's install line, 2.2 min in all).
STAGE_SECONDS = {"phantom": (2, 3), "ingest": (1, 7), "agreement": (6, 11), "dataset": (5, 5), "model": (12, 106)}
#: Progress units of the whole demo (a bar of per-mille).
TOTAL = 1000
STATE_DIR = ".demo"


@dataclass
class DemoResult:
    """What the demo made: the report, each stage's seconds, and a line of key figures per stage."""

    report: Path
    seconds: dict[str, float] = field(default_factory=dict)
    figures: dict[str, str] = field(default_factory=dict)

    def summary_lines(self) -> list[str]:
        total = sum(self.seconds.values())
        lines = [f"Demo finished in {total / 60:.1f} min."]
        for name, secs in self.seconds.items():
            figures = self.figures.get(name, "")
            lines.append(f"  {name:<10} {secs:6.0f} s  {figures}".rstrip())
        lines.append(f"Open the report: {self.report}")
        return lines


def run_demo(
    out_dir: str | Path, *, quick: bool = False, seed: int = 0, stages: list[str] | None = None
) -> ProgressGen[DemoResult]:
    """Run the stages (all by default) into ``out_dir``; returns the report's path and figures."""
    ctx = DemoContext(out_dir=Path(out_dir), quick=quick, seed=seed)
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    chosen = [s for s in STAGES if stages is None or s[0] in stages]
    weights = [STAGE_SECONDS[name][0 if quick else 1] for name, _ in chosen]
    starts = [sum(weights[:i]) / sum(weights) for i in range(len(chosen))]
    result = DemoResult(report=ctx.out_dir / "report.html")
    for i, (name, module) in enumerate(chosen):
        share = weights[i] / sum(weights)
        yield Progress(round(TOTAL * starts[i]), TOTAL, f"{name}: starting")
        stage = importlib.import_module(module).demo_stage
        t0 = time.perf_counter()
        section = yield from relay(stage(ctx), _within(name, starts[i], share))
        result.seconds[name] = time.perf_counter() - t0
        result.figures[name] = key_figures(name, ctx)
        _save_stage(ctx.out_dir, name, section, result.seconds[name], result.figures[name])
        _write(ctx, result.report)
    yield Progress(TOTAL, TOTAL, f"report: {result.report}")
    return result


def _within(name: str, start: float, share: float):
    """Restate a stage's own progress as a share of the whole demo, never going backwards."""
    reached = [0.0]

    def restate(p: Progress) -> Progress:
        if p.total:
            reached[0] = max(reached[0], min(1.0, p.done / p.total))
        return Progress(round(TOTAL * (start + share * reached[0])), TOTAL, f"{name}: {p.message}", p.metrics)

    return restate


def key_figures(name: str, ctx: DemoContext) -> str:
    """One line of the numbers a person looks for after each stage ('' if the stage has none)."""
    import math

    def num(value) -> str:
        return "n/a" if value is None or not math.isfinite(float(value)) else f"{float(value):.3f}"

    if name == "dataset" and "dataset_manifest" in ctx.results:
        clips: dict[str, int] = {}
        for row in ctx.results["dataset_manifest"].get("counts", []):
            clips[row["split"]] = clips.get(row["split"], 0) + int(row.get("clips", 0))
        return "clips per split: " + ", ".join(f"{k} {v}" for k, v in clips.items()) if clips else ""
    if name == "agreement" and "agreement" in ctx.results:
        table = ctx.results["agreement"]
        rows = table[table["coefficient"].isin(["fleiss_kappa", "dice"])]
        names = {"fleiss_kappa": "Fleiss kappa", "dice": "Dice"}
        return "; ".join(f"{r['what']} {names[r['coefficient']]} {num(r['value'])}" for r in rows.to_dict("records"))
    if name == "model" and "model" in ctx.results:
        from napari_ultramn.model.evaluate import usability_note

        s = next(iter(ctx.results["model"].values()))
        line = f"nerve Dice {num(s.get('dice'))}, plane accuracy {num(s.get('plane_accuracy'))} (held-out participants)"
        if usability_note(s):
            line += " - NOT usable yet" + (" (--quick trains for seconds only)" if ctx.quick else "")
        return line
    return ""


def _save_stage(out_dir: Path, name: str, section: ReportSection, seconds: float, figures: str) -> None:
    atomic_write_json(
        out_dir / STATE_DIR / f"{name}.json",
        {"title": section.title, "html": section.html, "seconds": seconds, "figures": figures},
    )


def _saved_stages(out_dir: Path) -> list[tuple[str, dict]]:
    """Every stage's saved section, in pipeline order (stages never run here are left out)."""
    saved = []
    for name, _ in STAGES:
        path = out_dir / STATE_DIR / f"{name}.json"
        try:
            saved.append((name, json.loads(path.read_text())))
        except (OSError, ValueError):
            continue
    return saved


def _write(ctx: DemoContext, report: Path) -> None:
    saved = _saved_stages(ctx.out_dir)
    sections = [ReportSection(s["title"], s["html"]) for _, s in saved]
    write_report(report, "UltraMN demo report", sections, _intro(ctx, [(n, s["seconds"]) for n, s in saved]))


def _intro(ctx: DemoContext, timings) -> str:
    rows = "".join(f"<tr><td>{escape(n)}</td><td>{t:.1f} s</td></tr>" for n, t in timings)
    folders = "".join(
        f"<li><a href='{escape(folder)}/'><code>{escape(folder)}/</code></a></li>"
        for folder in ("study", "project", "agreement", "dataset", "run")
        if (ctx.out_dir / folder).exists()
    )
    return (
        f"<p>Everything below was made by <code>ultramn demo</code> (napari-ultramn {__version__}) "
        f"from synthetic phantom data, seed {ctx.seed}{' (quick settings)' if ctx.quick else ''}. "
        f"All files are in the folder of this report:</p><ul>{folders}</ul>"
        f"<table><tr><th>stage</th><th>time</th></tr>{rows}</table>"
    )
