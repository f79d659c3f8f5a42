"""Report tables a data manager reads without a manual: words and units in headers, own scroll box."""

import pandas as pd
import pytest

from napari_ultramn.report import readable_header, table_html


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("csa_error_mm2", "CSA error (mm²)"),
        ("hd95_mm", "HD95 (mm)"),
        ("ci_low", "95% CI low"),
        ("ci_high", "95% CI high"),
        ("n_clips", "clips"),
        ("frame_time_ms", "frame time (ms)"),
        ("plane_accuracy", "plane accuracy"),
        ("dice", "nerve Dice"),
        ("participant", "participant"),
    ],
)
def test_headers_are_words_with_units(name, header):
    assert readable_header(name) == header


def test_table_scrolls_in_its_own_box_and_says_mm2():
    df = pd.DataFrame({"clip_id": ["P0123456789-abcdef12"], "value": [0.5], "unit": ["mm2"], "ci_low": [0.1]})
    html = table_html(df)
    assert html.startswith("<div class='table-box'>") and html.count("<table") == 1
    assert "<th>95% CI low</th>" in html and "<td>mm²</td>" in html and "mm2" not in html
