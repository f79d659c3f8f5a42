"""Agreement on nerve cross-sectional area: intraclass correlation and Bland-Altman.

Input: a *subjects x raters* table of areas (mm^2, or px for uncalibrated clips), NaN = not
measured. ICCs use subjects every rater measured (complete cases; the count is reported).

* :func:`icc_table` calls ``pingouin.intraclass_corr`` (the established implementation, with its
  F-test confidence intervals) for the six Shrout & Fleiss (1979) forms.
* :func:`icc_values` is the same six formulas from the two-way ANOVA mean squares in numpy,
  vectorised over many tables at once for the participant bootstrap; tested equal to pingouin
  and to Shrout & Fleiss (1979) Table 2.

Shrout & Fleiss forms: ICC(1,1) one-way random; ICC(2,1) two-way random, absolute agreement;
ICC(3,1) two-way mixed, consistency; ``k`` forms are the reliability of the mean of k raters.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

ICC_FORMS = ("ICC1", "ICC2", "ICC3", "ICC1k", "ICC2k", "ICC3k")
ICC_LABELS = {
    "ICC1": "ICC(1,1)", "ICC2": "ICC(2,1)", "ICC3": "ICC(3,1)",
    "ICC1k": "ICC(1,k)", "ICC2k": "ICC(2,k)", "ICC3k": "ICC(3,k)",
}


def complete_cases(areas) -> np.ndarray:
    """``(n, k) float`` rows with every rater present; raises a clear error when too few remain."""
    x = np.asarray(areas, dtype=float)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"areas must be a subjects x raters table with at least 2 raters, got shape {x.shape}")
    x = x[np.isfinite(x).all(axis=1)]
    if x.shape[0] < 2:
        raise ValueError(f"ICC needs at least 2 subjects measured by every rater, found {x.shape[0]}")
    return x


def icc_values(areas) -> dict[str, np.ndarray | float]:
    """The six Shrout & Fleiss ICCs from ANOVA mean squares.

    ``areas``: ``(n, k)`` complete table, or ``(B, n, k)`` for B tables at once (returns arrays).
    A table without variance gives NaN.
    """
    x = np.asarray(areas, dtype=float)
    single = x.ndim == 2
    if single:
        x = x[None]
    _, n, k = x.shape
    gm = x.mean(axis=(1, 2), keepdims=True)
    rows = x.mean(axis=2, keepdims=True)
    cols = x.mean(axis=1, keepdims=True)
    ss_total = ((x - gm) ** 2).sum(axis=(1, 2))
    ss_rows = k * ((rows - gm) ** 2).sum(axis=(1, 2))
    ss_cols = n * ((cols - gm) ** 2).sum(axis=(1, 2))
    ss_err = ss_total - ss_rows - ss_cols
    msr = ss_rows / (n - 1)
    msc = ss_cols / (k - 1)
    mse = ss_err / ((n - 1) * (k - 1))
    msw = (ss_total - ss_rows) / (n * (k - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {
            "ICC1": (msr - msw) / (msr + (k - 1) * msw),
            "ICC2": (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n),
            "ICC3": (msr - mse) / (msr + (k - 1) * mse),
            "ICC1k": (msr - msw) / msr,
            "ICC2k": (msr - mse) / (msr + (msc - mse) / n),
            "ICC3k": (msr - mse) / msr,
        }
    return {key: float(v[0]) for key, v in out.items()} if single else out


def icc_table(areas) -> pd.DataFrame:
    """``pingouin.intraclass_corr`` on the complete cases: one row per form with ICC, F, df1, df2,
    pval, CI95 lower/upper, n_subjects, n_raters; ``form`` holds the Shrout & Fleiss name."""
    import pingouin

    x = complete_cases(areas)
    n, k = x.shape
    # generic rater names: pingouin melts a pivot table, so a rater called "area" would clash
    names = [f"_r{j}" for j in range(k)]
    long = pd.DataFrame({
        "subject": np.repeat(np.arange(n), k),
        "rater": np.tile(names, n),
        "area": x.ravel(),
    })
    with warnings.catch_warnings():  # pingouin's own pandas deprecation warnings
        warnings.simplefilter("ignore")
        res = pingouin.intraclass_corr(long, targets="subject", raters="rater", ratings="area")
    # pingouin lists the six forms in Shrout & Fleiss order; its labels changed between releases
    # (ICC2 / ICC(A,1)), so rows are matched by position.
    if len(res) != len(ICC_FORMS):
        raise RuntimeError(f"unexpected pingouin.intraclass_corr output: {list(res['Type'])}")
    ci = np.stack(res["CI95%" if "CI95%" in res else "CI95"].to_numpy())
    return pd.DataFrame({
        "coefficient": list(ICC_FORMS),
        "form": [ICC_LABELS[t] for t in ICC_FORMS],
        "pingouin_type": res["Type"].astype(str).to_numpy(),
        "value": res["ICC"].to_numpy(float),
        "F": res["F"].to_numpy(float),
        "df1": res["df1"].to_numpy(float),
        "df2": res["df2"].to_numpy(float),
        "pval": res["pval"].to_numpy(float),
        "ci_low_F": ci[:, 0].astype(float),
        "ci_high_F": ci[:, 1].astype(float),
        "n_subjects": n,
        "n_raters": k,
    })


def bland_altman(a, b) -> dict:
    """Bias (mean of a - b), SD of the differences and 95 % limits of agreement (bias +- 1.96 SD;
    Bland & Altman 1986, Lancet i:307-310) over pairs both measured."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    if d.size < 2:
        raise ValueError(f"Bland-Altman needs at least 2 paired measurements, found {d.size}")
    bias, sd = float(d.mean()), float(d.std(ddof=1))
    return {"n": int(d.size), "bias": bias, "sd": sd, "loa_low": bias - 1.96 * sd, "loa_high": bias + 1.96 * sd}
