"""``ultramn agreement``: a project's inter-rater agreement as tidy CSV files and one HTML report.

Files written to ``out_dir``: ``frame_pairs.csv`` (one row per rater pair x clip x frame),
``boundary_by_pair.csv`` / ``boundary_by_clip.csv`` / ``boundary_by_participant.csv``,
``plane_overall.csv`` / ``plane_pairwise.csv`` / ``plane_per_label.csv`` / ``plane_confusion.csv``,
``quality_overall.csv`` / ``quality_pairwise.csv`` (image-quality grade, ordinal),
``area_icc.csv``, ``bland_altman.csv``, ``frame_areas.csv``, ``worst_frames.csv``, ``summary.csv``
and ``report.html`` (self-contained; figures inline).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from napari_ultramn.atomic import atomic_write_text
from napari_ultramn.errors import InputError, OutputError, output_error
from napari_ultramn.progress import Progress, ProgressGen, relay
from napari_ultramn.report import ReportSection, escape, table_html, write_report

from . import figures
from .summaries import compute_statistics
from .tables import AgreementTables, build_tables

METHODS = """
<p>Planes: percent agreement, Cohen's kappa per rater pair (unweighted; <code>statsmodels</code>),
Fleiss' kappa (<code>statsmodels</code>; Gwet's missing-data form where raters skipped subjects),
Krippendorff's alpha (nominal; <code>krippendorff</code> package) and Gwet's AC1 (Gwet 2008/2014),
per clip and per frame. Boundaries: Dice, IoU, Hausdorff distance (HD), HD95, average symmetric
surface distance (ASSD) and surface Dice at a tolerance, in mm from each clip's calibration,
following <b>MONAI's convention</b> (<code>monai.metrics</code>: boundary = mask minus its erosion;
HD95 = larger of the two directed 95th percentiles; ASSD = mean of both directions' distances
pooled), reimplemented with exact distance transforms and tested equal to MONAI. Both masks empty:
Dice 1, distances 0; one empty: Dice 0, distances undefined, counted as <i>one empty</i> and left
out of distance means (one convention, in <code>napari_ultramn.metrics</code>, shared with model
evaluation). Area: ICC in the six Shrout &amp; Fleiss (1979) forms on frames every rater measured
(values from <code>pingouin.intraclass_corr</code>), and Bland-Altman bias with 95% limits of
agreement. ICC intervals (<i>ci_low</i>, <i>ci_high</i>; <i>ci_method</i>): the exact F interval
for ICC(1,&middot;) and ICC(3,&middot;), and for ICC(2,&middot;) the generalized confidence interval
(Tian &amp; Cappelleri 2004), which keeps its 95% coverage when raters differ systematically; the
McGraw &amp; Wong (1996) F interval (<i>ci_low_F</i>, <i>ci_high_F</i>, unrounded) and a participant
bootstrap (<i>ci_*_boot_participants</i>: raters held fixed, so rater variance is left out) stand
beside them. The F and generalized intervals treat frames as independent subjects; frames of one
clip are not (the participant bootstrap allows for that, but not for rater variance): read the
wider of the two. Image-quality grade (ok &lt; poor &lt;
unusable, an ordered scale): weighted kappa per rater pair with linear and quadratic disagreement
weights (<code>statsmodels</code>) and Krippendorff's alpha with the ordinal difference function
(<code>krippendorff</code>), per clip. Other confidence intervals: 95% percentile bootstrap over
participants (frames and clips of a participant are resampled together), {n_boot} replicates,
seed {seed}; no interval ('-') where fewer than two participants contribute, and
<i>n_boot_valid</i> counts the replicates where a coefficient was defined.</p>
"""


@dataclass
class AgreementResult:
    out_dir: Path
    tables: AgreementTables
    stats: dict
    files: dict[str, Path] = field(default_factory=dict)
    figures_html: dict[str, str] = field(default_factory=dict)
    n_boot: int = 200
    seed: int = 0

    @property
    def notes(self) -> list[str]:
        return list(self.stats.get("notes", []))

    @property
    def report_path(self) -> Path:
        return self.out_dir / "report.html"

    def summary(self) -> pd.DataFrame:
        """The headline numbers: one row per coefficient with CI and unit."""
        rows = []
        for r in self.stats["plane_overall"].to_dict("records"):
            rows.append(
                {
                    "what": f"plane ({r['level']})",
                    "coefficient": r["coefficient"],
                    "value": r["value"],
                    "ci_low": r["ci_low"],
                    "ci_high": r["ci_high"],
                    "unit": "",
                    "n": r["n_subjects"],
                    "note": r["note"] if not np.isfinite(r["value"]) else "",
                }
            )
        bp = self.stats.get("boundary_by_pair")
        if bp is not None:
            for r in bp[bp["pair"] == "all"].to_dict("records"):
                unit = "" if r["metric"] in ("dice", "iou", "surface_dice") else r["unit"]
                note = (
                    "" if r["n_frames"] else (f"undefined: one rater drew no nerve in all {r['n_one_empty']} frame(s)")
                )
                if r["n_one_empty"] and not note:
                    note = f"{r['n_one_empty']} frame(s) with one mask empty left out of distances"
                rows.append(
                    {
                        "what": "boundary (all pairs)",
                        "coefficient": r["metric"],
                        "value": r["mean"],
                        "ci_low": r["ci_low"],
                        "ci_high": r["ci_high"],
                        "unit": unit,
                        "n": r["n_frames"],
                        "note": note if r["metric"] not in ("dice", "iou") else "",
                    }
                )
        rows += self._quality_rows()
        icc = self.stats.get("area_icc")
        if icc is not None and not icc.empty:
            for r in icc.to_dict("records"):
                rows.append(
                    {
                        "what": "area",
                        "coefficient": r["form"],
                        "value": r["value"],
                        "ci_low": r["ci_low"],
                        "ci_high": r["ci_high"],
                        "unit": r["unit"],
                        "n": r["n_subjects"],
                        "note": "",
                    }
                )
        return pd.DataFrame(rows)

    def _quality_rows(self) -> list[dict]:
        """Summary rows of the image-quality grade: ordinal alpha, weighted kappa per rater pair."""
        what = "quality grade (ordinal)"
        rows = []
        qo, qp = self.stats.get("quality_overall"), self.stats.get("quality_pairwise")
        if qo is not None:
            for r in qo.to_dict("records"):
                rows.append(
                    {
                        "what": what,
                        "coefficient": r["coefficient"],
                        "value": r["value"],
                        "ci_low": r["ci_low"],
                        "ci_high": r["ci_high"],
                        "unit": "",
                        "n": r["n_clips"],
                        "note": r["note"],
                    }
                )
        if qp is not None:
            for r in qp.to_dict("records"):
                for w in ("linear", "quadratic"):
                    rows.append(
                        {
                            "what": what,
                            "coefficient": f"weighted_kappa_{w} ({r['rater_a']}-{r['rater_b']})",
                            "value": r[f"kappa_{w}"],
                            "ci_low": r[f"ci_low_{w}"],
                            "ci_high": r[f"ci_high_{w}"],
                            "unit": "",
                            "n": r["n_clips"],
                            "note": r["note"],
                        }
                    )
        return rows

    def worst_frames(self, k: int = 20) -> pd.DataFrame:
        wf = self.stats.get("worst_frames")
        if wf is None:
            return pd.DataFrame(columns=["clip_id", "frame", "dice", "pair"])
        return wf.sort_values(["dice", "area_diff"], ascending=[True, False]).head(k).reset_index(drop=True)

    #: what the summary's ``n`` counts, row by row
    N_NOTE = (
        "n: the number of things each row is computed over: clips for plane (clip), frames for "
        "plane (frame), rater-pair frames with both masks drawn for boundary rows, and frames "
        "measured by every rater for area ICCs. Confidence intervals (95% CI low, high) are "
        "percentile bootstraps over participants."
    )

    #: what differs from :attr:`N_NOTE` for the quality-grade and ICC rows
    N_NOTE_MORE = (
        "Quality-grade rows: n counts clips graded by both raters (by two or more for alpha). "
        "ICC intervals are not bootstraps: exact F (ICC 1 and 3) and generalized (ICC 2) "
        "intervals, see Methods."
    )

    def section(self, report_href: str | None = None) -> ReportSection:
        """A short section for the demo report, linking the full report (``report_href``: the
        link relative to the page the section goes into; default the report's own path)."""
        head = self.summary()
        head = head[head["coefficient"].isin(["gwet_ac1", "krippendorff_alpha", "dice", "hd95", "ICC(2,1)"])]
        html = (
            f"<p>{len(self.tables.raters)} raters ({escape(', '.join(self.tables.raters))}), "
            f"{len(self.tables.clips)} clips, {self.tables.clips['participant'].nunique()} participants. "
            f"Full report: <a href='{escape(report_href or self.report_path)}'><code>"
            f"{escape(report_href or self.report_path)}</code></a>.</p>"
            + table_html(head)
            + f"<p class='note'>{escape(self.N_NOTE + ' ' + self.N_NOTE_MORE)}</p>"
            + "".join(f"<p class='note'>{escape(n)}</p>" for n in self.notes)
            + self.figures_html.get("bland_altman", "")
            + self.figures_html.get("dice", "")
        )
        return ReportSection("Inter-rater agreement", html)


def _write_csvs(out_dir: Path, tables: AgreementTables, stats: dict) -> dict[str, Path]:
    frames = {
        "frame_pairs": tables.frame_pairs,
        "frame_areas": tables.frame_areas,
        "clips": tables.clips,
        "frame_labels": tables.frame_labels,
        "clip_labels": tables.clip_labels,
    }
    frames.update({k: v for k, v in stats.items() if isinstance(v, pd.DataFrame)})
    files = {}
    for name, df in frames.items():
        path = out_dir / f"{name}.csv"
        atomic_write_text(path, df.to_csv(index=False, float_format="%.6g"))
        files[name] = path
    return files


def _sections(result: AgreementResult) -> list[ReportSection]:
    t, s, f = result.tables, result.stats, result.figures_html
    notes = "".join(f"<p class='note'>{escape(n)}</p>" for n in result.notes)
    intro = (
        f"<p>{len(t.raters)} raters: {escape(', '.join(t.raters))}. {len(t.clips)} clips from "
        f"{t.clips['participant'].nunique()} participants; {len(t.frame_pairs)} rater-pair frames. "
        f"Surface Dice tolerance {t.tolerance['mm']} mm ({t.tolerance['px']} px on uncalibrated clips).</p>"
    )
    sections = [
        ReportSection(
            "Summary",
            intro
            + notes
            + table_html(result.summary())
            + f"<p class='note'>{escape(result.N_NOTE + ' ' + result.N_NOTE_MORE)}</p>",
        ),
        ReportSection("Methods", METHODS.format(n_boot=result.n_boot, seed=result.seed)),
    ]
    plane_html = (
        table_html(s["plane_overall"])
        + "<h3>Rater pairs</h3>"
        + table_html(s["plane_pairwise"])
        + "<h3>Per plane</h3>"
        + table_html(s["plane_per_label"])
        + f.get("plane_kappa", "")
        + "<h3>Confusion matrices</h3>"
        + _confusion_html(s["plane_confusion"])
    )
    sections.append(ReportSection("Plane labels", plane_html))
    if "quality_overall" in s:
        sections.append(
            ReportSection(
                "Image-quality grade (ordinal)",
                "<p>Clip quality ok &lt; poor &lt; unusable: a disagreement between ok and unusable weighs "
                "more than one between neighbouring grades (linear weights 1 and 2, quadratic 1 and 4).</p>"
                + table_html(s["quality_overall"])
                + "<h3>Rater pairs</h3>"
                + table_html(s["quality_pairwise"]),
            )
        )
    if "boundary_by_pair" in s:
        bp = s["boundary_by_pair"]
        sections.append(
            ReportSection(
                "Nerve boundaries",
                "<p>Distances in the <i>unit</i> column (mm, or px for uncalibrated clips). <i>n_one_empty</i>: "
                "frames where one rater drew no nerve; distances are undefined there.</p>"
                + table_html(bp)
                + f.get("dice", ""),
            )
        )
        icc, ba = s["area_icc"], s["bland_altman"]
        sections.append(
            ReportSection(
                "Nerve cross-sectional area",
                table_html(
                    icc[
                        [
                            c
                            for c in (
                                "form",
                                "value",
                                "ci_low",
                                "ci_high",
                                "ci_method",
                                "ci_low_F",
                                "ci_high_F",
                                "ci_low_boot_participants",
                                "ci_high_boot_participants",
                                "n_subjects",
                                "n_participants",
                                "n_raters",
                                "unit",
                            )
                            if c in icc
                        ]
                    ]
                )
                + "<p class='note'>ci_low/ci_high: exact F (ICC 1, 3) or generalized (ICC 2) interval; _F: "
                "McGraw &amp; Wong F interval; _boot_participants: participant bootstrap with raters held "
                "fixed. See Methods.</p>" + "<h3>Bland-Altman</h3>" + table_html(ba) + f.get("bland_altman", ""),
            )
        )
        sections.append(
            ReportSection(
                "Frames to adjudicate",
                "<p>Lowest Dice between any two raters (outlines: one colour per rater).</p>"
                + f.get("worst", "")
                + table_html(result.worst_frames(30)),
            )
        )
    return sections


def _confusion_html(confusion: pd.DataFrame) -> str:
    """One small table per level and rater pair: rows rater a's label, columns rater b's."""
    parts = []
    for (level, ra, rb), g in confusion.groupby(["level", "rater_a", "rater_b"], sort=False):
        table = g.pivot(index="label_a", columns="label_b", values="count")
        used = [lab for lab in table.index if table.loc[lab].sum() > 0 or table[lab].sum() > 0]
        table = table.loc[used, used]
        shown = pd.DataFrame({f"{ra} \\ {rb}": used, **{str(c): table[c].to_numpy() for c in used}})
        parts.append(
            f"<div style='display:inline-block;margin-right:1.5em'><p>per {escape(level)}: "
            f"{escape(ra)} (rows) vs {escape(rb)} (columns)</p>{table_html(shown, '{:.0f}')}</div>"
        )
    return "".join(parts)


def agreement_report(
    project,
    out_dir,
    *,
    seed: int = 0,
    n_boot: int = 200,
    tolerance_mm: float = 0.5,
    n_thumbnails: int = 6,
    workers: int | None = None,
) -> ProgressGen[AgreementResult]:
    """Measure, summarise and write everything; returns an :class:`AgreementResult`.

    ``workers``: processes measuring clips (default all cores; the result is the same for any)."""
    if isinstance(project, (str, Path)):
        from napari_ultramn.project import Project

        project = Project.open(project)
    out_dir = Path(out_dir)
    with staged_folder(out_dir) as stage:  # first: a folder we cannot write to fails before the work
        gen = build_tables(project, tolerance_mm=tolerance_mm, workers=workers)
        tables = yield from _scaled(gen, 0, 60)
        stats = yield from _scaled(compute_statistics(tables, n_boot=n_boot, seed=seed), 60, 30)
        result = AgreementResult(out_dir, tables, stats, n_boot=n_boot, seed=seed)
        yield Progress(90, 100, "plots")
        result.figures_html = figures.all_figures(result, project, n_thumbnails)
        written = _write_csvs(stage, tables, stats)
        written["summary"] = stage / "summary.csv"
        atomic_write_text(written["summary"], result.summary().to_csv(index=False, float_format="%.6g"))
        written["report"] = write_report(
            stage / result.report_path.name, f"Inter-rater agreement: {project.name}", _sections(result)
        )
    result.files = {name: out_dir / path.name for name, path in written.items()}
    yield Progress(100, 100, f"wrote {result.report_path}")
    return result


@contextlib.contextmanager
def staged_folder(out_dir: Path) -> Iterator[Path]:
    """A hidden folder to write a set of outputs into; they appear in ``out_dir`` only when the
    block ends cleanly, so a full disk or a crash never leaves half a set of tables behind.

    A new ``out_dir`` is the staging folder renamed; into an existing one the files are moved one
    by one (renames within a folder, which do not fail for want of space). Write errors name the
    file in ``out_dir``, not the hidden one.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(out_dir, "is a file, not a folder for the report")
    fresh = not out_dir.exists()
    tag = secrets.token_hex(4)
    stage = out_dir.parent / f".{out_dir.name}.writing-{tag}" if fresh else out_dir / f".writing-{tag}"
    try:
        stage.parent.mkdir(parents=True, exist_ok=True)
        stage.mkdir()
    except FileExistsError:  # a file where a folder of the path should be
        raise OutputError(out_dir, "cannot write: a part of the path is a file, not a folder") from None
    except OSError as exc:
        raise output_error(exc, out_dir) from None
    try:
        try:
            yield stage
        except OutputError as exc:
            if exc.path is None or stage not in exc.path.parents:
                raise
            raise OutputError(out_dir / exc.path.relative_to(stage), exc.problem, exc.errno) from None
        if fresh:
            os.replace(stage, out_dir)
        else:
            for path in sorted(stage.iterdir()):
                os.replace(path, out_dir / path.name)
            stage.rmdir()
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _scaled(gen, start: int, span: int):
    """Re-yield a sub-generator's progress inside [start, start + span] of 100."""

    def restate(p: Progress) -> Progress:
        frac = p.done / p.total if p.total else 0.0
        return Progress(start + int(np.floor(span * frac)), 100, p.message, p.metrics)

    return (yield from relay(gen, restate))
