"""Near-duplicate clips across participants: fingerprints, ingest, splits, validate-dataset."""

import json
import shutil

import h5py
import numpy as np
import pydicom
import pytest

from benchmarks.bench_duplicates import TRANSFORMS, sector
from dataset_tools.build import build_dataset
from dataset_tools.fingerprint import (
    DUPLICATE_DISTANCE,
    DuplicatePair,
    clip_fingerprint,
    fingerprint_distance,
    likely_duplicate_pairs,
    parse_fingerprint,
    with_fingerprints,
)
from dataset_tools.ingest import ingest
from dataset_tools.splits import check_ratios, make_split, suspected_duplicates
from dataset_tools.validate import dataset_problems
from napari_ultramn.errors import InputError
from napari_ultramn.io.hdf5clip import write_hdf5_clip
from napari_ultramn.phantom.generate import generate_clip
from napari_ultramn.phantom.study import write_study
from napari_ultramn.progress import run_to_end
from napari_ultramn.project import Project
from tests.project_factory import make_project, registry_records


def _record(clip_id, participant, frames):
    return {"clip_id": clip_id, "participant": participant, "fingerprint": clip_fingerprint(frames)}


@pytest.fixture(scope="module")
def phantom_clip():
    return generate_clip("transverse_wrist", 3, n_frames=8, size=(128, 128)).frames


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_each_transform_is_found(phantom_clip, name):
    copy = TRANSFORMS[name](phantom_clip, np.random.default_rng(1))
    pairs = likely_duplicate_pairs([_record("a", "P1", phantom_clip), _record("b", "P2", copy)])
    assert [(p.clip_a, p.clip_b, p.participant_a, p.participant_b) for p in pairs] == [("a", "b", "P1", "P2")]
    assert 0 <= pairs[0].distance < DUPLICATE_DISTANCE


@pytest.mark.parametrize("blank_outside_fan", [False, True])
def test_distinct_phantom_participants_are_not_paired(blank_outside_fan):
    # every clip under its own participant id, so every pair is a candidate: same plane of
    # different participants (the hard case: shared anatomy), other planes, mirrored left arms;
    # with a sector probe every clip also shares the static fan outline
    shape = sector if blank_outside_fan else np.asarray
    records = []
    for p in range(6):
        for plane in ("transverse_wrist", "longitudinal_forearm"):
            clip = generate_clip(plane, 100 + p, n_frames=8, size=(128, 128))
            frames = shape(clip.flipped().frames if p % 2 else clip.frames)
            records.append(_record(f"c{p}-{plane}", f"P{p}-{plane}", frames))
    assert likely_duplicate_pairs(records) == []
    # ... and not because nothing ever matches: a JPEG copy of one of them is found
    copy = TRANSFORMS["JPEG q=75"](
        shape(generate_clip("transverse_wrist", 100, n_frames=8, size=(128, 128)).frames), np.random.default_rng(0)
    )
    pairs = likely_duplicate_pairs(records + [_record("copy", "NEW", copy)])
    assert [(p.clip_a, p.clip_b) for p in pairs] == [("c0-transverse_wrist", "copy")]


def test_pairs_involving_some_clips_are_those_of_all_pairs(phantom_clip):
    """An ingest compares only its new clips against all: the same pairs as comparing everything,
    less those between two old clips, each pair once (also when both clips are new)."""
    rng = np.random.default_rng(3)
    copies = [TRANSFORMS[name](phantom_clip, rng) for name in list(TRANSFORMS)[:3]]
    other = generate_clip("longitudinal_forearm", 9, n_frames=8, size=(128, 128)).frames
    records = [_record("a", "P1", phantom_clip), _record("x", "P9", other)]
    records += [_record(f"c{i}", f"P{i + 2}", c) for i, c in enumerate(copies)]
    every = likely_duplicate_pairs(records)
    assert len(every) == 6  # a, c0, c1, c2: every two of four
    for new in ({"c1"}, {"c0", "c2"}, {"a", "c0", "c1", "c2", "x"}, {"x"}, set()):
        expected = [p for p in every if p.clip_a in new or p.clip_b in new]
        assert likely_duplicate_pairs(records, involving=new) == expected


