"""Agreement dock widget: compute a project's inter-rater agreement, jump to the worst frames.

Only translates between the viewer and :func:`dataset_tools.agreement.project_report.agreement_report`:
the report runs in a worker (progress bar, Cancel), the summary and the worst-agreeing frames fill two
tables, and opening a worst frame shows that clip at that frame with one Labels layer per rater.
Keys: Enter or double-click on a worst frame opens it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from .tables import fill_table
from .workers import start

if TYPE_CHECKING:
    import napari


class AgreementWidget(QWidget):
    """Dock widget; sub-widgets are attributes so tests can drive them."""

    def __init__(self, viewer: napari.viewer.Viewer, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        self.result = None
        self.project = None
        self.worker = None
        self.error: str | None = None

        self.project_edit = QLineEdit()
        self.project_edit.setPlaceholderText("annotation project folder")
        self.browse_button = QPushButton("Browse…")
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("output folder (default: PROJECT/agreement)")
        self.bootstrap_spin = QSpinBox()
        self.bootstrap_spin.setRange(0, 10000)
        self.bootstrap_spin.setValue(200)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.compute_button = QPushButton("Compute agreement")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.status = QLabel("Choose a project with at least two raters.")
        self.status.setWordWrap(True)
        self.summary_table = QTableWidget()
        self.worst_table = QTableWidget()
        self.worst_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.worst_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.open_button = QPushButton("Open selected frame")

        row = QHBoxLayout()
        row.addWidget(self.project_edit)
        row.addWidget(self.browse_button)
        form = QFormLayout()
        form.addRow("Project", row)
        form.addRow("Output", self.out_edit)
        form.addRow("Bootstrap replicates", self.bootstrap_spin)
        form.addRow("Seed", self.seed_spin)
        buttons = QHBoxLayout()
        buttons.addWidget(self.compute_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(QLabel("Summary (95% bootstrap CI over participants)"))
        layout.addWidget(self.summary_table)
        layout.addWidget(QLabel("Worst-agreeing frames (Enter / double-click opens)"))
        layout.addWidget(self.worst_table)
        layout.addWidget(self.open_button)

        self.browse_button.clicked.connect(self._browse)
        self.compute_button.clicked.connect(self.compute)
        self.cancel_button.clicked.connect(self.cancel)
        self.open_button.clicked.connect(self.open_selected)
        self.worst_table.cellDoubleClicked.connect(lambda r, _c: self.open_worst(r))
        self.worst_table.cellActivated.connect(lambda r, _c: self.open_worst(r))

    # -- running -----------------------------------------------------------------------------
    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Annotation project")
        if folder:
            self.project_edit.setText(folder)

    def compute(self) -> None:
        from dataset_tools.agreement.project_report import agreement_report
        from napari_ultramn.project import Project

        self.error = None
        try:
            self.project = Project.open(self.project_edit.text().strip())
        except (OSError, ValueError) as exc:
            self._on_error(exc)
            return
        out = self.out_edit.text().strip() or str(Path(self.project.root) / "agreement")
        gen = agreement_report(self.project, out, seed=self.seed_spin.value(), n_boot=self.bootstrap_spin.value())
        self.compute_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText("Computing…")
        self.worker = start(gen, self._on_progress, self._on_result, self._on_error, self._on_finish)

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.quit()
            self.status.setText("Cancelled.")

    def _on_progress(self, p) -> None:
        self.progress.setValue(int(100 * p.done / p.total) if p.total else 0)
        self.status.setText(p.message)

    def _on_result(self, result) -> None:
        self.result = result
        fill_table(self.summary_table, result.summary())
        worst = result.worst_frames(50)[["clip_id", "frame", "dice", "pair", "area_diff", "area_unit"]].copy()
        worst["frame"] = worst["frame"].astype(int) + 1  # frames on screen are 1-based (files: 0-based)
        fill_table(self.worst_table, worst)
        notes = " ".join(result.notes)
        self.status.setText(f"Report: {result.report_path}" + (f"\n{notes}" if notes else ""))

    def _on_error(self, exc) -> None:
        self.error = str(exc)
        self.status.setText(f"Error: {exc}")

    def _on_finish(self) -> None:
        self.compute_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.worker = None

    # -- review ------------------------------------------------------------------------------
    def open_selected(self) -> None:
        rows = self.worst_table.selectionModel().selectedRows() if self.worst_table.selectionModel() else []
        self.open_worst(rows[0].row() if rows else 0)

    def open_worst(self, row: int) -> None:
        """Show worst frame ``row``: the clip, every rater's mask as a Labels layer, at that frame."""
        if self.result is None or row < 0:
            return
        worst = self.result.worst_frames(50)
        if row >= len(worst):
            return
        clip_id, frame = str(worst.loc[row, "clip_id"]), int(worst.loc[row, "frame"])
        self.open_clip(clip_id, frame)

    def open_clip(self, clip_id: str, frame: int) -> None:
        from dataset_tools.agreement.figures import RATER_COLOURS
        from dataset_tools.agreement.tables import load_clip

        clip = self.project.open_clip(clip_id)
        scale = tuple(clip.spacing_mm) if clip.spacing_mm else (1.0, 1.0)
        for layer in [lay for lay in self.viewer.layers if lay.metadata.get("ultramn_agreement")]:
            self.viewer.layers.remove(layer)
        meta = {"ultramn_agreement": True, "clip_id": clip_id}
        self.viewer.add_image(clip.frames, name=clip_id, scale=(1.0, *scale), metadata=dict(meta))
        anns = load_clip(self.project, self.project.clip_record(clip_id), self.project.annotations.raters(clip_id))
        for i, (rater, ann) in enumerate(sorted(anns.items())):
            masks, _ = ann.mask_stack()
            colour = np.array([*RATER_COLOURS[i % len(RATER_COLOURS)], 255]) / 255
            layer = self.viewer.add_labels(
                masks.astype(np.uint8),
                name=f"{clip_id} {rater}",
                scale=(1.0, *scale),
                opacity=0.6,
                metadata={**meta, "rater": rater},
            )
            layer.contour = 1
            try:
                from napari.utils.colormaps import DirectLabelColormap

                layer.colormap = DirectLabelColormap(color_dict={None: (0, 0, 0, 0), 0: (0, 0, 0, 0), 1: colour})
            except (ImportError, TypeError, ValueError):  # older napari: keep the default colours
                pass
        self.viewer.dims.set_current_step(0, frame)
        self.status.setText(f"{clip_id}, frame {frame + 1} / {clip.n_frames}: {len(anns)} raters shown as outlines")
