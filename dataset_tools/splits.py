"""Participant-level train/validation/test splits, stratified, seeded, saved as JSON.

Leakage between splits is the classic way a segmentation model looks better than it is: frames of
one clip, or two clips of one person, are near-duplicates. So the unit of assignment is the
*participant*: every clip, side and plane of a participant lands in one split.

Stratification (greedy, largest participant first)
--------------------------------------------------
Each participant contributes counts to *strata*: its clips per plane (``plane:<p>``), per side
(``side:<s>``), its number of clips (``size``), and - where the registry has them - one count for
its sex, age band, site and device (``sex:F``, ``device:VendorA/ModelX``...). For every stratum
``k`` with total ``N_k`` each split ``s`` has a target ``ratio_s * N_k``. Participants are taken
largest first (ties broken by a seeded shuffle, which is where ``seed`` matters), and each goes to
the split whose relative lag on the participant's strata is largest::

    score(s) = sum_k  w_k * c_pk * (ratio_s * N_k - n_sk) / N_k

(``c_pk`` the participant's count in ``k``, ``n_sk`` what split ``s`` holds so far; weights 1 for
size, plane and side, 0.5 for demographics). Largest-first keeps the big, hard-to-place
participants from upsetting the balance late. Finally, if a split with a non-zero ratio is still
empty while another holds several participants, the smallest participant of the most
over-target split moves there, so validation and test are never empty when they can be filled.

Suspected duplicates (:mod:`dataset_tools.fingerprint`): clips of two pseudonyms that show the
same recording are most likely one patient entered twice. Participants linked by such a pair are
merged into one unit before the greedy pass, so they land in the same split, and
:func:`suspected_duplicates` lists the merged groups for the manifest; ``refuse_duplicates=True``
refuses to split instead (InputError listing the pairs).

The split file (``schemas/split.schema.json``) maps every participant to its split and records the
seed, ratios and method; :func:`load_split` + :func:`apply_split` rebuild it exactly.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from napari_ultramn.errors import InputError
from napari_ultramn.schema import read_json, write_json
from napari_ultramn.vocabulary import SPLITS

DEFAULT_RATIOS = (0.7, 0.15, 0.15)
METHOD = "greedy-stratified-participant"
#: registry fields that are participant-level demographics, balanced with a lower weight
DEMOGRAPHIC_FIELDS = ("sex", "age_band", "site", "device")
_WEIGHTS = {"size": 1.0, "plane": 1.0, "side": 1.0, "sex": 0.5, "age_band": 0.5, "site": 0.5, "device": 0.5}


def check_ratios(ratios) -> tuple[float, float, float]:
    """Three non-negative numbers summing to 1 (within 1e-6), train > 0.

    Refused rather than normalised: ``0.8 0.15 0.15`` is a typo more often than a wish for
    0.73 / 0.135 / 0.135, and a silently different split is the worse outcome.
    """
    try:
        r = [float(x) for x in ratios]
    except (TypeError, ValueError):
        r = []
    if len(r) != 3 or any(not np.isfinite(x) or x < 0 for x in r) or r[0] <= 0 or abs(sum(r) - 1.0) > 1e-6:
        shown = list(ratios) if isinstance(ratios, (list, tuple)) else ratios
        raise InputError(
            None,
            f"split ratios must be three non-negative numbers summing to 1 with "
            f"train > 0 (train validation test, e.g. 0.7 0.15 0.15), got {shown}",
        )
    total = sum(r)
    return tuple(x / total for x in r)  # type: ignore[return-value]


def _device(rec: dict) -> str | None:
    parts = [rec.get("manufacturer"), rec.get("device_model")]
    return "/".join(str(p) for p in parts if p) or None


def participant_strata(records: list[dict]) -> dict[str, Counter]:
    """Participant -> Counter of stratum keys (see module docstring)."""
    out: dict[str, Counter] = defaultdict(Counter)
    demo: dict[str, dict[str, str]] = defaultdict(dict)
    for rec in records:
        c = out[rec["participant"]]
        c["size"] += 1
        c[f"plane:{rec.get('plane')}"] += 1
        c[f"side:{rec.get('side')}"] += 1
        values = {
            "sex": rec.get("sex"),
            "age_band": rec.get("age_band"),
            "site": rec.get("site"),
            "device": _device(rec),
        }
        for key, value in values.items():
            if value:
                demo[rec["participant"]].setdefault(key, str(value))
    for participant, fields in demo.items():
        for key, value in fields.items():
            out[participant][f"{key}:{value}"] += 1
    return dict(out)


def duplicate_groups(duplicate_pairs, participants) -> dict[str, str]:
    """Participant -> its group's representative (smallest id), participants linked by a suspected
    duplicate pair (``DuplicatePair``-like: ``participant_a``, ``participant_b``) being one group."""
    parent = {p: p for p in participants}

    def root(p):
        while parent[p] != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    for pair in duplicate_pairs:
        a, b = pair.participant_a, pair.participant_b
        if a in parent and b in parent:
            ra, rb = sorted((root(a), root(b)))
            parent[rb] = ra
    return {p: root(p) for p in parent}


def _refuse(duplicate_pairs, participants) -> None:
    found = [p for p in duplicate_pairs if p.participant_a in participants and p.participant_b in participants]
    if found:
        shown = "; ".join(
            f"{p.participant_a} ({p.clip_a}) ~ {p.participant_b} ({p.clip_b}), distance {p.distance:.3f}"
            for p in found[:10]
        ) + (" ..." if len(found) > 10 else "")
        raise InputError(
            None,
            f"{len(found)} suspected duplicate clip pair(s) across participants (the same "
            f"patient under two pseudonyms?): {shown}. Remove or merge them, or allow "
            "the build to keep each group in one split",
        )


def make_split(
    records: list[dict], ratios=DEFAULT_RATIOS, seed: int = 0, *, duplicate_pairs=(), refuse_duplicates: bool = False
) -> dict:
    """Assign participants to splits (see module docstring); returns the split-file dict.

    ``duplicate_pairs`` (from :func:`dataset_tools.fingerprint.likely_duplicate_pairs`): the
    participants of each pair go to the same split; with ``refuse_duplicates`` any pair among
    ``records`` is an InputError instead.
    """
    ratios = check_ratios(ratios)
    strata = participant_strata(records)
    if not strata:
        raise ValueError("no clips to split")
    if refuse_duplicates:
        _refuse(duplicate_pairs, strata)
    totals: Counter = Counter()
    for c in strata.values():
        totals.update(c)
    rng = np.random.default_rng(seed)
    participants = sorted(strata)
    tiebreak = {p: float(x) for p, x in zip(participants, rng.random(len(participants)))}
    group_of = duplicate_groups(duplicate_pairs, participants)
    units: dict[str, Counter] = defaultdict(Counter)  # a unit = a participant or a merged group
    for p in participants:
        units[group_of[p]].update(strata[p])
        tiebreak[group_of[p]] = min(tiebreak[group_of[p]], tiebreak[p])
    order = sorted(units, key=lambda u: (-units[u]["size"], tiebreak[u]))
    held: dict[str, Counter] = {s: Counter() for s in SPLITS}
    unit_split: dict[str, str] = {}
    for u in order:
        best, best_score = None, -np.inf
        for s, ratio in zip(SPLITS, ratios):
            if ratio <= 0:
                continue
            score = sum(
                _WEIGHTS[k.split(":")[0]] * n * (ratio * totals[k] - held[s][k]) / totals[k]
                for k, n in units[u].items()
            )
            if score > best_score + 1e-12:
                best, best_score = s, score
        assert best is not None  # SPLITS is never empty
        unit_split[u] = best
        held[best].update(units[u])
    _fill_empty(unit_split, units, ratios, totals)
    return split_document({p: unit_split[group_of[p]] for p in participants}, ratios, seed)


def _fill_empty(assignment: dict, strata: dict, ratios, totals: Counter) -> None:
    """A split with a non-zero ratio left empty takes the smallest unit of the most over-target split."""
    for s, ratio in zip(SPLITS, ratios):
        if ratio <= 0 or s in assignment.values():
            continue
        members = defaultdict(list)
        for p, split in assignment.items():
            members[split].append(p)
        donors = [d for d in members if len(members[d]) > 1]
        if not donors:
            return
        # the split furthest above its share of clips gives up its smallest participant
        excess = {
            d: sum(strata[p]["size"] for p in members[d]) / totals["size"] - ratios[SPLITS.index(d)] for d in donors
        }
        donor = max(donors, key=lambda d: (excess[d], d))
        smallest = min(members[donor], key=lambda p: (strata[p]["size"], p))
        assignment[smallest] = s


def suspected_duplicates(duplicate_pairs, participant_split: dict[str, str]) -> list[dict]:
    """The merged groups, for ``manifest.json``'s ``suspected_duplicates``: each group's
    participants, the split(s) they are in (one, unless a saved split file separated them) and the
    clip pairs that linked them."""
    linked = [
        p for p in duplicate_pairs if p.participant_a in participant_split and p.participant_b in participant_split
    ]
    group_of = duplicate_groups(linked, sorted({q for p in linked for q in (p.participant_a, p.participant_b)}))
    members: dict[str, list] = defaultdict(list)
    for participant, rep in group_of.items():
        members[rep].append(participant)
    out = []
    for rep, people in sorted(members.items()):
        out.append(
            {
                "participants": sorted(people),
                "splits": [s for s in SPLITS if s in {participant_split[p] for p in people}],
                "pairs": [
                    {
                        "clip_a": p.clip_a,
                        "clip_b": p.clip_b,
                        "participant_a": p.participant_a,
                        "participant_b": p.participant_b,
                        "distance": float(p.distance),
                    }
                    for p in linked
                    if group_of[p.participant_a] == rep
                ],
            }
        )
    return out


def split_document(assignment: dict[str, str], ratios, seed: int | None, method: str = METHOD) -> dict:
    return {
        "format": "ultramn-split",
        "schema_version": 1,
        "method": method,
        "seed": seed,
        "ratios": dict(zip(SPLITS, (round(float(r), 6) for r in ratios))),
        "participants": dict(sorted(assignment.items())),
    }


def apply_split(split: dict, records: list[dict], path: str | Path | None = None) -> dict[str, str]:
    """Clip id -> split for ``records`` under a saved split; every participant must be in it."""
    table = split["participants"]
    missing = sorted({r["participant"] for r in records} - set(table))
    if missing:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise InputError(path, f"split file does not assign {len(missing)} participant(s): {shown}")
    return {r["clip_id"]: table[r["participant"]] for r in records}


def save_split(path: str | Path, split: dict) -> None:
    write_json(path, split, "split")


def load_split(path: str | Path) -> dict:
    return read_json(path, "split")


def split_balance(records: list[dict], clip_split: dict[str, str]) -> dict[str, dict[str, int]]:
    """Stratum -> split -> clip count: how well the split came out (card and tests)."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(SPLITS, 0))
    for rec in records:
        s = clip_split[rec["clip_id"]]
        out[f"plane:{rec.get('plane')}"][s] += 1
        out[f"side:{rec.get('side')}"][s] += 1
        for key in ("sex", "age_band", "site"):
            if rec.get(key):
                out[f"{key}:{rec[key]}"][s] += 1
        if _device(rec):
            out[f"device:{_device(rec)}"][s] += 1
    return {k: dict(v) for k, v in sorted(out.items())}