def test_short_blank_and_same_participant_clips():
    rng = np.random.default_rng(0)
    short = generate_clip("longitudinal_wrist", 5, n_frames=3, size=(64, 64)).frames
    blank = np.zeros((5, 64, 64), np.uint8)
    assert fingerprint_distance(clip_fingerprint(short), clip_fingerprint(short[:, :, ::-1])) == 0
    assert clip_fingerprint(blank) == "phash3:" + ",".join(["-"] * 5)
    assert fingerprint_distance(clip_fingerprint(blank), clip_fingerprint(short)) == 1.0
    # two clips of one participant are never reported: that is not a leak
    noise = rng.integers(0, 255, (4, 64, 64), dtype=np.uint8)
    assert likely_duplicate_pairs([_record("a", "P1", noise), _record("b", "P1", noise)]) == []


def test_bad_fingerprint_and_missing_fingerprint_messages():
    with pytest.raises(InputError, match="not a phash3 fingerprint: 'md5:abc'"):
        parse_fingerprint("md5:abc")
    with pytest.raises(InputError, match="not a phash3 fingerprint: bad frame hash 'zz'"):
        parse_fingerprint("phash3:zz")
    with pytest.raises(InputError, match="clip c1 has no fingerprint and no project to read it from"):
        likely_duplicate_pairs([{"clip_id": "c1", "participant": "P1"}])


def test_ingest_records_fingerprints_and_finds_a_copy(tmp_path):
    run_to_end(write_study(tmp_path / "study", 2, seed=1, n_frames=4, size=(64, 64)))
    # the same file exported again under another patient: new id, every pixel +1
    first = sorted((tmp_path / "study" / "dicom").glob("*/IM0001.dcm"))[0]
    ds = pydicom.dcmread(first)
    ds.PatientID, ds.PatientName = "OTHER-42", "DOE^JOHN"
    ds.PixelData = np.clip(ds.pixel_array.astype(np.int16) + 1, 0, 255).astype(np.uint8).tobytes()
    (tmp_path / "study" / "dicom" / "copy").mkdir()
    ds.save_as(tmp_path / "study" / "dicom" / "copy" / "IM0001.dcm")
    summary = run_to_end(ingest(tmp_path / "study", tmp_path / "proj"))
    assert len(summary.added) == 17
    records = Project.open(tmp_path / "proj").clips()
    assert all(r["fingerprint"].startswith("phash3:") for r in records)
    pairs = likely_duplicate_pairs(records)
    assert len(pairs) == 1 and pairs[0].participant_a != pairs[0].participant_b
    assert summary.duplicates == pairs  # ingest itself reports the pair it just made
    sources = {r["clip_id"]: r["source_sha256"] for r in records}
    assert len({sources[pairs[0].clip_a], sources[pairs[0].clip_b]}) == 2


def test_split_keeps_a_duplicate_pair_together_or_refuses():
    records = registry_records(n_participants=30, clips_per_participant=3, seed=7)
    plain = make_split(records, seed=0)["participants"]
    a = next(p for p, s in plain.items() if s == "train")
    b = next(p for p, s in plain.items() if s == "test")
    clip = {r["participant"]: r["clip_id"] for r in records}
    pair = DuplicatePair(clip[a], clip[b], a, b, 0.01)
    split = make_split(records, seed=0, duplicate_pairs=[pair])["participants"]
    assert split[a] == split[b] and set(split) == set(plain)
    assert suspected_duplicates([pair], split) == [
        {
            "participants": sorted([a, b]),
            "splits": [split[a]],
            "pairs": [{"clip_a": clip[a], "clip_b": clip[b], "participant_a": a, "participant_b": b, "distance": 0.01}],
        }
    ]
    with pytest.raises(
        InputError,
        match=rf"^1 suspected duplicate clip pair\(s\) across participants \(the same "
        rf"patient under two pseudonyms\?\): {a} \({clip[a]}\) ~ {b} \({clip[b]}\), "
        "distance 0.010",
    ):
        make_split(records, seed=0, duplicate_pairs=[pair], refuse_duplicates=True)


