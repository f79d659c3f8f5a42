"""Ordered grades (image quality): weighted kappa and ordinal/interval Krippendorff alpha against
published worked examples, and the quality-grade block of the agreement statistics."""

import numpy as np
import pandas as pd
import pytest

from dataset_tools.agreement.ordinal import ordinal_alpha, weighted_kappa
from dataset_tools.agreement.summaries import quality_statistics
from tests.agreement_reference import KRIPP, table_to_pairs

# Krippendorff (2011) "Computing Krippendorff's alpha-reliability": 4 observers x 12 units with
# missing values (the same data as the nominal example in test_agreement_labels).
KRIPP_PUBLISHED = [("ordinal", 0.815), ("interval", 0.849)]

# (table: rater a rows x rater b columns, weights, published kappa_w, tolerance, source)
WEIGHTED_KAPPA = [
    # Cohen (1968) Table 1, N = 200, his disagreement weights 1 (PD-N), 3 (PD-P), 6 (N-P): .348
    ([[88, 14, 18], [10, 40, 10], [2, 6, 12]], [[0, 1, 3], [1, 0, 6], [3, 6, 0]], 0.348, 5e-4),
    # Fleiss, Cohen & Everitt (1969), N = 200, agreement weights 1 / 4/9 / 2/3 (as disagreement 1 - w): .507
    ([[106, 10, 4], [22, 28, 10], [2, 12, 6]], [[0, 1, 5 / 9], [1, 0, 1 / 3], [5 / 9, 1 / 3, 0]], 0.507, 5e-4),
    # SAS PROC FREQ printout (Cicchetti-Allison = linear weights), statsmodels' test table10: 0.4701
    ([[0, 4, 1], [0, 8, 0], [0, 1, 5]], "linear", 0.4701, 5e-5),
    # Cohen (1960) Table 1 unweighted .492 is the same table with 0/1 weights
    ([[88, 14, 18], [10, 40, 10], [2, 6, 12]], [[0, 1, 1], [1, 0, 1], [1, 1, 0]], 0.4915, 5e-4),
]


@pytest.mark.parametrize(("level", "published"), KRIPP_PUBLISHED)
def test_krippendorff_2011_ordinal_and_interval(level, published):
    assert ordinal_alpha(KRIPP, [1, 2, 3, 4, 5], level) == pytest.approx(published, abs=5e-4)


@pytest.mark.parametrize(("table", "weights", "published", "tol"), WEIGHTED_KAPPA)
def test_weighted_kappa_published_examples(table, weights, published, tol):
    a, b = table_to_pairs(table)
    assert weighted_kappa(a, b, [0, 1, 2], weights) == pytest.approx(published, abs=tol)


def test_quadratic_kappa_is_lins_concordance_of_the_ranks(rng):
    # Fleiss & Cohen (1973): with quadratic weights kappa_w = 2 cov / (var_a + var_b + (mean_a - mean_b)^2)
    a = rng.integers(0, 4, 60)
    b = np.clip(a + rng.integers(-1, 3, 60), 0, 3)
    ccc = 2 * np.cov(a, b, bias=True)[0, 1] / (a.var() + b.var() + (a.mean() - b.mean()) ** 2)
    assert weighted_kappa(a.astype(object), b.astype(object), [0, 1, 2, 3], "quadratic") == pytest.approx(ccc)


def test_order_matters_and_labels_are_grades():
    grades = ["ok", "poor", "unusable"]
    near = weighted_kappa(["ok", "poor", "unusable", "ok"], ["poor", "poor", "unusable", "ok"], grades)
    far = weighted_kappa(["ok", "poor", "unusable", "ok"], ["unusable", "poor", "unusable", "ok"], grades)
    assert near > far  # ok-vs-unusable costs more than ok-vs-poor
    assert np.isnan(weighted_kappa(["ok", "ok"], ["ok", "ok"], grades))
    with pytest.raises(ValueError, match=r"labels \['great'\] are not in the vocabulary"):
        weighted_kappa(["great"], ["ok"], grades)
    with pytest.raises(ValueError, match="weights must be one of"):
        weighted_kappa(["ok"], ["ok"], grades, "cubic")


def test_quality_statistics_block():
    clips = pd.DataFrame(
        {
            "participant": ["P1", "P1", "P2", "P2", "P3", "P3", "P4", "P4"],
            "quality_r1": ["ok", "poor", "ok", "unusable", "ok", "poor", "ok", "ok"],
            "quality_r2": ["ok", "poor", "poor", "unusable", "ok", "unusable", None, "ok"],
            "quality_r3": ["ok", "ok", "ok", "poor", "ok", "poor", "ok", "ok"],
        }
    )
    out = quality_statistics(clips, ["r1", "r2", "r3"], ["ok", "poor", "unusable"], n_boot=50, seed=0)
    pairs = out["pairwise"].set_index(["rater_a", "rater_b"])
    assert pairs.loc[("r1", "r2"), "n_clips"] == 7
    expected = weighted_kappa(
        clips["quality_r1"].to_numpy(object),
        clips["quality_r2"].to_numpy(object),
        ["ok", "poor", "unusable"],
        "quadratic",
    )
    assert pairs.loc[("r1", "r2"), "kappa_quadratic"] == pytest.approx(expected)
    for w in ("linear", "quadratic"):
        assert (pairs[f"ci_low_{w}"] <= pairs[f"kappa_{w}"]).all() and (
            pairs[f"kappa_{w}"] <= pairs[f"ci_high_{w}"]
        ).all()
    alpha = out["overall"].iloc[0]
    assert alpha["coefficient"] == "krippendorff_alpha_ordinal" and alpha["note"] == ""
    assert alpha["ci_low"] <= alpha["value"] <= alpha["ci_high"] and alpha["n_participants"] == 4


def test_quality_statistics_all_ok_is_undefined_with_a_reason():
    clips = pd.DataFrame({"participant": ["P1", "P2"], "quality_a": ["ok", "ok"], "quality_b": ["ok", "ok"]})
    out = quality_statistics(clips, ["a", "b"], ["ok", "poor", "unusable"], n_boot=10, seed=0)
    assert np.isnan(out["overall"]["value"].iloc[0])
    assert "every grade is 'ok'" in out["overall"]["note"].iloc[0]
    assert "every grade is 'ok'" in out["pairwise"]["note"].iloc[0]
