"""Agreement on nominal labels (imaging planes) among raters, tolerating missing ratings.

Input everywhere is a *subjects x raters* matrix (a clip or a frame is a subject): a list of rows,
a numpy object array or a DataFrame, with ``None`` / NaN where a rater gave no label.

Libraries: Cohen's kappa and (complete data) Fleiss' kappa come from ``statsmodels.stats.inter_rater``;
Krippendorff's alpha from the ``krippendorff`` package. Gwet's AC1 and the missing-data forms of
percent agreement and Fleiss' kappa follow Gwet (2014), *Handbook of Inter-Rater Reliability*, 4th ed.,
ch. 2-4 (the formulas of the ``irrCAC`` R package), since no maintained Python library offers them.

Undefined values (e.g. kappa when every rating is the same plane, so chance agreement is 1) are
returned as NaN *with a reason* from :func:`label_agreement`; reports print the reason.
"""

from __future__ import annotations

import warnings
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

MISSING = -1


def _is_missing(v) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA


def encode(ratings, categories=None) -> tuple[np.ndarray, list]:
    """``(codes (N, R) int, categories)``; codes index ``categories``, -1 = missing.

    ``categories`` defaults to the sorted distinct labels; a label outside a given vocabulary is an
    error (a typo in a plane name must not silently become its own category).
    """
    arr = ratings.to_numpy(dtype=object) if isinstance(ratings, pd.DataFrame) else np.asarray(ratings, dtype=object)
    if arr.ndim != 2:
        raise ValueError(f"ratings must be a subjects x raters matrix, got shape {arr.shape}")
    present = sorted({v for v in arr.ravel() if not _is_missing(v)}, key=str)
    cats = list(categories) if categories is not None else present
    unknown = [v for v in present if v not in cats]
    if unknown:
        raise ValueError(f"labels {unknown} are not in the vocabulary {cats}")
    index = {c: i for i, c in enumerate(cats)}
    codes = np.full(arr.shape, MISSING, dtype=np.int64)
    for (i, j), v in np.ndenumerate(arr):
        if not _is_missing(v):
            codes[i, j] = index[v]
    return codes, cats


def counts_matrix(codes: np.ndarray, n_categories: int) -> np.ndarray:
    """``(N, K)`` number of raters who put each subject in each category (Fleiss' n_ij)."""
    out = np.zeros((codes.shape[0], n_categories), dtype=np.int64)
    for j in range(codes.shape[1]):
        ok = codes[:, j] >= 0
        np.add.at(out, (np.flatnonzero(ok), codes[ok, j]), 1)
    return out


def _pa_pi(counts: np.ndarray) -> tuple[float, np.ndarray, int]:
    """Observed pairwise agreement over subjects rated at least twice, and category prevalences
    over subjects rated at least once (Gwet 2014, eq. 2.5.x; irrCAC ``*.raw``)."""
    r = counts.sum(axis=1)
    multi = r >= 2
    if not multi.any():
        return float("nan"), np.full(counts.shape[1], np.nan), 0
    c = counts[multi]
    rm = r[multi]
    pa = float(np.mean((c * (c - 1)).sum(axis=1) / (rm * (rm - 1))))
    rated = r >= 1
    pi = (counts[rated] / r[rated, None]).mean(axis=0)
    return pa, pi, int(multi.sum())


def percent_agreement(ratings, categories=None) -> float:
    """Mean proportion of agreeing rater pairs per subject (subjects with >= 2 ratings)."""
    codes, cats = encode(ratings, categories)
    return _pa_pi(counts_matrix(codes, len(cats)))[0]


def gwet_ac1(ratings, categories=None) -> float:
    """Gwet's AC1 (Gwet 2008, Br J Math Stat Psychol 61:29-48; Gwet 2014 for missing ratings).

    ``pe = sum_k pi_k (1 - pi_k) / (q - 1)`` with ``q = len(categories)``: pass the full plane
    vocabulary so a plane nobody used still counts as a choice the raters had. Reference: the
    irrCAC ``cac.raw4raters`` example (Krippendorff's data) gives AC1 = 0.77544.
    """
    codes, cats = encode(ratings, categories)
    return ac1_codes(codes, len(cats))


def ac1_codes(codes: np.ndarray, n_categories: int) -> float:
    if n_categories < 2:
        return float("nan")
    pa, pi, n = _pa_pi(counts_matrix(codes, n_categories))
    if n == 0:
        return float("nan")
    pe = float((pi * (1 - pi)).sum() / (n_categories - 1))
    return (pa - pe) / (1 - pe)


def fleiss_kappa(ratings, categories=None) -> float:
    """Fleiss' kappa (Fleiss 1971, Psychol Bull 76:378-382).

    Every subject rated by every rater: ``statsmodels.stats.inter_rater.fleiss_kappa``. With missing
    ratings: Gwet's (2014) generalisation (pairwise agreement over subjects with >= 2 ratings,
    chance from prevalences over rated subjects), identical on complete data.
    """
    codes, cats = encode(ratings, categories)
    return fleiss_codes(codes, len(cats))


def fleiss_codes(codes: np.ndarray, n_categories: int) -> float:
    counts = counts_matrix(codes, n_categories)
    r = counts.sum(axis=1)
    if codes.size and (codes >= 0).all():
        from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return float(sm_fleiss(counts, method="fleiss"))
    pa, pi, n = _pa_pi(counts[r >= 1])
    pe = float((pi**2).sum())
    if n == 0 or pe >= 1:
        return float("nan")
    return (pa - pe) / (1 - pe)