@pytest.mark.parametrize("ratios", [(0.8, 0.15, 0.15), (1.1, -0.05, -0.05), (0.7, 0.3)])
def test_ratios_refused_with_one_message(ratios):
    with pytest.raises(
        InputError,
        match=r"^split ratios must be three non-negative numbers summing to 1 with "
        r"train > 0 \(train validation test, e.g. 0.7 0.15 0.15\), got "
        + str(list(ratios)).replace("[", r"\[").replace("]", r"\]"),
    ):
        check_ratios(ratios)


@pytest.fixture(scope="module")
def copied_dataset(tmp_path_factory):
    """A built dataset whose project had P001's first clip replaced by P000's, every pixel +1."""
    root = tmp_path_factory.mktemp("dup")
    project = make_project(root / "proj", n_participants=5, raters=("r1", "r2"), seed=4)
    source = project.open_clip("p0_c0").to_array()
    rec = project.clip_record("p1_c0")
    write_hdf5_clip(
        project.clip_path("p1_c0"),
        (source + 1).astype(np.uint8),
        {
            k: rec[k]
            for k in ("clip_id", "participant", "side", "plane", "source_sha256", "spacing_source", "frame_time_ms")
        },
    )
    run_to_end(build_dataset(project, root / "ds", consensus="majority", min_frames=8))
    return root / "ds"


def test_build_keeps_the_copy_in_the_split_of_its_original(copied_dataset):
    manifest = json.loads((copied_dataset / "manifest.json").read_text())
    splits = {c["participant"]: c["split"] for c in manifest["clips"]}
    [group] = manifest["suspected_duplicates"]
    assert group["participants"] == ["P000", "P001"] and group["splits"] == [splits["P000"]]
    assert splits["P000"] == splits["P001"]
    assert [(p["clip_a"], p["clip_b"]) for p in group["pairs"]] == [("p0_c0", "p1_c0")]
    assert dataset_problems(copied_dataset) == []


def test_validate_reports_a_duplicate_across_splits(copied_dataset, tmp_path):
    folder = tmp_path / "ds"
    shutil.copytree(copied_dataset, folder)
    clips = json.loads((folder / "manifest.json").read_text())["clips"]
    a = next(c for c in clips if c["clip_id"] == "p0_c0")
    b = next(
        c
        for c in clips
        if c["split"] != a["split"] and c["frame_shape"] == a["frame_shape"] and c["n_frames"] == a["n_frames"]
    )
    with h5py.File(folder / f"{a['split']}.h5", "r") as fa:
        frames = fa["clips/p0_c0/frames"][()]
    with h5py.File(folder / f"{b['split']}.h5", "r+") as fb:
        fb[f"clips/{b['clip_id']}/frames"][...] = frames[:, :, ::-1]  # mirrored: no identical frame
    problems = [p for p in dataset_problems(folder) if "have near-identical clips" in p]
    # P001's clip is a copy of P000's (same split), so it is reported with b too
    assert len(problems) == 2, problems
    assert any(
        f"{a['participant']} (clip p0_c0, {a['split']})" in p
        and f"{b['participant']} (clip {b['clip_id']}, {b['split']})" in p
        and p.endswith("likely the same patient under two pseudonyms, across splits")
        for p in problems
    )


def test_lazy_fingerprint_from_the_project_clip_file(copied_dataset):
    project = Project.open(copied_dataset.parent / "proj")
    rec = project.clip_record("p2_c1")
    assert "fingerprint" not in rec
    [filled] = with_fingerprints([rec], project)
    assert filled["fingerprint"] == clip_fingerprint(project.open_clip("p2_c1").to_array())
