"""audit-phi: identifiers, identifier-shaped values and burned-in text are found, and located;
our own clean outputs give no hit; the audit log never shows a full identifier."""

import json

import numpy as np
import pydicom
import pytest

from dataset_tools.phi_audit import (
    Identifier,
    Matcher,
    audit_paths,
    find_burned_text,
    load_identifiers,
    mask_value,
    read_identifiers_csv,
)
from dataset_tools.phi_audit.patterns import find_patterns
from napari_ultramn.cli import main
from napari_ultramn.errors import InputError
from napari_ultramn.io.h5 import load_h5py
from napari_ultramn.progress import run_to_end
from tests.project_factory import make_project

NAME, PID, BIRTH = "MUELLER^ANNA", "N6335322", "19850312"
IDENTIFIERS = [
    Identifier("patient_name", NAME),
    Identifier("patient_id", PID),
    Identifier("birth_date", BIRTH),
    Identifier("institution", "Northgate University Hospital"),
]
RAW = (NAME, "MUELLER", PID, BIRTH, "Northgate")  # never printed by the audit


def write_identifiers(project_root, identifiers=IDENTIFIERS):
    """``.secret/identifiers.json`` in the format ingest writes (contract D)."""
    path = project_root / ".secret" / "identifiers.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(
        json.dumps({"schema_version": 1, "identifiers": [{"kind": i.kind, "value": i.value} for i in identifiers]})
    )
    return path


def draw_text(frame, text, xy=(4, 4), size=12, fill=235):
    from PIL import Image, ImageDraw, ImageFont

    img = Image.fromarray(frame)
    ImageDraw.Draw(img).text(xy, text, fill=fill, font=ImageFont.load_default(size=size))
    return np.asarray(img)


def audit(*paths, identifiers=IDENTIFIERS):
    return run_to_end(audit_paths(list(paths), identifiers))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("phi") / "proj"
    make_project(
        root, n_participants=2, clips_per_participant=2, n_frames=10, frame_shape=(48, 64), raters=("r1", "r2"), seed=3
    )
    write_identifiers(root)
    return root


@pytest.fixture
def project(pristine, tmp_path):
    import shutil

    shutil.copytree(pristine, tmp_path / "proj")
    return tmp_path / "proj"


# ---------------------------------------------------------------- matching
@pytest.mark.parametrize(
    "text",
    [
        "MUELLER^ANNA",
        "Anna Mueller",
        "Mueller, Anna",
        "mueller_anna.dcm",
        "seen: ANNA  MÜLLER",
        "Müller A.",
        "A. Mueller",
        "id n6335322",
        "12.03.85",
        "3/12/1985",
        "N6335322_scan",
        "born 1985-03-12",
        "12.03.1985",
        "03/12/1985",
        "12/03/1985",
        "19850312",
        "NORTHGATE university-hospital",
    ],
)
def test_matcher_finds_every_rendering(text):
    assert Matcher(IDENTIFIERS).find(text), text


@pytest.mark.parametrize(
    "text",
    [
        "XN63353221",
        "N63353",
        "Anna Schmidt",
        "19850313",
        "P13c098fa91-01fc691b",
        "transverse_wrist",
    ],
)
def test_matcher_ignores_near_misses(text):
    assert not Matcher(IDENTIFIERS).find(text), text


def test_a_date_ingest_recorded_in_several_renderings_is_one_date():
    renderings = [Identifier("birth_date", v) for v in (BIRTH, "1985-03-12", "12.03.1985", "03/12/1985")]
    m = Matcher(renderings)
    assert len(m.find("dob 12/03/1985")) == 1
    assert m.find("1985-12-03") == []  # "03/12/1985" is read as the date the others name


def test_short_identifiers_are_reported_unsearchable():
    m = Matcher([Identifier("patient_id", "12"), Identifier("patient_id", "AB")])
    assert not m and {why for _, why in m.unsearchable} == {"too short to search for"}


def test_mask_shows_first_character_and_length_only():
    assert mask_value("MUELLER^ANNA") == "M***(12)"


@pytest.mark.parametrize(
    "text,key,what",
    [
        ("DOE^JOHN", "patient_name", "person name"),
        ("Doe, John", "ReferringPhysician", "person name"),
        ("John Doe", "patient", "person name"),
        ("chart MRN12345 reviewed", None, "record number"),
        ("MRN: 0012345", "comment", "record number"),
        ("seen 2023-04-15", "comment", "date"),
        ("15.04.2023", None, "date"),
    ],
)
def test_patterns_without_a_list(text, key, what):
    assert what in {p.what for p in find_patterns(text, key)}


