"""Area agreement: ICC against Shrout & Fleiss (1979) Table 2 and pingouin; Bland-Altman."""

import numpy as np
import pytest

from dataset_tools.agreement.area import bland_altman, complete_cases, icc_table, icc_values

# Shrout & Fleiss (1979), Psychol Bull 86:420-428, Table 2: 6 targets x 4 judges.
SF_TABLE = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]])
SF_EXPECTED = {"ICC1": 0.17, "ICC2": 0.29, "ICC3": 0.71, "ICC1k": 0.44, "ICC2k": 0.62, "ICC3k": 0.91}


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
