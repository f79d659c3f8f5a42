"""Demo stage: ingest the phantom study into a project and summarise its clips."""

from __future__ import annotations

import pandas as pd

from dataset_tools.ingest import ingest
from napari_ultramn.demo.context import DemoContext
from napari_ultramn.progress import Progress, ProgressGen
from napari_ultramn.report import ReportSection, escape, table_html


def clip_summary(project) -> pd.DataFrame:
    """One row per clip: participant, side, plane, frames, size, spacing, frame rate, device."""
    rows = []
    for rec in project.clips():
        spacing = rec.get("spacing_mm")
        rows.append(
            {
                "clip": rec["clip_id"],
                "participant": rec["participant"],
                "side": rec.get("side") or "?",
                "plane": rec.get("plane") or "?",
                "frames": rec["n_frames"],
                "size (px)": "x".join(str(s) for s in rec["frame_shape"]),
                "spacing (mm)": "uncalibrated" if not spacing else f"{spacing[0]:.3f} x {spacing[1]:.3f}",
                "fps": f"{1000.0 / rec['frame_time_ms']:.0f}" if rec.get("frame_time_ms") else "?",
                "device": " ".join(filter(None, (rec.get("manufacturer"), rec.get("device_model")))) or "?",
                "sex": rec.get("sex") or "?",
                "age band": rec.get("age_band") or "?",
            }
        )
    return pd.DataFrame(rows)


def demo_stage(ctx: DemoContext) -> ProgressGen[ReportSection]:
    project_dir = ctx.out_dir / "project"
    summary = yield from ingest(ctx.paths["study"] / "dicom", project_dir)
    from napari_ultramn.project import Project

    project = Project.open(project_dir)
    ctx.paths["project"] = project_dir
    df = clip_summary(project)
    yield Progress(1, 1, f"project has {len(df)} clips")
    counts = pd.crosstab(df["plane"], df["side"]).reset_index()
    counts.columns.name = None  # else the pivot's "side" label shows as a stray header cell
    audit = (
        ""
        if summary.audit is None
        else f"<p class='{'good' if not summary.audit.hits else 'bad'}'>PHI audit of what ingest wrote "
        f"(<code>ultramn audit-phi</code>): {escape(summary.audit.summary())}.</p>"
    )
    html = (
        f"<p>Ingested <a href='study/dicom/'><code>study/dicom/</code></a> into "
        f"<a href='project/'><code>project/</code></a>: {escape(summary.line())}. Participants are keyed-hash "
        f"pseudonyms; dates shifted; frames cropped to the ultrasound imaging region.</p>{audit}"
        f"<h3>Clips per plane and side</h3>{table_html(counts)}<h3>Clips</h3>{table_html(df, max_rows=24)}"
    )
    return ReportSection("Ingest and de-identification", html)