@pytest.mark.parametrize(
    "text,key",
    [
        ("20241013", "study_date_shifted"),
        ("2026-11-30T12:58:49+00:00", "ingested_at"),
        ("2026-11-30T12:58:49+00:00", None),
        ("P13c098fa91-20241013", "clip_id"),
        ("UltraMN Phantom Study", "name"),
        ("P13c098fa91", "PatientName"),
        ("ANONYMOUS", "patient_name"),
        ("Kestrel Ultrasound", "manufacturer"),
    ],
)
def test_patterns_leave_our_own_values_alone(text, key):
    assert find_patterns(text, key, pn_element=key == "PatientName") == []


# ---------------------------------------------------------------- identifier lists
def test_load_identifiers_reads_the_ingest_format(tmp_path):
    assert load_identifiers(tmp_path) == []
    write_identifiers(tmp_path)
    assert load_identifiers(tmp_path) == IDENTIFIERS


def test_bad_identifier_files_name_the_problem(tmp_path):
    (tmp_path / ".secret").mkdir()
    (tmp_path / ".secret" / "identifiers.json").write_text(
        '{"schema_version": 1, "identifiers": [{"kind": "shoe_size", "value": "44"}]}'
    )
    with pytest.raises(InputError, match="identifier 1 has kind 'shoe_size'; expected one of patient_id"):
        load_identifiers(tmp_path)
    bad = tmp_path / "ids.csv"
    bad.write_text("type,value\npatient_id,N1\n")
    with pytest.raises(InputError, match="ids.csv: identifiers CSV needs the columns kind,value"):
        read_identifiers_csv(bad)


# ---------------------------------------------------------------- whole projects
def test_clean_project_and_dataset_give_no_hit(pristine, tmp_path):
    from dataset_tools.build import build_dataset

    run_to_end(build_dataset(pristine, tmp_path / "ds", consensus="majority", min_frames=4))
    report = audit(pristine, tmp_path / "ds")
    assert report.hits == [], report.lines()
    assert report.files_scanned > 10 and report.lines()[-1].startswith("clean:")


def test_planted_identifiers_are_found_where_they_are(project):
    h5py = load_h5py()
    ann = next((project / "annotations").rglob("r1.json"))
    obj = json.loads(ann.read_text())
    obj["comment"] = "patient Anna Mueller moved"
    ann.write_text(json.dumps(obj))
    clip = next((project / "clips").glob("*.h5"))
    with h5py.File(clip, "r+") as fh:
        fh["frames"].attrs["operator_note"] = "ID N6335322"
    (project / "notes").mkdir()
    (project / "notes" / "mueller_anna.txt").write_text("nothing\n")
    (project / ".secret" / "keep.txt").write_text(f"{NAME} {PID}\n")  # the key store: never read
    report = audit(project)
    where = {(h.category, h.file.split("/", 1)[1], h.location) for h in report.hits}
    rel = ann.relative_to(project).as_posix()
    assert ("identifier", rel, "$.comment") in where
    assert ("identifier", f"clips/{clip.name}", "HDF5 /frames attribute 'operator_note'") in where
    assert ("identifier", "notes/m***(12).txt", "file name") in where
    assert not any(".secret" in h.file for h in report.hits)
    assert len(report.hits) == 3, report.lines()


def test_a_file_that_cannot_be_read_fails_the_audit(project):
    from dataset_tools.phi_audit import audit_project

    (project / "clips" / "broken.h5").write_bytes(b"not hdf5 at all")
    report = run_to_end(audit_project(project))
    assert [(h.category, h.file.split("/", 1)[1]) for h in report.hits] == [("unreadable", "clips/broken.h5")]
    assert report.lines()[-1].startswith("NOT clean: 1 hit(s) (1 unreadable)")


def test_identifiers_changed_between_audits_are_searched(tmp_path):
    """Audits reuse the last identifier Matcher when the identifiers are the same: one changed in
    place, or a different list, is searched."""
    note = tmp_path / "note.txt"
    note.write_text(f"seen by {PID} and Quentin Example")
    identifiers = list(IDENTIFIERS)
    first = run_to_end(audit_paths([note], identifiers, burned_text=False))
    assert [h.category for h in first.hits] == ["identifier"]
    identifiers.append(Identifier("patient_name", "EXAMPLE^QUENTIN"))  # the same list, one more
    second = run_to_end(audit_paths([note], identifiers, burned_text=False))
    assert len(second.hits) == 2 and second.identifiers_searched == first.identifiers_searched + 1
    assert run_to_end(audit_paths([note], IDENTIFIERS[2:], burned_text=False)).hits == []


