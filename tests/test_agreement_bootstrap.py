"""Participant bootstrap: resamples participants (not frames), seeded, percentile intervals."""

import numpy as np
import pytest

from dataset_tools.agreement.bootstrap import ParticipantBootstrap, percentile_ci


def test_resamples_whole_participants():
    participants = np.repeat(["a", "b", "c"], [2, 3, 5])
    boot = ParticipantBootstrap(participants, n_boot=20, seed=1)
    for b in range(boot.n_boot):
        rows = boot.rows(b)
        drawn = participants[rows]
        for p in set(drawn):  # every drawn participant comes with all of its rows
            assert np.sum(drawn == p) % np.sum(participants == p) == 0


def test_seeded_and_mean_ci_matches_generic():
    rng = np.random.default_rng(0)
    participants = np.repeat([f"p{i}" for i in range(12)], 5)
    values = rng.normal(0, 1, 60) + np.repeat(rng.normal(0, 1, 12), 5)
    b1 = ParticipantBootstrap(participants, 100, seed=7)
    b2 = ParticipantBootstrap(participants, 100, seed=7)
    assert b1.mean_ci(values) == b2.mean_ci(values)
    low, high, n = b1.mean_ci(values)
    glow, ghigh, gn = b1.ci(lambda rows: values[rows].mean())
    assert (low, high, n) == pytest.approx((glow, ghigh, gn))
    assert low < values.mean() < high


def test_clustered_interval_is_wider_than_frame_bootstrap():
    # frames of a participant share its offset: the honest interval is much wider
    rng = np.random.default_rng(2)
    participants = np.repeat([f"p{i}" for i in range(10)], 30)
    values = np.repeat(rng.normal(0, 1, 10), 30) + rng.normal(0, 0.1, 300)
    by_participant = ParticipantBootstrap(participants, 200, seed=0).mean_ci(values)
    by_frame = ParticipantBootstrap(np.arange(300), 200, seed=0).mean_ci(values)
    assert by_participant[1] - by_participant[0] > 3 * (by_frame[1] - by_frame[0])


def test_undefined_replicates_and_single_participant():
    boot = ParticipantBootstrap(["a", "a", "b", "b"], 50, seed=0)
    low, high, n = boot.ci(lambda rows: np.nan if len(set(rows // 2)) < 2 else 1.0)
    assert 0 < n < 50 and low == high == 1.0
    single = ParticipantBootstrap(["a"] * 5, 50, seed=0)
    assert np.isnan(single.mean_ci(np.arange(5.0))[0]) and single.mean_ci(np.arange(5.0))[2] == 0
    assert percentile_ci([np.nan, np.nan])[2] == 0


def test_subset_keeps_draws():
    participants = np.array(["a", "b", "a", "c", "b", "c"])
    boot = ParticipantBootstrap(participants, 10, seed=3)
    mask = np.array([True, True, False, True, True, False])
    sub = boot.subset(mask)
    values = np.arange(6.0)
    assert sub.mean_ci(values[mask]) == pytest.approx(boot.ci(lambda r: values[r][mask[r]].mean()))
