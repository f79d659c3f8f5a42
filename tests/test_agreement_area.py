"""Area agreement: ICC against Shrout & Fleiss (1979) Table 2 and pingouin; Bland-Altman."""

import numpy as np
import pandas as pd
import pytest

from dataset_tools.agreement.area import (
    bland_altman,
    complete_cases,
    icc2_generalized_ci,
    icc_f_ci,
    icc_table,
    icc_values,
)

# Shrout & Fleiss (1979), Psychol Bull 86:420-428, Table 2: 6 targets x 4 judges.
SF_TABLE = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]])
SF_EXPECTED = {"ICC1": 0.17, "ICC2": 0.29, "ICC3": 0.71, "ICC1k": 0.44, "ICC2k": 0.62, "ICC3k": 0.91}
# Their 95 % F intervals (Shrout & Fleiss 1979 / McGraw & Wong 1996 Table 7), lower limits to three
# decimals as psych::ICC prints them for this table (upper limits printed to two).
SF_F_CI = [
    ("ICC1", -0.133, 0.001, 0.72, 0.005),
    ("ICC2", 0.019, 0.001, 0.76, 0.005),
    ("ICC3", 0.342, 0.001, 0.95, 0.005),
    ("ICC1k", -0.884, 0.001, 0.91, 0.005),
    ("ICC2k", 0.071, 0.001, 0.93, 0.005),
    ("ICC3k", 0.676, 0.001, 0.99, 0.005),
]


def test_icc_values_shrout_fleiss_table2():
    values = icc_values(SF_TABLE)
    for key, expected in SF_EXPECTED.items():
        assert values[key] == pytest.approx(expected, abs=0.005), key


def test_icc_table_pingouin_shrout_fleiss():
    table = icc_table(SF_TABLE).set_index("coefficient")
    for key, expected in SF_EXPECTED.items():
        assert table.loc[key, "value"] == pytest.approx(expected, abs=0.005), key
    assert table.loc["ICC2", "form"] == "ICC(2,1)"
    assert (table["n_subjects"] == 6).all()


def test_numpy_icc_equals_pingouin(rng):
    truth = rng.normal(10, 3, 30)
    x = truth[:, None] + rng.normal(0, 1, (30, 3)) + [0, 0.5, 1.5]
    ours = icc_values(x)
    ref = icc_table(x).set_index("coefficient")["value"]
    for key in ours:
        assert ours[key] == pytest.approx(ref[key], abs=1e-10), key
    batch = icc_values(np.stack([x, x[::-1], x * 2]))
    assert batch["ICC2"].shape == (3,)
    np.testing.assert_allclose(batch["ICC3"], ours["ICC3"])


def test_complete_cases_drop_missing_and_errors():
    x = np.array([[1.0, 2.0], [np.nan, 3.0], [2.0, 2.5], [4.0, 4.2]])
    assert complete_cases(x).shape == (3, 2)
    with pytest.raises(ValueError, match="at least 2 subjects measured by every rater, found 1"):
        complete_cases([[1.0, np.nan], [2.0, 3.0]])
    with pytest.raises(ValueError, match="at least 2 raters"):
        complete_cases([[1.0], [2.0]])


def test_bland_altman():
    a = np.array([10.0, 12.0, 11.0, 9.0, np.nan])
    b = np.array([9.0, 11.0, 11.0, 8.0, 3.0])
    ba = bland_altman(a, b)
    d = np.array([1.0, 1.0, 0.0, 1.0])
    assert ba["n"] == 4 and ba["bias"] == pytest.approx(d.mean())
    assert ba["loa_high"] - ba["bias"] == pytest.approx(1.96 * d.std(ddof=1))
    with pytest.raises(ValueError, match="at least 2 paired measurements, found 1"):
        bland_altman([1.0, np.nan], [1.0, 2.0])


@pytest.mark.parametrize(("form", "low", "tol_low", "high", "tol_high"), SF_F_CI)
def test_f_intervals_shrout_fleiss_table2(form, low, tol_low, high, tol_high):
    lo, hi = icc_f_ci(SF_TABLE)[form]
    assert lo == pytest.approx(low, abs=tol_low / 2) and hi == pytest.approx(high, abs=tol_high)