def test_dicom_private_tag_and_nested_sequence(tmp_path):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from tests.dicom_factory import gray_frames, write_dicom

    path = tmp_path / "copy.dcm"
    write_dicom(path, gray_frames(2, 32, 48))
    ds = pydicom.dcmread(path)
    block = ds.private_block(0x0011, "ACME SCANNER", create=True)
    block.add_new(0x10, "LO", "last exam of MUELLER, ANNA")
    item = Dataset()
    item.AccessionNumber = "ACC 19850312"
    ds.RequestAttributesSequence = Sequence([item])
    ds.save_as(path)
    hits = audit(path).hits
    locations = {h.location for h in hits if h.category == "identifier"}
    assert "(0011,1010) private [ACME SCANNER]" in locations
    assert "(0040,0275)[0].(0008,0050) AccessionNumber" in locations


def test_a_shifted_date_may_equal_a_listed_one(project, tmp_path):
    """One participant's shifted date can be another's real date: not a leak where it is marked
    shifted, a leak anywhere else."""
    from tests.dicom_factory import gray_frames, write_dicom

    clips = json.loads((project / "clips.json").read_text())
    clips["clips"][0]["study_date_shifted"] = BIRTH
    clips["clips"][1]["comment"] = BIRTH
    (project / "clips.json").write_text(json.dumps(clips))
    for name, method in (("shifted.dcm", "basic profile; dates shifted"), ("kept.dcm", "basic profile")):
        write_dicom(project / name, gray_frames(1, 16, 16))
        ds = pydicom.dcmread(project / name)
        ds.StudyDate, ds.DeidentificationMethod = BIRTH, method
        ds.PatientName = ds.PatientID = "P13c098fa91"  # a pseudonym, as de-identification leaves it
        ds.save_as(project / name)
    found = {(h.file.split("/", 1)[1], h.location) for h in audit(project).hits}
    assert found == {("clips.json", "$.clips[1].comment"), ("kept.dcm", "(0008,0020) StudyDate")}


def test_burned_text_in_project_frames(project):
    h5py = load_h5py()
    clip = sorted((project / "clips").glob("*.h5"))[1]
    with h5py.File(clip, "r+") as fh:
        frames = fh["frames"][:]
        frames[:, :12] = 0  # the scanner's text band, left in by a crop that missed it
        fh["frames"][...] = np.stack([draw_text(f, "N6335322 A", (2, 1), 9) for f in frames])
    hits = audit(project).hits
    assert [(h.category, h.file.endswith(clip.name)) for h in hits] == [("burned_text", True)]
    assert hits[0].location.startswith("HDF5 /frames, frames 0-9, bbox rows ")
    pooled = run_to_end(audit_paths([project], IDENTIFIERS, workers=2)).hits  # frames searched by 2 workers
    assert pooled == hits
    report = run_to_end(audit_paths([project], IDENTIFIERS, burned_text=False))
    assert report.clean and "pixels not searched" in report.notes[-1]


def test_phantom_clips_are_clean_and_their_source_is_not():
    from napari_ultramn.phantom.dicom_writer import compose_screen
    from napari_ultramn.phantom.generate import generate_clip
    from napari_ultramn.phantom.study import participant_identity

    clip = generate_clip("transverse_wrist", 0, n_frames=12, size=(96, 96))
    assert find_burned_text(clip.frames) == []
    assert all(find_burned_text(f) == [] for f in clip.frames[::3])
    ident = participant_identity(0, 0)

    class Header:  # what compose_screen reads of a DicomHeader
        patient_name, patient_id, study_date = ident["name"], ident["patient_id"], ident["study_date"]
        study_time, institution, transducer = ident["study_time"], "Northgate", "L18-5"
        frequency_khz, plane, side = 15000, "transverse_wrist", "right"

    screen, text_mask, region = compose_screen(clip.frames, Header, (0.1, 0.1))
    regions = find_burned_text(screen)
    assert len(regions) == 1 and regions[0].static
    top, left, bottom, right = regions[0].bbox
    rows, cols = np.nonzero(text_mask)
    assert top <= rows.min() + 2 and bottom >= rows.max() - 2 and bottom <= region.top
    assert find_burned_text(screen[0])  # one frame alone: spatial cues suffice on a dark band


