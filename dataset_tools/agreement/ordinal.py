"""Agreement on ordered grades (the clip's image quality: ok < poor < unusable).

Nominal coefficients count "ok vs unusable" as the same miss as "ok vs poor"; for an ordered
scale the size of a disagreement matters. Input everywhere is a *subjects x raters* matrix of
grades (``None`` / NaN where a rater gave none) and the grades **in order**.

* :func:`weighted_kappa`: Cohen's (1968) weighted kappa of two raters, linear
  (Cicchetti-Allison) or quadratic (Fleiss-Cohen) disagreement weights on the grade ranks, or a
  full disagreement matrix; ``statsmodels.stats.inter_rater.cohens_kappa``. References: Cohen
  (1968) Table 1 with his weights 1, 3, 6 gives kappa_w = .348; Fleiss, Cohen & Everitt (1969)
  their example .507; a SAS PROC FREQ printout (in statsmodels' tests) a linear kappa_w of
  0.4701; quadratic kappa_w equals Lin's concordance correlation of the ranks (Fleiss & Cohen
  1973).
* :func:`ordinal_alpha`: Krippendorff's alpha with the ordinal or interval difference function
  (``krippendorff`` package, ``level_of_measurement``), missing grades allowed. Reference:
  Krippendorff (2011) "Computing Krippendorff's alpha-reliability", 4 observers x 12 units:
  nominal 0.743, ordinal 0.815, interval 0.849.

Undefined values (one grade throughout, so no disagreement is possible by chance) are NaN.
"""

from __future__ import annotations

import numpy as np

from .labels import encode

WEIGHTS = ("linear", "quadratic")
LEVELS = ("ordinal", "interval")


def _table(a: np.ndarray, b: np.ndarray, n_categories: int) -> np.ndarray:
    both = (a >= 0) & (b >= 0)
    table = np.zeros((n_categories, n_categories), dtype=np.int64)
    np.add.at(table, (a[both], b[both]), 1)
    return table


def _disagreement(weights, n_categories: int) -> np.ndarray:
    """``(K, K)`` disagreement weights: 0 on the diagonal, growing with the distance of the ranks."""
    if isinstance(weights, str):
        if weights not in WEIGHTS:
            raise ValueError(f"weights must be one of {WEIGHTS} or a K x K matrix, got '{weights}'")
        d = np.abs(np.subtract.outer(np.arange(n_categories), np.arange(n_categories))).astype(float)
        return d if weights == "linear" else d**2
    w = np.asarray(weights, dtype=float)
    if w.shape != (n_categories, n_categories):
        raise ValueError(f"a weight matrix must be {n_categories} x {n_categories}, got shape {w.shape}")
    return w


def weighted_kappa_codes(a: np.ndarray, b: np.ndarray, n_categories: int, weights="linear") -> float:
    """Weighted kappa of two rank-code vectors (-1 missing); NaN when no pair is rated or when
    chance disagreement is zero (both raters gave one and the same grade throughout)."""
    from statsmodels.stats.inter_rater import cohens_kappa

    table = _table(np.asarray(a), np.asarray(b), n_categories)
    n = table.sum()
    if n == 0:
        return float("nan")
    w = _disagreement(weights, n_categories)
    expected = np.outer(table.sum(1), table.sum(0)) / n
    if (w * expected).sum() <= 0:
        return float("nan")
    # statsmodels builds the matrix itself from the scores 0..K-1 for 'linear'/'quadratic' (the
    # same matrix as ours); a custom matrix is passed whole.
    if isinstance(weights, str):
        return float(cohens_kappa(table, wt=weights, return_results=False))
    return float(cohens_kappa(table, weights=w, return_results=False))


def weighted_kappa(a, b, categories, weights="linear") -> float:
    """Weighted kappa of two raters' grades over subjects both graded; ``categories`` in order."""
    codes, cats = encode(np.column_stack([np.asarray(a, object), np.asarray(b, object)]), categories)
    return weighted_kappa_codes(codes[:, 0], codes[:, 1], len(cats), weights)


def ordinal_alpha_codes(codes: np.ndarray, n_categories: int, level: str = "ordinal") -> float:
    """Krippendorff's alpha of a ``(N, R)`` rank-code matrix (-1 missing) at ``level``."""
    import krippendorff

    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got '{level}'")
    codes = np.asarray(codes)
    pairable = (codes >= 0).sum(axis=1) >= 2
    used = codes[pairable][codes[pairable] >= 0]
    if not pairable.any() or len(np.unique(used)) < 2:
        return float("nan")
    data = np.where(codes[pairable] >= 0, codes[pairable], np.nan).T.astype(float)  # raters x units
    # value_domain: the ordinal metric ranks grades by the full scale, not only those seen
    return float(
        krippendorff.alpha(
            reliability_data=data,
            level_of_measurement=level,  # type: ignore[arg-type]  # checked
            value_domain=np.arange(n_categories, dtype=float),
        )
    )


def ordinal_alpha(ratings, categories, level: str = "ordinal") -> float:
    """Krippendorff's alpha (ordinal or interval) of a subjects x raters matrix of grades."""
    codes, cats = encode(ratings, categories)
    return ordinal_alpha_codes(codes, len(cats), level)
