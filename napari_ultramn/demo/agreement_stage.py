"""Demo stage: three simulated raters annotate the phantom project, then the agreement report."""

from __future__ import annotations

from dataset_tools.agreement.project_report import agreement_report
from dataset_tools.simulate_raters import simulate_raters
from napari_ultramn.demo.context import DemoContext
from napari_ultramn.progress import Progress, ProgressGen, relay
from napari_ultramn.report import ReportSection

RATERS = ("r1", "r2", "r3")


def demo_stage(ctx: DemoContext) -> ProgressGen[ReportSection]:
    """Needs ``ctx.paths['project']`` and ``ctx.paths['study']``; sets ``ctx.paths['agreement']``."""
    from napari_ultramn.project import Project

    project = Project.open(ctx.paths["project"])
    sim = simulate_raters(project, ctx.paths["study"], raters=RATERS, seed=ctx.seed)
    yield from relay(sim, lambda p: Progress(p.done, 2 * p.total, p.message))
    out_dir = ctx.out_dir / "agreement"
    gen = agreement_report(project, out_dir, seed=ctx.seed, n_boot=50 if ctx.quick else 200)
    result = yield from relay(gen, lambda p: Progress(100 + p.done, 200, p.message))
    ctx.paths["agreement"] = out_dir
    ctx.results["agreement"] = result.summary()
    section = result.section(report_href="agreement/report.html")  # relative to the demo's report.html
    section.html = (
        f"<p>Simulated raters {', '.join(RATERS)} annotated every clip from the phantom's ground truth: "
        "smooth boundary jitter, r2 a slightly larger tracer, r3 hurried (skipped frames, an occasional "
        "wrong plane).</p>" + section.html
    )
    return section