@pytest.mark.parametrize("plane", ["transverse_wrist", "longitudinal_forearm"])
def test_text_typed_over_moving_speckle(plane):
    """A sonographer's label inside the image: static over changing speckle, found in clips."""
    from napari_ultramn.phantom.generate import generate_clip

    frames = generate_clip(plane, 1, n_frames=16, size=(128, 160)).frames
    regions = find_burned_text(np.stack([draw_text(f, "RT MEDIAN 12.03", (10, 60), 12) for f in frames]))
    assert [(r.first_frame, r.last_frame) for r in regions] == [(0, 15)]
    top, left, bottom, right = regions[0].bbox
    assert 57 <= top <= 64 and 70 <= bottom <= 76 and left == 11 and 95 <= right <= 110


def test_images_and_video(tmp_path):
    from PIL import Image

    from tests.dicom_factory import write_video
    from tests.project_factory import nerve_masks, synthetic_frames

    rng = np.random.default_rng(1)
    frames = synthetic_frames(nerve_masks(10, (64, 96), rng), rng)
    frames[:, :14] = 0
    Image.fromarray(frames[0]).save(tmp_path / "clean.png")
    Image.fromarray(draw_text(frames[0], "ID N6335322 12.03.85", (2, 2), 10)).save(tmp_path / "text.png")
    write_video(tmp_path / "text.mp4", np.stack([draw_text(f, "MUELLER ANNA", (2, 2), 10) for f in frames]))
    hits = audit(tmp_path).hits
    assert sorted((h.category, h.file) for h in hits) == [
        ("burned_text", f"{tmp_path.name}/text.mp4"),
        ("burned_text", f"{tmp_path.name}/text.png"),
    ]


def write_scanner_dicom(path, compress="none"):
    """One phantom clip as a scanner writes it: identity in the header, text band in the pixels."""
    from napari_ultramn.phantom.dicom_writer import write_us_dicom
    from napari_ultramn.phantom.generate import generate_clip
    from napari_ultramn.phantom.study import identity_header, participant_identity

    header = identity_header(
        participant_identity(0, 0),
        study_uid="1.2.3.4",
        series_uid="1.2.3.4.1",
        sop_uid="1.2.3.4.1.1",
        series_number=1,
        serial="X1",
        side="right",
        plane="transverse_wrist",
    )
    clip = generate_clip("transverse_wrist", 5, n_frames=8, size=(96, 96))
    write_us_dicom(path, clip.frames, header, clip.spacing_mm, clip.frame_time_ms, compress)
    return [
        Identifier("patient_name", header.patient_name),
        Identifier("patient_id", header.patient_id),
        Identifier("birth_date", header.birth_date),
        Identifier("study_date", header.study_date),
        Identifier("institution", header.institution),
        Identifier("accession", header.accession),
    ]


def test_scanner_file_ingested_is_clean_and_the_source_is_not(tmp_path):
    """End to end on our own pipeline: a scanner file carries names, IDs, dates and a burned-in
    text band; the project ingest makes of it carries none of them."""
    from dataset_tools.ingest import ingest

    seen = write_scanner_dicom(tmp_path / "source" / "N123" / "IM0001.dcm", compress="jpeg")
    run_to_end(ingest(tmp_path / "source", tmp_path / "proj"))
    write_identifiers(tmp_path / "proj", seen)
    assert audit(tmp_path / "proj", identifiers=seen).hits == []
    report = audit(tmp_path / "source", identifiers=seen)
    found = {(h.category, h.location.split(", ")[0]) for h in report.hits}
    assert {
        ("identifier", "(0010,0010) PatientName"),
        ("identifier", "(0010,0020) PatientID"),
        ("identifier", "(0010,0030) PatientBirthDate"),
        ("identifier", "(0008,0080) InstitutionName"),
        ("identifier", "(0008,0020) StudyDate"),
        ("identifier", "(0008,0050) AccessionNumber"),
        ("pattern", "(0008,0090) ReferringPhysicianName"),
        ("burned_text", "(7FE0,0010) PixelData"),
    } <= found


