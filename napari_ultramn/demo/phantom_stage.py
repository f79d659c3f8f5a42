"""Demo stage "phantom": write the synthetic study and show what is in it."""

from __future__ import annotations

import time

import numpy as np

from napari_ultramn import DEFAULT_PLANES, NON_STANDARD
from napari_ultramn.progress import ProgressGen
from napari_ultramn.report import ReportSection, escape, image_html, table_html


def outline_rgb(frame: np.ndarray, mask: np.ndarray, colour=(255, 64, 64)) -> np.ndarray:
    """``(H, W, 3) uint8``: the grey frame with the mask's boundary drawn in ``colour``."""
    from scipy import ndimage

    rgb = np.repeat(frame[..., None], 3, axis=2)
    edge = mask & ~ndimage.binary_erosion(mask)
    rgb[edge] = colour
    return rgb


def demo_stage(ctx) -> ProgressGen[ReportSection]:
    """Write the study to ``ctx.out_dir/'study'`` and report thumbnails and counts per plane."""
    from napari_ultramn.io import open_clip
    from napari_ultramn.phantom.study import write_study

    participants, frames, size = (2, 12, (128, 128)) if ctx.quick else (6, 32, (192, 192))
    out = ctx.out_dir / "study"
    t0 = time.perf_counter()
    table = yield from write_study(out, participants, seed=ctx.seed, n_frames=frames, size=size)
    seconds = time.perf_counter() - t0
    ctx.paths["study"] = out

    stats, thumbs = [], []
    for plane in DEFAULT_PLANES:
        rows = table[table["plane"] == plane]
        poor = off = 0
        areas = []
        for i, r in enumerate(rows.itertuples()):
            gt = np.load(out / "ground_truth" / f"{r.sha256}.npz")
            poor += int((gt["quality"] == "poor").sum())
            off += int((gt["plane_labels"] == NON_STANDARD).sum())
            areas.append(gt["masks"].sum(axis=(1, 2)).mean() * float(np.prod(gt["spacing_mm"])))
            if i == 0:  # thumbnail read back through the clip reader, cropped like ingest does
                clip = open_clip(out / r.file, crop_to_region=True)
                thumbs.append(
                    image_html(outline_rgb(clip.frame(0), gt["masks"][0]), caption=f"{plane} ({r.side})", width=220)
                )
        stats.append(
            {
                "plane": plane,
                "clips": len(rows),
                "frames": int(rows["n_frames"].sum()),
                "poor frames": poor,
                "non-standard frames": off,
                "nerve area mm2 (mean)": float(np.mean(areas)) if areas else float("nan"),
            }
        )
    import pandas as pd

    n_frames = int(table["n_frames"].sum())
    sites = ", ".join(f"{s} ({m})" for s, m in table.groupby("site")["manufacturer"].first().items())
    html = (
        f"<p>{len(table)} multi-frame ultrasound DICOM clips of {table['patient_id'].nunique()} "
        f"synthetic participants (both sides, four planes), {n_frames} frames of "
        f"{size[0]}x{size[1]} pixels, written in {seconds:.1f} s to <code>{escape(out)}</code>. "
        f"Sites: {escape(sites)}. Each file carries a burned-in name/date band and ultrasound "
        "region calibration; ground-truth masks are exact. Outlines: ground truth on frame 0.</p>"
        + "".join(thumbs)
        + table_html(pd.DataFrame(stats), float_format="{:.1f}")
    )
    return ReportSection("Synthetic phantom study", html)
