"""``ultramn demo``: the whole pipeline on built-in synthetic data, ending in an HTML report.

phantom study -> de-identified project -> simulated raters + agreement -> participant-split
datasets -> brief training, evaluation and pre-annotation. Each stage is a generator
``demo_stage(ctx)`` in its own module (see :mod:`napari_ultramn.demo_context`); the report is
rewritten after every stage, so a person can open it while the demo still runs.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path

from . import __version__
from .demo_context import DemoContext
from .progress import Progress, ProgressGen, relay
from .report import ReportSection, escape, write_report

#: (stage name, module holding demo_stage), in pipeline order.
STAGES = (
    ("phantom", "napari_ultramn.phantom.demo"),
    ("ingest", "dataset_tools.ingest_demo"),
    ("agreement", "dataset_tools.agreement.demo"),
    ("dataset", "dataset_tools.dataset_demo"),
    ("model", "napari_ultramn.model.demo"),
)


def run_demo(out_dir: str | Path, *, quick: bool = False, seed: int = 0,
             stages: list[str] | None = None) -> ProgressGen[Path]:
    """Run the stages (all by default) into ``out_dir``; returns the report's path."""
    ctx = DemoContext(out_dir=Path(out_dir), quick=quick, seed=seed)
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    chosen = [s for s in STAGES if stages is None or s[0] in stages]
    sections: list[ReportSection] = []
    timings = []
    report = ctx.out_dir / "report.html"
    for i, (name, module) in enumerate(chosen):
        yield Progress(i, len(chosen), f"{name}: starting")
        stage = importlib.import_module(module).demo_stage
        t0 = time.perf_counter()
        section = yield from relay(stage(ctx), lambda p, i=i, name=name: Progress(
            i, len(chosen), f"{name}: {p.message}", p.metrics))
        timings.append((name, time.perf_counter() - t0))
        sections.append(section)
        write_report(report, "UltraMN demo report", sections, _intro(ctx, timings))
    yield Progress(len(chosen), len(chosen), f"report: {report}")
    return report


def _intro(ctx: DemoContext, timings) -> str:
    rows = "".join(f"<tr><td>{escape(n)}</td><td>{t:.1f} s</td></tr>" for n, t in timings)
    paths = "".join(f"<li>{escape(k)}: <code>{escape(v)}</code></li>" for k, v in ctx.paths.items())
    return (
        f"<p>Everything below was made by <code>ultramn demo</code> (napari-ultramn {__version__}) "
        f"from synthetic phantom data, seed {ctx.seed}{' (quick settings)' if ctx.quick else ''}. "
        f"All files are under <code>{escape(ctx.out_dir)}</code>:</p><ul>{paths}</ul>"
        f"<table><tr><th>stage</th><th>time</th></tr>{rows}</table>"
    )