def test_images_embedded_in_a_report(tmp_path):
    """A report's plots (dark text on white) are fine; a frame thumbnail with a name band is not."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from napari_ultramn.report import ReportSection, figure_html, image_html, write_report
    from tests.project_factory import nerve_masks, synthetic_frames

    rng = np.random.default_rng(2)
    frame = synthetic_frames(nerve_masks(1, (64, 96), rng), rng)[0]
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [1, 3, 2], label="Dice per clip")
    ax.set_title("Agreement 2023 by rater")
    ax.legend()
    banded = frame.copy()
    banded[:14] = 0
    sections = [
        ReportSection("plots", figure_html(fig) + image_html(frame)),
        ReportSection("leak", image_html(draw_text(banded, "MUELLER ANNA", (2, 2), 10))),
    ]
    write_report(tmp_path / "report.html", "r", sections)
    hits = audit(tmp_path / "report.html").hits
    assert [(h.category, h.location.split(", frame 0")[0].split(", ")[-1]) for h in hits] == [
        ("burned_text", "embedded image 3")
    ]  # the plot and the clean frame come first


def test_video_tags_are_searched(tmp_path):
    import av

    with av.open(str(tmp_path / "rec.mp4"), "w") as container:
        container.metadata["comment"] = "Mueller, Anna"
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    hits = audit(tmp_path / "rec.mp4").hits
    assert [(h.category, h.location) for h in hits] == [("identifier", "container tag 'comment'")]


# ---------------------------------------------------------------- command line
def test_cli_exit_status_json_and_masking(project, tmp_path, capsys):
    assert main(["audit-phi", str(project), "-q"]) == 0
    assert capsys.readouterr().out.strip().startswith("clean:")
    (project / "clips.csv").write_text(f"clip,who\nc1,{NAME}\nc2,DOE^JOHN\n")
    out_json = tmp_path / "audit.json"
    assert main(["audit-phi", str(project), "-q", "--json", str(out_json)]) == 1
    out = capsys.readouterr().out
    report = json.loads(out_json.read_text())
    assert not report["clean"] and {h["category"] for h in report["hits"]} == {"identifier", "pattern"}
    assert "row 2, column 'who'" in out and "pattern" in out.lower()
    for raw in RAW + ("DOE^JOHN",):
        assert raw not in out and raw not in out_json.read_text()


def test_cli_project_identifiers_for_a_folder_outside_it(project, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "log.txt").write_text("epoch 1 done\n")
    assert main(["audit-phi", str(out), "--project", str(project), "-q"]) == 0
    (out / "log.txt").write_text("epoch 1 done for n6335322\n")
    assert main(["audit-phi", str(out), "--project", str(project), "-q"]) == 1
    assert "run/log.txt  [line 1]  patient_id (value) N***(8)" in capsys.readouterr().out
    assert main(["audit-phi", str(out), "--project", str(out), "-q"]) == 2
    assert "run: has no .secret/identifiers.json" in capsys.readouterr().err


def test_cli_bad_usage(tmp_path, capsys):
    assert main(["audit-phi", str(tmp_path / "nope"), "--identifiers", str(tmp_path / "x.csv")]) == 2
    assert capsys.readouterr().err.strip().endswith("x.csv: file not found")
    assert main(["audit-phi", str(tmp_path)]) == 2
    assert "no identifiers to search for" in capsys.readouterr().err
    ids = tmp_path / "ids.csv"
    ids.write_text("kind,value\npatient_id,N6335322\n")
    assert main(["audit-phi", str(tmp_path / "nope"), "--identifiers", str(ids)]) == 2
    assert capsys.readouterr().err.strip().endswith("nope: not found")
    (tmp_path / ".secret").mkdir()
    assert main(["audit-phi", str(tmp_path / ".secret"), "--identifiers", str(ids)]) == 2
    assert "the project's key store" in capsys.readouterr().err


def test_detector_shortcuts_equal_numpy_and_scipy():
    """The burned-text detector's fast median of a group and per-glyph maximum are exact."""
    from scipy import ndimage

    from dataset_tools.phi_audit.burned_text import _label_max, _median_frame

    rng = np.random.default_rng(3)
    for t in range(2, 9):
        stack = rng.integers(0, 256, (t, 23, 31)).astype(np.int16)
        np.testing.assert_array_equal(_median_frame(stack), np.median(stack, axis=0))
    mask = rng.random((40, 50)) > 0.7
    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    for values in (rng.random((40, 50)) * 255, ndimage.distance_transform_edt(mask)):
        expected = ndimage.maximum(values, labels, np.arange(1, n + 1))
        np.testing.assert_array_equal(_label_max(values, labels, n), expected)
