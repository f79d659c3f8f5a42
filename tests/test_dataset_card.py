"""The dataset card says how frames were made safe and which participants were kept together."""

from dataset_tools.dataset_summary import _deid_text, _duplicates_text


def test_card_names_imaging_area_sources_and_warns_of_uncropped_clips():
    text = _deid_text(
        {
            "imaging_area_sources": {"dicom-regions": 3, "detected": 2, "none (ingest --no-crop)": 1},
            "uncropped_clips": ["P1-abc"],
        }
    )
    assert "3 from the DICOM ultrasound regions" in text and "2 detected from the pixels" in text
    assert "**Warning:** 1 clip(s) were ingested with `--no-crop`" in text and "`P1-abc`" in text
    assert "Not recorded" in _deid_text(None)


def test_card_lists_suspected_duplicates_kept_in_one_split():
    groups = [
        {
            "participants": ["P1", "P2"],
            "splits": ["train"],
            "pairs": [
                {"clip_a": "P1-a", "clip_b": "P2-b", "participant_a": "P1", "participant_b": "P2", "distance": 0.012}
            ],
        }
    ]
    text = _duplicates_text(groups)
    assert "`P1`, `P2` (kept in train)" in text and "`P1-a` ~ `P2-b` (0.012)" in text
    assert _duplicates_text([]).startswith("None found")