def test_f_intervals_are_unrounded_and_agree_with_pingouin():
    import pingouin

    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (25, 1)) + rng.normal(0, 0.3, (1, 3)) + rng.normal(0, 0.5, (25, 3))
    table = icc_table(x).set_index("coefficient")
    long = pd.DataFrame({"s": np.repeat(np.arange(25), 3), "r": np.tile(["a", "b", "c"], 25), "y": x.ravel()})
    res = pingouin.intraclass_corr(long, "s", "r", "y")
    ref = np.stack(res["CI95%" if "CI95%" in res else "CI95"].to_numpy())
    ours = table[["ci_low_F", "ci_high_F"]].to_numpy()
    np.testing.assert_allclose(np.round(ours, 2), ref, atol=1e-9)  # pingouin rounds to 2 decimals
    assert np.abs(ours - np.round(ours, 2)).max() > 1e-4  # ours does not
    assert table.loc["ICC2", "ci_method"].startswith("generalized")
    assert tuple(table.loc["ICC2", ["ci_low", "ci_high"]]) == icc2_generalized_ci(x)["ICC2"]
    assert (table["ci_low"] < table["value"]).all() and (table["value"] < table["ci_high"]).all()


def test_generalized_interval_is_seeded_and_meets_the_f_interval_with_many_unbiased_raters():
    # With 20 raters sharing one mean the rater variance is pinned down and both intervals agree;
    # with few raters the generalized one is wider (it counts what 3 raters cannot tell).
    rng = np.random.default_rng(4)
    x = rng.normal(0, 1, (40, 1)) + rng.normal(0, 0.45, (40, 20))
    g1 = icc2_generalized_ci(x, seed=1)
    assert g1 == icc2_generalized_ci(x, seed=1)
    f = icc_f_ci(x)
    for key in ("ICC2", "ICC2k"):
        assert g1[key][0] < icc_values(x)[key] < g1[key][1]
        assert g1[key] == pytest.approx(f[key], abs=0.005)
        assert icc2_generalized_ci(x, seed=2)[key] == pytest.approx(g1[key], abs=0.005)
    few = x[:, :3]
    assert icc2_generalized_ci(few)["ICC2"][0] < icc_f_ci(few)["ICC2"][0]


def simulate_two_way(rng, n, k, var_subject, var_rater, var_error):
    return (
        rng.normal(0, var_subject**0.5, (n, 1))
        + rng.normal(0, var_rater**0.5, (1, k))
        + rng.normal(0, var_error**0.5, (n, k))
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("var_rater", "var_error", "lowest", "highest"),
    [(0.1, 0.1, 0.93, 0.97), (0.15, 0.05, 0.93, 0.97), (0.0, 0.2, 0.93, 0.99)],
)  # raters sharing one mean: conservative
def test_icc2_primary_interval_covers_95_percent(var_rater, var_error, lowest, highest):
    # Two-way random model, 30 subjects x 3 raters, true ICC(2,1) = 0.8 / (0.8 + rater + error) = 0.8.
    # The F (Satterthwaite) interval covers 0.84-0.89 with rater variance; the participant
    # bootstrap, which keeps the raters fixed, covers less still.
    rng = np.random.default_rng(2026)
    hits_primary, hits_icc3, n_reps = 0, 0, 400
    true_icc3 = 0.8 / (0.8 + var_error)
    for rep in range(n_reps):
        x = simulate_two_way(rng, 30, 3, 0.8, var_rater, var_error)
        low, high = icc2_generalized_ci(x, seed=rep)["ICC2"]  # icc_table's ci_low/ci_high of ICC(2,1)
        hits_primary += low <= 0.8 <= high
        low, high = icc_f_ci(x)["ICC3"]
        hits_icc3 += low <= true_icc3 <= high
    assert lowest <= hits_primary / n_reps <= highest
    assert 0.93 <= hits_icc3 / n_reps <= 0.97
