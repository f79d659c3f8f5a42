"""Agreement on nerve cross-sectional area: intraclass correlation and Bland-Altman.

Input: a *subjects x raters* table of areas (mm^2, or px for uncalibrated clips), NaN = not
measured. ICCs use subjects every rater measured (complete cases; the count is reported).

* :func:`icc_values`: the six Shrout & Fleiss (1979) forms from the two-way ANOVA mean squares in
  numpy, vectorised over many tables at once (for bootstraps); tested equal to
  ``pingouin.intraclass_corr`` and to Shrout & Fleiss (1979) Table 2.
* :func:`icc_f_ci`: the F-distribution confidence intervals of McGraw & Wong (1996, Psychol
  Methods 1:30-46, Table 7; the Shrout & Fleiss / Fleiss & Shrout 1978 intervals), computed
  unrounded from the mean squares (pingouin rounds its ``CI95%`` column to two decimals). Exact
  under the normal model for ICC(1,·) and ICC(3,·); for ICC(2,·) an approximation (Satterthwaite
  degrees of freedom) that covers too rarely when raters differ systematically and are few (0.86
  to 0.89 instead of 0.95 for 30 subjects, 3 raters, ICC 0.8 with 10-15 % rater variance).
* :func:`icc2_generalized_ci`: the generalized confidence interval of ICC(2,1) and ICC(2,k)
  (Tian & Cappelleri 2004, Stat Med 23:2125-2135; generalized pivotal quantities, Weerahandi
  1993), whose coverage stays at 0.94-0.96 in the same simulations (``tests/test_agreement_area.py``,
  marked slow). It is the primary interval of the ICC(2,·) rows; the F interval stays beside it.
* :func:`icc_table`: all of it in one DataFrame (pingouin supplies F, df and p).

All intervals treat subjects as independent draws and raters as random (ICC 1 and 2) or fixed
(ICC 3). Shrout & Fleiss forms: ICC(1,1) one-way random; ICC(2,1) two-way random, absolute
agreement; ICC(3,1) two-way mixed, consistency; ``k`` forms are the reliability of the mean of k
raters.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

ICC_FORMS = ("ICC1", "ICC2", "ICC3", "ICC1k", "ICC2k", "ICC3k")
ICC_LABELS = {
    "ICC1": "ICC(1,1)",
    "ICC2": "ICC(2,1)",
    "ICC3": "ICC(3,1)",
    "ICC1k": "ICC(1,k)",
    "ICC2k": "ICC(2,k)",
    "ICC3k": "ICC(3,k)",
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


def mean_squares(areas) -> dict[str, Any]:  # (B,) arrays, and the ints n, k
    """Two-way ANOVA mean squares of ``(n, k)`` or ``(B, n, k)`` complete tables: ``msr`` (subjects),
    ``msc`` (raters), ``mse`` (residual), ``msw`` (within subjects), each ``(B,)``; ``n``, ``k``."""
    x = np.asarray(areas, dtype=float)
    if x.ndim == 2:
        x = x[None]
    _, n, k = x.shape
    gm = x.mean(axis=(1, 2), keepdims=True)
    rows = x.mean(axis=2, keepdims=True)
    cols = x.mean(axis=1, keepdims=True)
    ss_total = ((x - gm) ** 2).sum(axis=(1, 2))
    ss_rows = k * ((rows - gm) ** 2).sum(axis=(1, 2))
    ss_cols = n * ((cols - gm) ** 2).sum(axis=(1, 2))
    ss_err = ss_total - ss_rows - ss_cols
    return {
        "msr": ss_rows / (n - 1),
        "msc": ss_cols / (k - 1),
        "mse": ss_err / ((n - 1) * (k - 1)),
        "msw": (ss_total - ss_rows) / (n * (k - 1)),
        "n": n,
        "k": k,
    }


def icc_values(areas) -> dict[str, np.ndarray | float]:
    """The six Shrout & Fleiss ICCs from ANOVA mean squares.

    ``areas``: ``(n, k)`` complete table, or ``(B, n, k)`` for B tables at once (returns arrays).
    A table without variance gives NaN.
    """
    single = np.ndim(areas) == 2
    ms = mean_squares(areas)
    msr, msc, mse, msw, n, k = (ms[key] for key in ("msr", "msc", "mse", "msw", "n", "k"))
    with np.errstate(divide="ignore", invalid="ignore"):
        out: dict[str, Any] = {
            "ICC1": (msr - msw) / (msr + (k - 1) * msw),
            "ICC2": (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n),
            "ICC3": (msr - mse) / (msr + (k - 1) * mse),
            "ICC1k": (msr - msw) / msr,
            "ICC2k": (msr - mse) / (msr + (msc - mse) / n),
            "ICC3k": (msr - mse) / msr,
        }
    return {key: float(v[0]) for key, v in out.items()} if single else out


def icc_f_ci(areas, alpha: float = 0.05) -> dict[str, tuple[float, float]]:
    """``{form: (low, high)}``: McGraw & Wong (1996) Table 7 F intervals of the six ICCs, unrounded.

    Reference: Shrout & Fleiss (1979) Table 2 data give ICC(2,1) 0.019 to 0.761 and ICC(3,1)
    0.342 to 0.946 (``psych::ICC`` prints the same).
    """
    from scipy.stats import f as fdist

    x = complete_cases(areas)
    ms = mean_squares(x)
    msr, msc, mse, msw = (float(ms[key][0]) for key in ("msr", "msc", "mse", "msw"))
    n, k = ms["n"], ms["k"]
    q = 1 - alpha / 2
    out = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        # one-way (ICC1) and consistency (ICC3): F0 = MSR / MS_error is an exact pivot
        for one, avg, denom, df2 in (("ICC1", "ICC1k", msw, n * (k - 1)), ("ICC3", "ICC3k", mse, (n - 1) * (k - 1))):
            f0 = msr / denom
            fl, fu = f0 / fdist.ppf(q, n - 1, df2), f0 * fdist.ppf(q, df2, n - 1)
            out[one] = ((fl - 1) / (fl + k - 1), (fu - 1) / (fu + k - 1))
            out[avg] = (1 - 1 / fl, 1 - 1 / fu)
        # absolute agreement (ICC2): Satterthwaite's degrees of freedom for a MSC + b MSE
        rho = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
        a = k * rho / (n * (1 - rho))
        b = 1 + k * rho * (n - 1) / (n * (1 - rho))
        v = (a * msc + b * mse) ** 2 / ((a * msc) ** 2 / (k - 1) + (b * mse) ** 2 / ((n - 1) * (k - 1)))
        fs, fs2 = fdist.ppf(q, n - 1, v), fdist.ppf(q, v, n - 1)
        c = k * msc + (k * n - k - n) * mse
        out["ICC2"] = (n * (msr - fs * mse) / (fs * c + n * msr), n * (fs2 * msr - mse) / (c + n * fs2 * msr))
        out["ICC2k"] = (
            n * (msr - fs * mse) / (fs * (msc - mse) + n * msr),
            n * (fs2 * msr - mse) / (msc - mse + n * fs2 * msr),
        )
    return {key: (float(lo), float(hi)) for key, (lo, hi) in out.items()}


def icc2_generalized_ci(
    areas, alpha: float = 0.05, n_draws: int = 20000, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """``{'ICC2': (low, high), 'ICC2k': (low, high)}``: generalized confidence intervals.

    Generalized pivotal quantities of the three variance components (Tian & Cappelleri 2004):
    with the observed sums of squares SSR, SSC, SSE and independent chi-square draws
    U_s ~ chi2(n-1), U_r ~ chi2(k-1), U_e ~ chi2((n-1)(k-1)),
    ``e = SSE/U_e``, ``s = max(0, (SSR/U_s - e) / k)``, ``r = max(0, (SSC/U_r - e) / n)``;
    ICC(2,1) = s / (s + r + e), ICC(2,k) = s / (s + (r + e) / k); the interval is the
    ``alpha/2`` and ``1 - alpha/2`` quantiles over ``n_draws`` draws (seeded: reproducible; the
    Monte Carlo error of each limit is below 0.005 at the default).
    """
    x = complete_cases(areas)
    ms = mean_squares(x)
    n, k = ms["n"], ms["k"]
    ssr, ssc, sse = (
        float(ms["msr"][0]) * (n - 1),
        float(ms["msc"][0]) * (k - 1),
        float(ms["mse"][0]) * (n - 1) * (k - 1),
    )
    rng = np.random.default_rng(seed)
    u_s, u_r, u_e = (
        rng.chisquare(n - 1, n_draws),
        rng.chisquare(k - 1, n_draws),
        rng.chisquare((n - 1) * (k - 1), n_draws),
    )
    e = sse / u_e
    s_var = np.maximum((ssr / u_s - e) / k, 0.0)
    r_var = np.maximum((ssc / u_r - e) / n, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        draws = {"ICC2": s_var / (s_var + r_var + e), "ICC2k": s_var / (s_var + (r_var + e) / k)}
    out = {}
    for key, d in draws.items():
        d = d[np.isfinite(d)]
        lo, hi = np.percentile(d, [100 * alpha / 2, 100 * (1 - alpha / 2)]) if d.size else (np.nan, np.nan)
        out[key] = (float(lo), float(hi))
    return out


#: how the primary interval (``ci_low``, ``ci_high``) of each form is computed
CI_METHODS = {
    "ICC1": "F (exact)",
    "ICC3": "F (exact)",
    "ICC1k": "F (exact)",
    "ICC3k": "F (exact)",
    "ICC2": "generalized (Tian & Cappelleri 2004)",
    "ICC2k": "generalized (Tian & Cappelleri 2004)",
}


def icc_table(areas, alpha: float = 0.05, seed: int = 0) -> pd.DataFrame:
    """One row per form: ``value``, pingouin's ``F``/``df1``/``df2``/``pval``, the primary 95 %
    interval ``ci_low``/``ci_high`` (``ci_method``: exact F for ICC(1,·) and ICC(3,·), generalized
    for ICC(2,·)), the McGraw & Wong F interval ``ci_low_F``/``ci_high_F`` (unrounded), and
    ``n_subjects``, ``n_raters``; ``form`` holds the Shrout & Fleiss name."""
    import pingouin

    x = complete_cases(areas)
    n, k = x.shape
    # generic rater names: pingouin melts a pivot table, so a rater called "area" would clash
    names = [f"_r{j}" for j in range(k)]
    long = pd.DataFrame(
        {
            "subject": np.repeat(np.arange(n), k),
            "rater": np.tile(names, n),
            "area": x.ravel(),
        }
    )
    with warnings.catch_warnings():  # pingouin's own pandas deprecation warnings
        warnings.simplefilter("ignore")
        res = pingouin.intraclass_corr(long, targets="subject", raters="rater", ratings="area")
    # pingouin lists the six forms in Shrout & Fleiss order; its labels changed between releases
    # (ICC2 / ICC(A,1)), so rows are matched by position.
    if len(res) != len(ICC_FORMS):
        raise RuntimeError(f"unexpected pingouin.intraclass_corr output: {list(res['Type'])}")
    f_ci = icc_f_ci(x, alpha)
    primary = {**f_ci, **icc2_generalized_ci(x, alpha, seed=seed)}
    return pd.DataFrame(
        {
            "coefficient": list(ICC_FORMS),
            "form": [ICC_LABELS[t] for t in ICC_FORMS],
            "pingouin_type": res["Type"].astype(str).to_numpy(),
            "value": res["ICC"].to_numpy(float),
            "ci_low": [primary[t][0] for t in ICC_FORMS],
            "ci_high": [primary[t][1] for t in ICC_FORMS],
            "ci_method": [CI_METHODS[t] for t in ICC_FORMS],
            "ci_low_F": [f_ci[t][0] for t in ICC_FORMS],
            "ci_high_F": [f_ci[t][1] for t in ICC_FORMS],
            "F": res["F"].to_numpy(float),
            "df1": res["df1"].to_numpy(float),
            "df2": res["df2"].to_numpy(float),
            "pval": res["pval"].to_numpy(float),
            "n_subjects": n,
            "n_raters": k,
        }
    )


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
