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

The split file (``schemas/split.schema.json``) maps every participant to its split and records the
seed, ratios and method; :func:`load_split` + :func:`apply_split` rebuild it exactly.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from napari_ultramn.errors import InputError
from napari_ultramn.schema import read_json, write_json

SPLITS = ("train", "validation", "test")
DEFAULT_RATIOS = (0.7, 0.15, 0.15)
METHOD = "greedy-stratified-participant"
#: registry fields that are participant-level demographics, balanced with a lower weight
DEMOGRAPHIC_FIELDS = ("sex", "age_band", "site", "device")
_WEIGHTS = {"size": 1.0, "plane": 1.0, "side": 1.0, "sex": 0.5, "age_band": 0.5, "site": 0.5,
            "device": 0.5}


def check_ratios(ratios) -> tuple[float, float, float]:
    """Three non-negative numbers with a positive sum, normalised to sum 1."""
    r = [float(x) for x in ratios]
    if len(r) != 3 or any(x < 0 or not np.isfinite(x) for x in r) or sum(r) <= 0 or r[0] <= 0:
        raise ValueError(f"ratios must be three non-negative numbers (train > 0), got {list(ratios)}")
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
        values = {"sex": rec.get("sex"), "age_band": rec.get("age_band"), "site": rec.get("site"),
                  "device": _device(rec)}
        for key, value in values.items():
            if value:
                demo[rec["participant"]].setdefault(key, str(value))
    for participant, fields in demo.items():
        for key, value in fields.items():
            out[participant][f"{key}:{value}"] += 1
    return dict(out)


def make_split(records: list[dict], ratios=DEFAULT_RATIOS, seed: int = 0) -> dict:
    """Assign participants to splits (see module docstring); returns the split-file dict."""
    ratios = check_ratios(ratios)
    strata = participant_strata(records)
    if not strata:
        raise ValueError("no clips to split")
    totals: Counter = Counter()
    for c in strata.values():
        totals.update(c)
    rng = np.random.default_rng(seed)
    participants = sorted(strata)
    tiebreak = {p: float(x) for p, x in zip(participants, rng.random(len(participants)))}
    order = sorted(participants, key=lambda p: (-strata[p]["size"], tiebreak[p]))
    held = {s: Counter() for s in SPLITS}
    assignment: dict[str, str] = {}
    for p in order:
        best, best_score = None, -np.inf
        for s, ratio in zip(SPLITS, ratios):
            if ratio <= 0:
                continue
            score = sum(
                _WEIGHTS[k.split(":")[0]] * n * (ratio * totals[k] - held[s][k]) / totals[k]
                for k, n in strata[p].items()
            )
            if score > best_score + 1e-12:
                best, best_score = s, score
        assignment[p] = best
        held[best].update(strata[p])
    _fill_empty(assignment, strata, ratios, totals)
    return split_document(assignment, ratios, seed)


def _fill_empty(assignment: dict, strata: dict, ratios, totals: Counter) -> None:
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
        excess = {d: sum(strata[p]["size"] for p in members[d]) / totals["size"]
                  - ratios[SPLITS.index(d)] for d in donors}
        donor = max(donors, key=lambda d: (excess[d], d))
        smallest = min(members[donor], key=lambda p: (strata[p]["size"], p))
        assignment[smallest] = s


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