def krippendorff_alpha(ratings, categories=None) -> float:
    """Krippendorff's alpha, nominal, missing ratings allowed (the ``krippendorff`` package).

    Reference: Krippendorff (2011) "Computing Krippendorff's alpha-reliability", the 4 observers x
    12 units example with missing values: alpha = 0.743.
    """
    codes, _ = encode(ratings, categories)
    return alpha_codes(codes)


def alpha_codes(codes: np.ndarray) -> float:
    import krippendorff

    pairable = (codes >= 0).sum(axis=1) >= 2
    if not pairable.any() or len(np.unique(codes[pairable][codes[pairable] >= 0])) < 2:
        return float("nan")
    data = np.where(codes[pairable] >= 0, codes[pairable], np.nan).T.astype(float)  # raters x units
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))


def cohen_codes(a: np.ndarray, b: np.ndarray, n_categories: int) -> float:
    """Cohen's kappa of two code vectors (-1 missing) via statsmodels; NaN when undefined."""
    from statsmodels.stats.inter_rater import cohens_kappa

    both = (a >= 0) & (b >= 0)
    if not both.any():
        return float("nan")
    table = np.zeros((n_categories, n_categories), dtype=np.int64)
    np.add.at(table, (a[both], b[both]), 1)
    n = table.sum()
    pe = float((table.sum(0) * table.sum(1)).sum()) / n**2
    if pe >= 1:  # both raters used one and the same label throughout: chance agreement is total
        return float("nan")
    return float(cohens_kappa(table, return_results=False))


def coefficients_codes(codes: np.ndarray, n_categories: int) -> dict[str, float]:
    """All multi-rater coefficients of a code matrix (fast path for the bootstrap)."""
    return {
        "percent_agreement": _pa_pi(counts_matrix(codes, n_categories))[0],
        "fleiss_kappa": fleiss_codes(codes, n_categories),
        "krippendorff_alpha": alpha_codes(codes),
        "gwet_ac1": ac1_codes(codes, n_categories),
    }


def confusion_matrix(a, b, categories) -> pd.DataFrame:
    """Rows: rater a's label, columns: rater b's; subjects both rated. Index/columns = categories."""
    codes, cats = encode(np.column_stack([np.asarray(a, object), np.asarray(b, object)]), categories)
    both = (codes >= 0).all(axis=1)
    table = np.zeros((len(cats), len(cats)), dtype=np.int64)
    np.add.at(table, (codes[both, 0], codes[both, 1]), 1)
    return pd.DataFrame(table, index=pd.Index(cats, name="a"), columns=pd.Index(cats, name="b"))


def cohen_kappa(a, b, categories=None) -> float:
    """Cohen's (1960) unweighted kappa for two raters over subjects both rated
    (``statsmodels.stats.inter_rater.cohens_kappa``). Reference: Cohen 1960, Table 1, kappa = .492.
    """
    codes, cats = encode(np.column_stack([np.asarray(a, object), np.asarray(b, object)]), categories)
    return cohen_codes(codes[:, 0], codes[:, 1], len(cats))


def per_category(ratings, categories=None) -> pd.DataFrame:
    """Per label: ratings given, specific agreement and category kappa (Fleiss 1971, eq. 13: the
    kappa of "this plane vs any other"), over subjects with >= 2 ratings."""
    codes, cats = encode(ratings, categories)
    counts = counts_matrix(codes, len(cats))
    r = counts.sum(axis=1)
    rows = []
    for k, cat in enumerate(cats):
        c = counts[r >= 2, k]
        rr = r[r >= 2]
        given = int(counts[:, k].sum())
        denom = float((c * (rr - 1)).sum())
        specific = float((c * (c - 1)).sum()) / denom if denom else float("nan")
        binary = np.where(codes < 0, None, np.where(codes == k, "yes", "no")).astype(object)  # type: ignore[call-overload]
        kappa = fleiss_kappa(binary, ["yes", "no"]) if given else float("nan")
        rows.append({"label": cat, "n_ratings": given, "specific_agreement": specific, "kappa": kappa})
    return pd.DataFrame(rows)


def label_agreement(ratings, categories=None, raters=None) -> dict:
    """Every coefficient for one subjects x raters matrix, with counts and reasons for NaNs."""
    codes, cats = encode(ratings, categories)
    n_rated = int(((codes >= 0).sum(axis=1) >= 2).sum())
    out: dict[str, Any] = {
        "n_subjects": int(codes.shape[0]),
        "n_subjects_pairable": n_rated,
        "n_raters": int(codes.shape[1]),
        **coefficients_codes(codes, len(cats)),
    }
    used = np.unique(codes[codes >= 0])
    if n_rated == 0:
        out["note"] = "no subject was labelled by two raters"
    elif len(used) < 2:
        out["note"] = f"every label is '{cats[used[0]]}': kappa and alpha are undefined (chance agreement is 1)"
    else:
        out["note"] = ""
    return out


def pairwise_cohen(ratings, categories=None, raters=None) -> pd.DataFrame:
    """Cohen's kappa and percent agreement for every rater pair (rows: rater_a, rater_b, ...)."""
    codes, cats = encode(ratings, categories)
    names = list(raters) if raters is not None else [f"rater{j}" for j in range(codes.shape[1])]
    rows = []
    for i, j in combinations(range(codes.shape[1]), 2):
        both = (codes[:, i] >= 0) & (codes[:, j] >= 0)
        rows.append(
            {
                "rater_a": names[i],
                "rater_b": names[j],
                "n_subjects": int(both.sum()),
                "percent_agreement": float((codes[both, i] == codes[both, j]).mean()) if both.any() else float("nan"),
                "cohen_kappa": cohen_codes(codes[:, i], codes[:, j], len(cats)),
            }
        )
    return pd.DataFrame(rows)
