"""Participant-level, stratified, seeded splits."""

from collections import Counter

import pytest

from dataset_tools.splits import (
    SPLITS,
    apply_split,
    check_ratios,
    load_split,
    make_split,
    save_split,
    split_balance,
)
from napari_ultramn import DEFAULT_PLANES
from napari_ultramn.errors import InputError
from tests.project_factory import registry_records


@pytest.fixture(scope="module")
def records():
    return registry_records(n_participants=60, clips_per_participant=3, seed=7)


def test_every_participant_in_exactly_one_split(records):
    split = make_split(records, seed=1)
    clip_split = apply_split(split, records)
    by_participant = {}
    for rec in records:
        by_participant.setdefault(rec["participant"], set()).add(clip_split[rec["clip_id"]])
    assert all(len(s) == 1 for s in by_participant.values())
    assert set(split["participants"]) == set(by_participant)


def test_stratified_by_plane_side_and_size(records):
    split = make_split(records, ratios=(0.7, 0.15, 0.15), seed=0)
    clip_split = apply_split(split, records)
    sizes = Counter(clip_split.values())
    total = sum(sizes.values())
    for s, ratio in zip(SPLITS, (0.7, 0.15, 0.15)):
        assert abs(sizes[s] / total - ratio) < 0.05, (s, sizes)
    balance = split_balance(records, clip_split)
    for plane in DEFAULT_PLANES:
        row = balance[f"plane:{plane}"]
        assert all(row[s] > 0 for s in SPLITS), (plane, row)
        assert abs(row["train"] / sum(row.values()) - 0.7) < 0.15, (plane, row)
    for side in ("left", "right"):
        assert all(balance[f"side:{side}"][s] > 0 for s in SPLITS)
    for sex in ("F", "M"):
        assert all(balance[f"sex:{sex}"][s] > 0 for s in SPLITS)


def test_seed_reproducible_and_matters(records):
    assert make_split(records, seed=3) == make_split(records, seed=3)
    assignments = {tuple(sorted(make_split(records, seed=s)["participants"].items())) for s in range(4)}
    assert len(assignments) > 1


def test_small_project_fills_every_split():
    recs = registry_records(n_participants=3, clips_per_participant=2, seed=2)
    split = make_split(recs, seed=0)
    assert sorted(Counter(split["participants"].values())) == sorted(SPLITS)


def test_zero_ratio_split_stays_empty(records):
    split = make_split(records, ratios=(0.8, 0.2, 0), seed=0)
    assert "test" not in split["participants"].values()
    assert split["ratios"] == {"train": 0.8, "validation": 0.2, "test": 0.0}


@pytest.mark.parametrize(
    "ratios, message",
    [
        ((0.7, 0.3), "three non-negative numbers"),
        ((0.7, -0.1, 0.4), "three non-negative numbers"),
        ((0, 0.5, 0.5), "train > 0"),
    ],
)
def test_bad_ratios(ratios, message):
    with pytest.raises(ValueError, match=message):
        check_ratios(ratios)


def test_ratios_not_summing_to_one_are_refused():
    assert check_ratios((0.7, 0.15, 0.15)) == pytest.approx((0.7, 0.15, 0.15))
    with pytest.raises(ValueError, match=r"summing to 1 .* got \[7, 1\.5, 1\.5\]"):
        check_ratios((7, 1.5, 1.5))


def test_split_file_round_trip_and_missing_participant(tmp_path, records):
    split = make_split(records, seed=5)
    path = tmp_path / "split.json"
    save_split(path, split)
    assert load_split(path) == split
    extra = records + [{"clip_id": "new_c0", "participant": "PNEW", "side": "left", "plane": "x"}]
    with pytest.raises(InputError, match=r"split\.json: split file does not assign 1 participant\(s\): PNEW"):
        apply_split(load_split(path), extra, path)


def test_split_file_schema_checked(tmp_path):
    path = tmp_path / "split.json"
    path.write_text(
        '{"format": "ultramn-split", "schema_version": 1, "method": "x", "seed": 0, '
        '"ratios": {"train": 0.7, "validation": 0.15, "test": 0.15}, '
        '"participants": {"P1": "holdout"}}'
    )
    with pytest.raises(InputError, match="does not match schema 'split' at participants/P1"):
        load_split(path)
