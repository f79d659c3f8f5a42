"""Dataset dock widget: build a participant-split dataset from a project, then look at its clips.

Only translates between the viewer and the core (:mod:`dataset_tools.build`,
:mod:`dataset_tools.dataset_summary`): the build runs as a progress generator in a worker
(``workers.start``; synchronous under ``ULTRAMN_SYNC_WORKERS=1``), the counts table is
the manifest's, and a dataset clip opens as an Image layer with its masks as a Labels layer.
After a build it says why clips were left out (reason -> count, the clip list on demand) and
warns, in words, when a split the ratios asked for came out empty (e.g. 1 / 0 / 0 clips).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import QSize
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from ..vocabulary import SPLITS
from .layout import row
from .tables import fill_table
from .workers import start

if TYPE_CHECKING:
    import napari

COUNT_COLUMNS = ("split", "plane", "side", "participants", "clips", "frames", "annotated_frames")
EXCLUDED_COLUMNS = ("clip_id", "participant", "reason")
#: What an empty split takes away, for the warning.
_LOST = {
    "train": "nothing to train on",
    "validation": "no validation (model choice, early stopping)",
    "test": "no held-out test",
}


def exclusion_summary(excluded: list[dict]) -> list[tuple[str, int]]:
    """Why clips were excluded, most common first: ``[(reason, n_clips), ...]``.

    Reasons that differ only in their details ("no consensus: 1 rater(s), need 2" and "... 0
    rater(s) ...") are counted under the words before the colon; a reason every clip of its kind
    shares is given whole.
    """
    kinds: dict[str, Counter] = {}
    for e in excluded:
        reason = str(e.get("reason", "unknown"))
        kinds.setdefault(reason.split(":", 1)[0].strip(), Counter())[reason] += 1
    rows = [(next(iter(c)) if len(c) == 1 else kind, sum(c.values())) for kind, c in kinds.items()]
    return sorted(rows, key=lambda r: (-r[1], r[0]))


def split_warning(manifest: dict) -> str:
    """A sentence when a split the ratios asked for came out empty ('' when none did)."""
    files = {f["split"]: f for f in manifest["files"]}
    ratios = manifest["split"]["ratios"]  # {split: ratio}, as the split file has them
    empty = [s for s in SPLITS if ratios.get(s, 0) > 0 and files.get(s, {}).get("clips", 0) == 0]
    if not empty:
        return ""
    used = sum(f.get("participants", 0) for f in files.values())
    asked = " / ".join(f"{ratios.get(s, 0):g}" for s in SPLITS)
    return (
        f"Warning: {' and '.join(empty)} {'is' if len(empty) == 1 else 'are'} empty although the "
        f"ratios ({asked}) ask for {'it' if len(empty) == 1 else 'them'}: only {used} "
        f"participant{'' if used == 1 else 's'} could be used, and a participant's clips stay in one "
        f"split. This dataset gives {'; '.join(_LOST[s] for s in empty)}. Annotate more "
        "participants (see why clips were excluded) or change the label source."
    )


class _Scroll(QScrollArea):
    """Scrolls the widget's column up and down; as wide as the column wants to be."""

    def __init__(self, content: QWidget):
        super().__init__()
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setWidget(content)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        width = self.widget().sizeHint().width() + self.verticalScrollBar().sizeHint().width()
        return QSize(width, 480)


class DatasetWidget(QWidget):
    """Build options, a progress bar and the counts table; then open a clip with its masks."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = viewer
        self.worker = None
        self._gen = None
        self.manifest: dict | None = None

        # -- build -----------------------------------------------------------------------
        self.project_edit = QLineEdit()
        self.project_edit.setPlaceholderText("annotation project folder")
        self.project_button = QPushButton("Browse...")
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("new dataset folder")
        self.out_button = QPushButton("Browse...")
        self.labels_combo = QComboBox()
        self.labels_combo.addItems(["consensus: majority", "consensus: staple", "one rater"])
        self.rater_combo = QComboBox()
        self.rater_combo.setEditable(True)
        self.resize_check = QCheckBox("resize to")
        self.height_spin, self.width_spin = QSpinBox(), QSpinBox()
        for spin in (self.height_spin, self.width_spin):
            spin.setRange(8, 2048)
            spin.setValue(256)
        self.spacing_spin = QDoubleSpinBox()
        self.spacing_spin.setRange(0.0, 5.0)
        self.spacing_spin.setDecimals(3)
        self.spacing_spin.setSingleStep(0.01)
        self.spacing_spin.setSpecialValueText("native")
        self.ratio_spins = [QDoubleSpinBox() for _ in SPLITS]
        for spin, value in zip(self.ratio_spins, (0.7, 0.15, 0.15)):
            spin.setRange(0.0, 1.0)
            spin.setSingleStep(0.05)
            spin.setValue(value)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.min_frames_spin = QSpinBox()
        self.min_frames_spin.setRange(1, 10000)
        self.min_frames_spin.setValue(16)
        self.overwrite_check = QCheckBox("replace an existing dataset")
        self.build_button = QPushButton("Build dataset")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.warning_label = QLabel("")  # a degenerate split, in words
        self.warning_label.setWordWrap(True)
        self.warning_label.setStyleSheet("color: #ff6b6b")
        self.warning_label.setVisible(False)
        self.excluded_label = QLabel("")  # reason -> count
        self.excluded_label.setWordWrap(True)
        self.excluded_button = QPushButton("Show excluded clips")
        self.excluded_button.setCheckable(True)
        self.excluded_button.setVisible(False)
        self.excluded_table = QTableWidget(0, len(EXCLUDED_COLUMNS))
        self.excluded_table.setHorizontalHeaderLabels(list(EXCLUDED_COLUMNS))
        self.excluded_table.setVisible(False)
        self.counts_table = QTableWidget(0, len(COUNT_COLUMNS))
        self.counts_table.setHorizontalHeaderLabels(list(COUNT_COLUMNS))

        # -- view ------------------------------------------------------------------------
        self.dataset_edit = QLineEdit()
        self.dataset_edit.setPlaceholderText("dataset folder")
        self.dataset_button = QPushButton("Browse...")
        self.clip_combo = QComboBox()
        self.open_button = QPushButton("Open clip")

        self._layout()
        self.project_button.clicked.connect(lambda: self._browse(self.project_edit))
        self.out_button.clicked.connect(lambda: self._browse(self.out_edit))
        self.dataset_button.clicked.connect(lambda: self._browse(self.dataset_edit))
        self.project_edit.editingFinished.connect(self.refresh_raters)
        self.dataset_edit.editingFinished.connect(self.refresh_clips)
        self.labels_combo.currentIndexChanged.connect(self._labels_changed)
        self.build_button.clicked.connect(self.build)
        self.cancel_button.clicked.connect(self.cancel)
        self.open_button.clicked.connect(self.open_selected_clip)
        self.excluded_button.toggled.connect(self._show_excluded_clips)
        self._labels_changed()

    def _layout(self) -> None:
        build = QGroupBox("Build")
        form = QFormLayout(build)
        form.addRow("Project", row(self.project_edit, self.project_button))
        form.addRow("Output", row(self.out_edit, self.out_button))
        form.addRow("Labels", self.labels_combo)
        form.addRow("Rater", self.rater_combo)
        form.addRow("Size (H x W)", row(self.resize_check, self.height_spin, QLabel("x"), self.width_spin))
        form.addRow("Spacing (mm/px)", self.spacing_spin)
        form.addRow("Train / val / test", row(*self.ratio_spins))
        form.addRow("Split seed", self.seed_spin)
        form.addRow("Min. frames", self.min_frames_spin)
        form.addRow(self.overwrite_check)
        form.addRow(row(self.build_button, self.cancel_button))
        form.addRow(self.progress)
        form.addRow(self.status)
        form.addRow(self.warning_label)
        form.addRow(self.excluded_label)
        form.addRow(self.excluded_button)
        form.addRow(self.excluded_table)
        view = QGroupBox("Look at a dataset")
        vform = QFormLayout(view)
        vform.addRow("Dataset", row(self.dataset_edit, self.dataset_button))
        vform.addRow("Clip", self.clip_combo)
        vform.addRow(self.open_button)
        content = QWidget()
        column = QVBoxLayout(content)
        column.setContentsMargins(0, 0, 0, 0)
        for part in (build, self.counts_table, view):
            column.addWidget(part)
        column.addStretch(1)
        for table in (self.counts_table, self.excluded_table):
            table.setMinimumHeight(120)  # a few rows in sight; the dock scrolls instead of squeezing
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        # On a 768 px screen the messages, the warning and the tables do not all fit: scroll rather
        # than squeeze a wrapped message to fewer lines than it needs (its end was cut off).
        outer.addWidget(_Scroll(content))

    def _browse(self, edit: QLineEdit) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder", edit.text() or str(Path.home()))
        if folder:
            edit.setText(folder)
            edit.editingFinished.emit()

    def _labels_changed(self) -> None:
        self.rater_combo.setEnabled(self.labels_combo.currentIndex() == 2)

    def refresh_raters(self) -> None:
        """Offer the raters found in the project's annotations."""
        from napari_ultramn.annotation import AnnotationStore

        store = AnnotationStore(self.project_edit.text())
        raters = sorted({r for c in store.clip_ids() for r in store.raters(c)})
        current = self.rater_combo.currentText()
        self.rater_combo.clear()
        self.rater_combo.addItems(raters)
        if current:
            self.rater_combo.setCurrentText(current)

    # -- building --------------------------------------------------------------------------
    def build_options(self) -> dict:
        """The keyword arguments for :func:`dataset_tools.build.build_dataset`."""
        index = self.labels_combo.currentIndex()
        return {
            "consensus": ("majority", "staple", None)[index],
            "rater": self.rater_combo.currentText().strip() or None if index == 2 else None,
            "size": (self.height_spin.value(), self.width_spin.value()) if self.resize_check.isChecked() else None,
            "spacing_mm": self.spacing_spin.value() or None,
            "ratios": tuple(s.value() for s in self.ratio_spins),
            "seed": self.seed_spin.value(),
            "min_frames": self.min_frames_spin.value(),
            "overwrite": self.overwrite_check.isChecked(),
        }

    def build(self) -> None:
        from dataset_tools.build import build_dataset

        project, out = self.project_edit.text().strip(), self.out_edit.text().strip()
        if not project or not out:
            self.status.setText("Choose a project and an output folder first.")
            return
        opts = self.build_options()
        if self.labels_combo.currentIndex() == 2 and not opts["rater"]:
            self.status.setText("Choose the rater whose labels to use.")
            return
        try:
            gen = build_dataset(project, out, **opts)
        except ValueError as exc:
            self.status.setText(f"Cannot build: {exc}")
            return
        self.build_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText("Building...")
        self.show_exclusions(None)  # the last build's reasons no longer apply
        self._gen = gen
        self.worker = start(gen, self._on_progress, self._on_built, self._on_error, self._on_finished)

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.quit()
            self.status.setText("Cancelling (nothing is kept)...")

    def _on_progress(self, p) -> None:
        self.progress.setMaximum(max(p.total, 1))
        self.progress.setValue(p.done)
        self.progress.setFormat(f"%p%  {p.message}")

    def _on_built(self, manifest: dict) -> None:
        from dataset_tools.dataset_summary import manifest_summary

        self.manifest = manifest
        s = manifest_summary(manifest)
        self.status.setText(
            f"Built: {s.get('train_clips', 0)} / {s.get('validation_clips', 0)} / "
            f"{s.get('test_clips', 0)} clips (train / validation / test), {s['frames']} frames, "
            f"labels {s['labels']}; {s['excluded']} clip(s) excluded."
        )
        self.show_counts(manifest["counts"])
        self.show_exclusions(manifest)
        self.dataset_edit.setText(self.out_edit.text())
        self.refresh_clips()

    def _on_error(self, exc: Exception) -> None:
        self.status.setText(f"Build failed: {exc}")

    def _on_finished(self) -> None:
        if self._gen is not None:  # after a cancel: GeneratorExit makes the builder delete its temp
            self._gen.close()
            self._gen = None
        self.build_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.worker = None

    def show_counts(self, rows: list[dict]) -> None:
        fill_table(self.counts_table, rows, COUNT_COLUMNS)

    def show_exclusions(self, manifest: dict | None) -> None:
        """Why clips were left out and whether a split came out empty (``None``: clear)."""
        excluded = (manifest or {}).get("excluded", [])
        warning = split_warning(manifest) if manifest else ""
        self.warning_label.setText(warning)
        self.warning_label.setVisible(bool(warning))
        summary = exclusion_summary(excluded)
        self.excluded_label.setText(
            (
                f"{len(excluded)} clip{'' if len(excluded) == 1 else 's'} excluded: "
                + "; ".join(f"{n} × {reason}" for reason, n in summary)
            )
            if summary
            else ""
        )
        fill_table(self.excluded_table, excluded, EXCLUDED_COLUMNS)
        self.excluded_table.resizeColumnsToContents()
        self.excluded_button.setVisible(bool(excluded))
        self.excluded_button.setChecked(False)
        self._show_excluded_clips(False)

    def _show_excluded_clips(self, shown: bool) -> None:
        self.excluded_table.setVisible(shown and self.excluded_table.rowCount() > 0)
        self.excluded_button.setText("Hide excluded clips" if shown else "Show excluded clips")

    # -- viewing ---------------------------------------------------------------------------
    def refresh_clips(self) -> None:
        """List ``split/clip_id`` of the dataset in the clip chooser."""
        from napari_ultramn.io.h5 import load_h5py

        h5py = load_h5py()

        self.clip_combo.clear()
        folder = Path(self.dataset_edit.text())
        for s in SPLITS:
            path = folder / f"{s}.h5"
            if path.is_file():
                with h5py.File(path, "r") as fh:
                    self.clip_combo.addItems([f"{s}/{c}" for c in fh.get("clips", {})])

    def open_selected_clip(self) -> None:
        text = self.clip_combo.currentText()
        if "/" not in text:
            self.status.setText("Choose a dataset clip first.")
            return
        split, clip_id = text.split("/", 1)
        self.open_clip(Path(self.dataset_edit.text()) / f"{split}.h5", clip_id)

    def open_clip(self, path: Path, clip_id: str):
        """Add the clip's frames (Image) and nerve masks (Labels), scaled to mm when calibrated."""
        from napari_ultramn.io.h5 import load_h5py

        h5py = load_h5py()

        with h5py.File(path, "r") as fh:
            g = fh["clips"][clip_id]
            frames, masks = g["frames"][()], g["masks"][()]
            planes = g["plane_labels"][()]
            vocabulary = json.loads(fh.attrs.get("vocabulary", "[]"))
            spacing = g.attrs.get("spacing_mm")
        scale = (1.0, *map(float, spacing)) if spacing is not None else (1.0, 1.0, 1.0)
        meta = {
            "clip_id": clip_id,
            "dataset_file": str(path),
            "frame_planes": [vocabulary[c] if 0 <= c < len(vocabulary) else None for c in planes],
        }
        image = self.viewer.add_image(frames, name=f"{clip_id} frames", scale=scale, metadata=meta)
        labels = self.viewer.add_labels(masks.astype(np.uint8), name=f"{clip_id} nerve", scale=scale, metadata=meta)
        return image, labels
