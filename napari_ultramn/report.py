"""Self-contained HTML reports (no external files: figures are inline PNG) a person reads without Python."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import atomic_write_text


@dataclass
class ReportSection:
    """A titled block of HTML; ``figures`` are extra files written beside it (name -> bytes)."""

    title: str
    html: str
    figures: dict[str, bytes] = field(default_factory=dict)


def escape(text: object) -> str:
    return html.escape(str(text))


def png_bytes(image: np.ndarray) -> bytes:
    """Encode an (H, W) or (H, W, 3) uint8 image as PNG."""
    import imageio.v3 as iio

    return iio.imwrite("<bytes>", np.asarray(image), extension=".png")


def image_html(image: np.ndarray, caption: str = "", width: int | None = None) -> str:
    data = base64.b64encode(png_bytes(image)).decode()
    w = f' width="{width}"' if width else ""
    cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="data:image/png;base64,{data}"{w} alt="{escape(caption)}">{cap}</figure>'


def figure_html(fig, caption: str = "") -> str:
    """Embed a matplotlib figure (closed afterwards). Callers create it with the Agg backend."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="data:image/png;base64,{data}" alt="{escape(caption)}">{cap}</figure>'


#: Column names of our tables (CSV names) -> headers in words, units in brackets.
HEADER_WORDS = {
    "dice": "nerve Dice",
    "iou": "nerve IoU",
    "hd": "HD (max)",
    "hd95": "HD95",
    "assd": "ASSD",
    "ci_low": "95% CI low",
    "ci_high": "95% CI high",
    "ci_method": "CI method",
    "ci_low_F": "95% CI low (F test)",
    "ci_high_F": "95% CI high (F test)",
    "ci_low_boot_participants": "95% CI low (participant bootstrap)",
    "ci_high_boot_participants": "95% CI high (participant bootstrap)",
    "n_clips": "clips",
    "n_frames": "frames",
    "n_subjects": "subjects",
    "n_raters": "raters",
    "n_participants": "participants",
    "n_one_empty": "frames with one mask empty",
    "n_both_empty": "frames with both masks empty",
    "sd": "SD",
    "loa_low": "lower limit of agreement",
    "loa_high": "upper limit of agreement",
}
_UNIT_SUFFIXES = (("_mm2", "mm²"), ("_mm", "mm"), ("_ms", "ms"), ("_s", "s"), ("_px", "px"))


def readable_header(name: object) -> str:
    """``'csa_error_mm2'`` -> ``'CSA error (mm²)'``: what a reader sees, not the CSV's name."""
    text = str(name)
    if text in HEADER_WORDS:
        return HEADER_WORDS[text]
    unit = ""
    for suffix, word in _UNIT_SUFFIXES:
        if text.endswith(suffix) and len(text) > len(suffix):
            text, unit = text[: -len(suffix)], f" ({word})"
            break
    text = HEADER_WORDS.get(text, text).replace("_", " ").replace("mm2", "mm²")
    return text.replace("csa ", "CSA ").replace("hd95", "HD95") + unit


def table_html(df, float_format: str = "{:.3f}", max_rows: int = 60) -> str:
    """A pandas DataFrame as an HTML table (first ``max_rows`` rows, with a note if cut).

    Headers are put in words with units (:func:`readable_header`); a ``unit`` column says mm²."""
    shown = df.head(max_rows).rename(columns=readable_header)
    if "unit" in shown.columns:
        shown = shown.assign(unit=shown["unit"].replace({"mm2": "mm²"}))
    out = shown.to_html(index=False, float_format=lambda v: float_format.format(v), border=0, na_rep="-")
    # wide tables scroll inside their own box instead of pushing the page sideways
    out = f"<div class='table-box'>{out}</div>"
    if len(df) > max_rows:
        out += f"<p class='note'>First {max_rows} of {len(df)} rows; the CSV has all.</p>"
    return out


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#1d2733;line-height:1.45}
h1{border-bottom:2px solid #2b6cb0;padding-bottom:.3em} h2{color:#2b6cb0;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em} th,td{padding:.25em .7em;
border-bottom:1px solid #dde3ea;text-align:right} th{background:#eef3f8} td:first-child,
th:first-child{text-align:left} figure{display:inline-block;margin:.5em 1em .5em 0}
figcaption{font-size:.85em;color:#555} img{max-width:100%;height:auto} .note{color:#666;font-size:.9em} code{background:#f2f4f7;padding:0 .2em}
.bad{color:#b42318} .good{color:#067647}
.table-box{max-width:100%;overflow-x:auto;max-height:32em;overflow-y:auto;margin:.8em 0}
.table-box table{margin:0} .table-box th{position:sticky;top:0}
td,code{white-space:nowrap} th{white-space:normal;vertical-align:bottom;min-width:4em}
.warning{background:#fef3f2;border-left:4px solid #b42318;padding:.5em .8em}
"""


def render_report(title: str, sections: list[ReportSection], intro: str = "") -> str:
    toc = "".join(f'<li><a href="#s{i}">{escape(s.title)}</a></li>' for i, s in enumerate(sections))
    body = "".join(f'<section id="s{i}"><h2>{escape(s.title)}</h2>{s.html}</section>' for i, s in enumerate(sections))
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{escape(title)}</h1>{intro}<ul>{toc}</ul>{body}</body></html>"
    )


def write_report(path: str | Path, title: str, sections: list[ReportSection], intro: str = "") -> Path:
    """Write the report atomically (plus any section figure files beside it); returns its path."""
    path = Path(path)
    for s in sections:
        for name, data in s.figures.items():
            from .atomic import atomic_write_bytes

            atomic_write_bytes(path.parent / name, data)
    atomic_write_text(path, render_report(title, sections, intro))
    return path
