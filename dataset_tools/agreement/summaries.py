"""Every agreement statistic of a project, as tidy DataFrames with bootstrap CIs over participants.

Input: :class:`.tables.AgreementTables`. Output: ``{name: DataFrame}`` (the report's CSV files).
Undefined values carry a reason in a ``note`` column; frames where one rater drew nothing are
counted (``n_one_empty``) and left out of distance means, never averaged in as NaN.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from napari_ultramn.annotation.clip_annotation import QUALITIES
from napari_ultramn.progress import Progress, ProgressGen

from .area import ICC_FORMS, ICC_LABELS, bland_altman, icc_table, icc_values
from .bootstrap import ParticipantBootstrap
from .labels import (
    coefficients_codes,
    cohen_codes,
    confusion_matrix,
    encode,
    fleiss_codes,
    label_agreement,
    per_category,
)
from .masks import METRICS
from .ordinal import WEIGHTS, ordinal_alpha_codes, weighted_kappa_codes

COEFFICIENTS = ("percent_agreement", "fleiss_kappa", "krippendorff_alpha", "gwet_ac1")


def plane_statistics(
    labels: pd.DataFrame, raters: list[str], vocabulary: list[str], level: str, n_boot: int, seed: int
) -> dict[str, pd.DataFrame]:
    """Plane-label agreement of one level ('clip' or 'frame'): overall, per pair, per label, confusion."""
    ratings = labels[raters]
    used = {v for v in ratings.to_numpy().ravel() if isinstance(v, str)}
    cats = list(vocabulary) + sorted(used - set(vocabulary))  # keep labels outside the vocabulary visible
    codes, _ = encode(ratings, cats)
    boot = ParticipantBootstrap(labels["participant"], n_boot, seed)
    overall = label_agreement(ratings, cats)
    cis = boot.ci_many(lambda rows: coefficients_codes(codes[rows], len(cats)))
    rows = []
    for coef in COEFFICIENTS:
        low, high, valid = cis.get(coef, (np.nan, np.nan, 0))
        rows.append(
            {
                "level": level,
                "coefficient": coef,
                "value": overall[coef],
                "ci_low": low,
                "ci_high": high,
                "n_boot_valid": valid,
                "n_subjects": overall["n_subjects_pairable"],
                "n_participants": boot.n_participants,
                "note": overall["note"],
            }
        )
    pairs, confusion = [], []
    for i, j in combinations(range(len(raters)), 2):
        a, b = codes[:, i], codes[:, j]
        both = (a >= 0) & (b >= 0)
        kappa = cohen_codes(a, b, len(cats))
        low, high, valid = boot.ci(lambda r, a=a, b=b: cohen_codes(a[r], b[r], len(cats)))
        note = (
            ""
            if np.isfinite(kappa)
            else ("no subject labelled by both" if not both.any() else "one label throughout: kappa undefined")
        )
        pairs.append(
            {
                "level": level,
                "rater_a": raters[i],
                "rater_b": raters[j],
                "n_subjects": int(both.sum()),
                "percent_agreement": float((a[both] == b[both]).mean()) if both.any() else np.nan,
                "cohen_kappa": kappa,
                "ci_low": low,
                "ci_high": high,
                "n_boot_valid": valid,
                "note": note,
            }
        )
        cm = confusion_matrix(ratings.iloc[:, i].to_numpy(object), ratings.iloc[:, j].to_numpy(object), cats)
        for la in cats:
            for lb in cats:
                confusion.append(
                    {
                        "level": level,
                        "rater_a": raters[i],
                        "rater_b": raters[j],
                        "label_a": la,
                        "label_b": lb,
                        "count": int(cm.loc[la, lb]),
                    }
                )
    per_label = per_category(ratings, cats)
    per_label.insert(0, "level", level)
    per_label_ci = [
        boot.ci(lambda r, k=k: fleiss_codes(np.where(codes[r] < 0, -1, codes[r] == k).astype(int), 2))
        if n
        else (np.nan, np.nan, 0)
        for k, n in enumerate(per_label["n_ratings"])
    ]
    per_label["ci_low"] = [c[0] for c in per_label_ci]
    per_label["ci_high"] = [c[1] for c in per_label_ci]
    return {
        "overall": pd.DataFrame(rows),
        "pairwise": pd.DataFrame(pairs),
        "per_label": per_label,
        "confusion": pd.DataFrame(confusion),
    }


def _undefined_reason(codes: np.ndarray, grades: list[str]) -> str:
    """Why an agreement coefficient of ``codes`` is NaN ('' when it is not)."""
    pairable = (codes >= 0).sum(axis=1) >= 2
    used = np.unique(codes[pairable][codes[pairable] >= 0])
    if not pairable.any():
        return "no clip graded by two raters"
    if len(used) < 2:
        return f"every grade is '{grades[used[0]]}': undefined (no disagreement is possible by chance)"
    return ""


def quality_statistics(
    clips: pd.DataFrame, raters: list[str], grades, n_boot: int, seed: int
) -> dict[str, pd.DataFrame]:
    """Agreement on the clip image-quality grade, an ordered scale (``grades`` in order): weighted
    kappa (linear, quadratic) per rater pair and Krippendorff's ordinal alpha over all raters, with
    participant-bootstrap CIs (:mod:`.ordinal`)."""
    grades = list(grades)
    ratings = clips[[f"quality_{r}" for r in raters]]
    codes, _ = encode(ratings, grades)
    k = len(grades)
    boot = ParticipantBootstrap(clips["participant"], n_boot, seed)
    alpha = ordinal_alpha_codes(codes, k, "ordinal")
    low, high, valid = boot.ci(lambda r: ordinal_alpha_codes(codes[r], k, "ordinal"))
    overall = pd.DataFrame(
        [
            {
                "coefficient": "krippendorff_alpha_ordinal",
                "value": alpha,
                "ci_low": low,
                "ci_high": high,
                "n_boot_valid": valid,
                "n_clips": int(((codes >= 0).sum(axis=1) >= 2).sum()),
                "n_participants": boot.n_participants,
                "note": _undefined_reason(codes, grades),
            }
        ]
    )
    pairs = []
    for i, j in combinations(range(len(raters)), 2):
        a, b = codes[:, i], codes[:, j]
        both = (a >= 0) & (b >= 0)
        row = {
            "rater_a": raters[i],
            "rater_b": raters[j],
            "n_clips": int(both.sum()),
            "percent_agreement": float((a[both] == b[both]).mean()) if both.any() else np.nan,
        }
        for w in WEIGHTS:
            row[f"kappa_{w}"] = weighted_kappa_codes(a, b, k, w)
            row[f"ci_low_{w}"], row[f"ci_high_{w}"], row[f"n_boot_valid_{w}"] = boot.ci(
                lambda r, a=a, b=b, w=w: weighted_kappa_codes(a[r], b[r], k, w)
            )
        row["note"] = _undefined_reason(codes[:, [i, j]], grades)
        pairs.append(row)
    return {"overall": overall, "pairwise": pd.DataFrame(pairs)}


def _metric_summary(df: pd.DataFrame, boot: ParticipantBootstrap | None) -> list[dict]:
    out = []
    for metric in METRICS:
        v = df[metric].to_numpy(float)
        ok = np.isfinite(v)
        low, high, valid = boot.mean_ci(v) if boot is not None else (np.nan, np.nan, 0)
        out.append(
            {
                "metric": metric,
                "n_frames": int(ok.sum()),
                "mean": float(v[ok].mean()) if ok.any() else np.nan,
                "median": float(np.median(v[ok])) if ok.any() else np.nan,
                "sd": float(v[ok].std(ddof=1)) if ok.sum() > 1 else np.nan,
                "ci_low": low,
                "ci_high": high,
                "n_boot_valid": valid,
            }
        )
    return out


def boundary_statistics(pairs: pd.DataFrame, n_boot: int, seed: int) -> dict[str, pd.DataFrame]:
    """Boundary metrics pooled per rater pair (and all pairs), per clip and per participant."""
    rows = []
    boot_all = ParticipantBootstrap(pairs["participant"], n_boot, seed)
    for unit, by_unit in pairs.groupby("unit"):
        groups = [("all", by_unit)] + list(by_unit.groupby("pair"))
        for pair, g in groups:
            mask = (pairs["unit"] == unit) & ((pairs["pair"] == pair) if pair != "all" else True)
            boot = boot_all.subset(mask.to_numpy())
            for r in _metric_summary(g, boot):
                rows.append(
                    {
                        "pair": pair,
                        "unit": unit,
                        **r,
                        "n_one_empty": int((g["empty"] == "one").sum()),
                        "n_both_empty": int((g["empty"] == "both").sum()),
                        "n_participants": g["participant"].nunique(),
                    }
                )
    agg = {m: "mean" for m in METRICS}

    def grouped(keys):
        g = pairs.groupby(keys, dropna=False)
        out = g.agg(agg)
        out["n_frames"] = g.size()
        out["n_one_empty"] = g["empty"].agg(lambda e: int((e == "one").sum()))
        return out.reset_index()

    return {
        "by_pair": pd.DataFrame(rows),
        "by_clip": grouped(["clip_id", "participant", "pair", "unit"]),
        "by_participant": grouped(["participant", "pair", "unit"]),
    }


def area_statistics(areas: pd.DataFrame, raters: list[str], n_boot: int, seed: int) -> dict[str, pd.DataFrame]:
    """ICC (primary CIs: exact F / generalized, see :mod:`.area`; participant bootstrap beside them)
    and Bland-Altman per rater pair."""
    icc_rows, ba_rows, notes = [], [], []
    for unit, g in areas.groupby("area_unit"):
        x = g[raters].to_numpy(float)
        complete = np.isfinite(x).all(axis=1)
        if complete.sum() >= 2:
            table = icc_table(x[complete], seed=seed)
            xc = x[complete]
            # secondary interval: resamples participants (their frames together) but keeps the
            # raters fixed, so it leaves rater-to-rater variance out of ICC(2,.)'s uncertainty
            boot = ParticipantBootstrap(g["participant"].to_numpy()[complete], n_boot, seed)
            cis = boot.ci_many(lambda r, xc=xc: icc_values(xc[r]) if len(np.unique(r)) > 1 else {})
            for rec in table.to_dict("records"):
                low, high, valid = cis.get(rec["coefficient"], (np.nan, np.nan, 0))
                icc_rows.append(
                    {
                        **rec,
                        "unit": unit,
                        "ci_low_boot_participants": low,
                        "ci_high_boot_participants": high,
                        "n_boot_valid": valid,
                        "n_participants": boot.n_participants,
                    }
                )
        else:
            notes.append(f"ICC ({unit}): fewer than 2 frames measured by all {len(raters)} raters")
        for ra, rb in combinations(raters, 2):
            both = np.isfinite(g[ra].to_numpy(float)) & np.isfinite(g[rb].to_numpy(float))
            if both.sum() < 2:
                continue
            a, b = g[ra].to_numpy(float)[both], g[rb].to_numpy(float)[both]
            ba = bland_altman(a, b)
            boot = ParticipantBootstrap(g["participant"].to_numpy()[both], n_boot, seed)
            cis = boot.ci_many(lambda r, a=a, b=b: _ba_or_empty(a[r], b[r]))
            row = {"rater_a": ra, "rater_b": rb, "unit": unit, **ba}
            for key in ("bias", "loa_low", "loa_high"):
                row[f"{key}_ci_low"], row[f"{key}_ci_high"], _ = cis.get(key, (np.nan, np.nan, 0))
            ba_rows.append(row)
    icc = pd.DataFrame(icc_rows)
    if icc.empty:
        icc = pd.DataFrame(columns=["coefficient", "form", "value", "ci_low", "ci_high", "unit"])
    return {"icc": icc, "bland_altman": pd.DataFrame(ba_rows), "notes": notes}


def _ba_or_empty(a, b) -> dict:
    return bland_altman(a, b) if a.size >= 2 else {}


def worst_frame_table(pairs: pd.DataFrame, per_clip: int = 5) -> pd.DataFrame:
    """Per clip the frames raters disagree on most: lowest pairwise Dice, then largest area gap
    (the ranking of :func:`dataset_tools.consensus.worst_frames`)."""
    if pairs.empty:
        return pd.DataFrame(columns=["clip_id", "participant", "frame", "dice", "pair", "area_diff", "area_unit"])
    p = pairs.assign(area_diff=(pairs["area_a"] - pairs["area_b"]).abs())
    idx = p.groupby(["clip_id", "frame"])["dice"].idxmin()
    worst = p.loc[idx, ["clip_id", "participant", "frame", "dice", "pair", "hd95", "unit", "area_unit"]]
    worst = worst.merge(p.groupby(["clip_id", "frame"], as_index=False)["area_diff"].max(), on=["clip_id", "frame"])
    worst = worst.sort_values(["dice", "area_diff", "clip_id", "frame"], ascending=[True, False, True, True])
    return worst.groupby("clip_id", sort=False).head(per_clip).reset_index(drop=True)


def compute_statistics(tables, n_boot: int = 200, seed: int = 0) -> ProgressGen[dict]:
    """All statistics; yields progress between the stages."""
    out: dict = {"notes": list(tables.notes)}
    steps = 5
    yield Progress(0, steps, "plane agreement per clip")
    per_level = [plane_statistics(tables.clip_labels, tables.raters, tables.plane_labels, "clip", n_boot, seed)]
    yield Progress(1, steps, "plane agreement per frame")
    per_level.append(plane_statistics(tables.frame_labels, tables.raters, tables.plane_labels, "frame", n_boot, seed))
    for key in ("overall", "pairwise", "per_label", "confusion"):
        out[f"plane_{key}"] = pd.concat([lv[key] for lv in per_level], ignore_index=True)
    yield Progress(2, steps, "image-quality grade agreement")
    q = quality_statistics(tables.clips, tables.raters, QUALITIES, n_boot, seed)
    out["quality_overall"], out["quality_pairwise"] = q["overall"], q["pairwise"]
    yield Progress(3, steps, "boundary agreement")
    if not tables.frame_pairs.empty:
        b = boundary_statistics(tables.frame_pairs, n_boot, seed)
        out.update({f"boundary_{k}": v for k, v in b.items()})
        yield Progress(4, steps, "area agreement")
        a = area_statistics(tables.frame_areas, tables.raters, n_boot, seed)
        out["area_icc"], out["bland_altman"] = a["icc"], a["bland_altman"]
        out["notes"] += a["notes"]
        out["worst_frames"] = worst_frame_table(tables.frame_pairs)
    yield Progress(5, steps, "statistics done")
    return out


__all__ = ["ICC_FORMS", "ICC_LABELS", "compute_statistics"]
