"""Plots of the agreement report (matplotlib, Agg backend) returned as inline HTML."""

from __future__ import annotations

import numpy as np

from napari_ultramn.report import figure_html, image_html

from .masks import boundary
from .tables import load_clip

#: Outline colours, one per rater (colour-blind safe, Okabe & Ito).
RATER_COLOURS = [(230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0)]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def bland_altman_figure(areas, bland_altman, raters) -> str:
    if bland_altman is None or bland_altman.empty:
        return ""
    plt = _plt()
    n = len(bland_altman)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), squeeze=False)
    for ax, r in zip(axes[0], bland_altman.to_dict("records"), strict=True):
        g = areas[areas["area_unit"] == r["unit"]]
        a, b = g[r["rater_a"]].to_numpy(float), g[r["rater_b"]].to_numpy(float)
        ok = np.isfinite(a) & np.isfinite(b)
        ax.scatter((a[ok] + b[ok]) / 2, a[ok] - b[ok], s=6, alpha=0.4, color="#2b6cb0")
        for y, style in ((r["bias"], "-"), (r["loa_low"], "--"), (r["loa_high"], "--")):
            ax.axhline(y, color="#b42318", linestyle=style, linewidth=1)
        unit = "mm²" if r["unit"] == "mm2" else "px"
        ax.set_title(f"{r['rater_a']} − {r['rater_b']}: bias {r['bias']:.2f} {unit}", fontsize=9)
        ax.set_xlabel(f"mean area ({unit})")
        ax.set_ylabel(f"difference ({unit})")
    fig.tight_layout()
    return figure_html(fig, "Bland-Altman: nerve area per frame, bias and 95% limits of agreement")


def plane_kappa_figure(per_label) -> str:
    if per_label is None or per_label.empty:
        return ""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    levels = list(per_label["level"].unique())
    labels = list(per_label["label"].unique())
    width = 0.8 / max(len(levels), 1)
    for i, level in enumerate(levels):
        g = per_label[per_label["level"] == level].set_index("label").reindex(labels)
        ax.bar(np.arange(len(labels)) + i * width, g["kappa"].fillna(0), width, label=f"per {level}")
    ax.set_xticks(np.arange(len(labels)) + width * (len(levels) - 1) / 2)
    ax.set_xticklabels([str(lab).replace("_", "\n") for lab in labels], fontsize=8)
    ax.set_ylabel("kappa (this plane vs. others)")
    ax.set_ylim(min(0, float(per_label["kappa"].min(skipna=True) or 0)), 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return figure_html(fig, "Per-plane kappa (Fleiss 1971 category kappa; planes nobody used are shown as 0)")


def dice_figure(frame_pairs) -> str:
    if frame_pairs is None or frame_pairs.empty:
        return ""
    plt = _plt()
    pairs = sorted(frame_pairs["pair"].unique())
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    axes[0].boxplot([frame_pairs.loc[frame_pairs["pair"] == p, "dice"] for p in pairs])
    axes[0].set_xticks(range(1, len(pairs) + 1), pairs)  # 'tick_labels=' needs matplotlib 3.9
    axes[0].set_ylabel("Dice per frame")
    for p in pairs:
        v = frame_pairs.loc[frame_pairs["pair"] == p, "hd95"].dropna()
        axes[1].hist(v, bins=30, alpha=0.5, label=p)
    units = "/".join(sorted(frame_pairs["unit"].unique()))
    axes[1].set_xlabel(f"HD95 ({units})")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return figure_html(fig, "Dice and HD95 distributions per rater pair")


def outline_thumbnail(
    image: np.ndarray, masks: dict[str, np.ndarray], raters: list[str], min_size: int = 200
) -> np.ndarray:
    """``(h, w, 3) uint8``: the frame around the nerve in grey, each rater's outline in their colour.

    Cropped to the masks' union with as much context again on each side, then enlarged (nearest
    neighbour) to at least ``min_size`` pixels so one-pixel disagreements stay visible.
    """
    image = np.asarray(image, np.uint8)
    union = np.zeros(image.shape, bool)
    for m in masks.values():
        union |= m
    if union.any():
        rows, cols = np.flatnonzero(union.any(axis=1)), np.flatnonzero(union.any(axis=0))
        pad = max(rows[-1] - rows[0], cols[-1] - cols[0], 8)
        r0, r1 = max(rows[0] - pad, 0), min(rows[-1] + pad + 1, image.shape[0])
        c0, c1 = max(cols[0] - pad, 0), min(cols[-1] + pad + 1, image.shape[1])
        image = image[r0:r1, c0:c1]
        masks = {r: m[r0:r1, c0:c1] for r, m in masks.items()}
    zoom = max(1, int(np.ceil(min_size / max(min(image.shape), 1))))
    image = np.kron(image, np.ones((zoom, zoom), np.uint8))
    rgb = np.repeat(image[..., None], 3, axis=2)
    for r, mask in masks.items():
        edge = boundary(np.kron(mask, np.ones((zoom, zoom), bool)))
        rgb[edge] = RATER_COLOURS[raters.index(r) % len(RATER_COLOURS)]
    return rgb


def worst_thumbnails(result, project, n: int) -> str:
    worst = result.worst_frames(n)
    if worst.empty or n <= 0:
        return ""
    raters = result.tables.raters
    legend = " ".join(
        f"<span style='color:rgb{RATER_COLOURS[i % len(RATER_COLOURS)]}'>&#9632; {r}</span>"
        for i, r in enumerate(raters)
    )
    parts = [f"<p>{legend}</p>"]
    for row in worst.to_dict("records"):
        try:
            clip = project.open_clip(row["clip_id"])
            image = clip.frame(int(row["frame"]))
        except (OSError, ValueError) as exc:  # a clip file gone missing must not sink the report
            parts.append(f"<p class='note'>{row['clip_id']} frame {row['frame']}: cannot show ({exc})</p>")
            continue
        rec = project.clip_record(row["clip_id"])
        anns = load_clip(project, rec, project.annotations.human_raters(row["clip_id"]))
        masks = {r: a.frames[int(row["frame"])].mask for r, a in anns.items() if int(row["frame"]) in a.frames}
        parts.append(
            image_html(
                outline_thumbnail(image, masks, raters),
                f"{row['clip_id']} frame {row['frame']}: Dice {row['dice']:.2f} ({row['pair']})",
                width=220,
            )
        )
    return "".join(parts)


def all_figures(result, project, n_thumbnails: int) -> dict[str, str]:
    s, t = result.stats, result.tables
    out = {"plane_kappa": plane_kappa_figure(s.get("plane_per_label"))}
    if "boundary_by_pair" in s:
        out["dice"] = dice_figure(t.frame_pairs)
        out["bland_altman"] = bland_altman_figure(t.frame_areas, s.get("bland_altman"), t.raters)
        out["worst"] = worst_thumbnails(result, project, n_thumbnails)
    return out
