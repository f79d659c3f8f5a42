"""Plane-label agreement against published worked examples and established implementations."""

import numpy as np
import pandas as pd
import pytest

from dataset_tools.agreement.labels import (
    cohen_kappa,
    confusion_matrix,
    encode,
    fleiss_kappa,
    gwet_ac1,
    krippendorff_alpha,
    label_agreement,
    pairwise_cohen,
    per_category,
    percent_agreement,
)
from tests.agreement_reference import KRIPP, N, table_to_pairs  # noqa: F401 (N: a missing rating)

# Fleiss (1971) Table 1: 30 patients, 6 psychiatrists each, 5 diagnoses (as in statsmodels' tests).
FLEISS_1971 = np.array(
    [
        [4, 4, 4, 4, 4, 4],
        [2, 2, 2, 5, 5, 5],
        [2, 3, 3, 3, 3, 5],
        [5, 5, 5, 5, 5, 5],
        [2, 2, 2, 4, 4, 4],
        [1, 1, 3, 3, 3, 3],
        [3, 3, 3, 3, 5, 5],
        [1, 1, 3, 3, 3, 4],
        [1, 1, 4, 4, 4, 4],
        [5, 5, 5, 5, 5, 5],
        [1, 4, 4, 4, 4, 4],
        [1, 2, 4, 4, 4, 4],
        [2, 2, 2, 3, 3, 3],
        [1, 4, 4, 4, 4, 4],
        [2, 2, 4, 4, 4, 5],
        [3, 3, 3, 3, 3, 5],
        [1, 1, 1, 4, 5, 5],
        [1, 1, 1, 1, 1, 2],
        [2, 2, 4, 4, 4, 4],
        [1, 3, 3, 5, 5, 5],
        [5, 5, 5, 5, 5, 5],
        [2, 4, 4, 4, 4, 4],
        [2, 2, 4, 5, 5, 5],
        [1, 1, 4, 4, 4, 4],
        [1, 4, 4, 4, 4, 5],
        [2, 2, 2, 2, 2, 4],
        [1, 1, 1, 1, 5, 5],
        [2, 2, 4, 4, 4, 4],
        [1, 3, 3, 3, 3, 3],
        [5, 5, 5, 5, 5, 5],
    ]
)


def test_cohen_1960_worked_example():
    # Cohen (1960) Table 1: 200 subjects, proportions .44 .07 .09 / .05 .20 .05 / .01 .03 .06
    a, b = table_to_pairs([[88, 14, 18], [10, 40, 10], [2, 6, 12]])
    assert cohen_kappa(a, b) == pytest.approx(0.4915, abs=5e-4)


def test_cohen_irrcac_abstractors():
    # irrCAC cont3x3abstractors (Gwet 2014): kappa 0.7964094, AC1 0.8493305, agreement 0.89
    a, b = table_to_pairs([[13, 0, 0], [0, 20, 7], [0, 4, 56]])
    assert cohen_kappa(a, b) == pytest.approx(0.7964094, abs=1e-6)
    both = np.column_stack([a, b])
    assert gwet_ac1(both) == pytest.approx(0.8493305, abs=1e-6)
    assert percent_agreement(both) == pytest.approx(0.89)


def test_cohen_matches_statsmodels_on_random_data(rng):
    from statsmodels.stats.inter_rater import cohens_kappa, to_table

    a = rng.integers(0, 4, 80)
    b = np.where(rng.random(80) < 0.7, a, rng.integers(0, 4, 80))
    table = to_table(np.column_stack([a, b]), bins=np.arange(5))[0]
    assert cohen_kappa(a.astype(object), b.astype(object), [0, 1, 2, 3]) == pytest.approx(
        cohens_kappa(table, return_results=False)
    )


def test_fleiss_1971():
    assert fleiss_kappa(FLEISS_1971) == pytest.approx(0.430, abs=5e-4)


def test_fleiss_missing_generalisation():
    # irrCAC fleiss.kappa.raw(cac.raw4raters) = 0.76117 (Gwet 2014)
    assert fleiss_kappa(KRIPP) == pytest.approx(0.76117, abs=1e-5)
    # the missing-data path equals statsmodels on complete data
    complete = FLEISS_1971.astype(object)
    padded = np.column_stack([complete, np.full(len(complete), None, object)])
    assert fleiss_kappa(padded) == pytest.approx(fleiss_kappa(FLEISS_1971), abs=1e-12)


def test_krippendorff_canonical():
    assert krippendorff_alpha(KRIPP) == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(KRIPP) == pytest.approx(0.74342, abs=1e-5)  # irrCAC


def test_gwet_ac1_irrcac_raw4raters():
    assert gwet_ac1(KRIPP) == pytest.approx(0.77544, abs=1e-5)
    assert percent_agreement(KRIPP) == pytest.approx(0.8181818, abs=1e-7)


def test_ac1_stable_when_one_plane_dominates():
    # 95 % of frames one plane, raters agree on 96 %: kappa collapses, AC1 stays high
    a = np.array(["w"] * 95 + ["f"] * 5, object)
    b = a.copy()
    b[[0, 1, 95, 96]] = ["f", "f", "w", "w"]
    both = np.column_stack([a, b])
    assert cohen_kappa(a, b) < 0.6 < 0.9 < gwet_ac1(both)


def test_label_agreement_accepts_dataframe_and_reports_undefined():
    df = pd.DataFrame({"r1": ["a", "a", None], "r2": ["a", "a", "a"]})
    out = label_agreement(df)
    assert out["n_subjects_pairable"] == 2
    assert np.isnan(out["krippendorff_alpha"]) and "undefined" in out["note"]
    assert out["percent_agreement"] == 1.0
    none = label_agreement([["a", None], [None, "b"]])
    assert none["note"] == "no subject was labelled by two raters"


def test_unknown_label_and_bad_shape():
    with pytest.raises(ValueError, match=r"labels \['transvers'\] are not in the vocabulary"):
        encode([["transvers", "a"]], ["a", "b"])
    with pytest.raises(ValueError, match="subjects x raters matrix"):
        encode(["a", "b"])


def test_confusion_and_pairwise():
    ratings = [["a", "a", "b"], ["b", "b", "b"], ["a", None, "a"], ["b", "a", "b"]]
    cm = confusion_matrix([r[0] for r in ratings], [r[1] for r in ratings], ["a", "b"])
    assert cm.to_numpy().tolist() == [[1, 0], [1, 1]]
    pw = pairwise_cohen(ratings, ["a", "b"], ["r1", "r2", "r3"])
    assert list(pw[["rater_a", "rater_b"]].itertuples(index=False, name=None)) == [
        ("r1", "r2"),
        ("r1", "r3"),
        ("r2", "r3"),
    ]
    assert pw.loc[0, "n_subjects"] == 3


def test_per_category_matches_fleiss_category_kappa():
    table = per_category(FLEISS_1971)
    assert list(table["label"]) == [1, 2, 3, 4, 5]
    # Fleiss (1971) Table 2 category kappas: .245 .245 .520 .471 .566
    np.testing.assert_allclose(table["kappa"], [0.245, 0.245, 0.520, 0.471, 0.566], atol=1.5e-3)
