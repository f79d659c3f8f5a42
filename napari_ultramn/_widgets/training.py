"""Training dock widget: train in a separate process, follow it live, list runs, pre-annotate.

Training runs as ``python -m napari_ultramn train ...`` in its own process and session, so the
viewer never freezes and a viewer crash does not stop it; stdout/stderr go to ``RUN_DIR/train.log``.
The widget only follows ``RUN_DIR/progress.jsonl`` with a QTimer (progress bar, loss and Dice
curves), so it can also follow a run started from a shell. Cancel terminates the process; the
last finished epoch's ``last.pt`` stays, and Resume continues from it.

Pre-annotation of the open clip runs :func:`napari_ultramn.model.preannotate.preannotate_clip` in
a worker and adds a Labels layer ``<image> proposal`` (metadata: provenance 'model', per-frame
confidence, planes) that the annotator can accept or edit.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
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

from ..vocabulary import MODEL_NAMES
from .annotator_sections import scrolling
from .layout import row
from .tables import cell_text, fill_table
from .training_loop import LabelLoopPanel
from .workers import last_log_line, start, start_logged_process, stop_process

if TYPE_CHECKING:
    import napari

RUN_COLUMNS = ("run", "model", "epochs", "state", "val_dice", "val_plane_acc", "test_dice", "test_plane_acc")


class TrainingWidget(QWidget):
    """Start / cancel / resume a training process, live curves, past runs, pre-annotation."""

    def __init__(self, viewer: napari.viewer.Viewer, poll_ms: int = 1000):
        super().__init__()
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        from ..model.runlog import ProgressFollower

        self.viewer = viewer
        self.process: subprocess.Popen | None = None
        self.follower: ProgressFollower | None = None
        self.worker = None
        self.proposal = None

        # -- training ----------------------------------------------------------------------
        self.dataset_edit = QLineEdit()
        self.dataset_edit.setPlaceholderText("dataset folder (ultramn build-dataset)")
        self.dataset_button = QPushButton("Browse...")
        self.run_edit = QLineEdit()
        self.run_edit.setPlaceholderText("run folder (checkpoints, progress)")
        self.run_button = QPushButton("Browse...")
        self.model_combo = QComboBox()
        self.model_combo.addItems(list(MODEL_NAMES))
        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(1, 10_000)
        self.epochs_spin.setValue(20)
        self.window_spin = QSpinBox()
        self.window_spin.setRange(1, 256)
        self.window_spin.setValue(16)
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 512)
        self.batch_spin.setValue(4)
        self.minutes_spin = QDoubleSpinBox()
        self.minutes_spin.setRange(0.0, 100_000.0)
        self.minutes_spin.setSpecialValueText("no limit")
        self.device_combo = QComboBox()
        self.device_combo.addItems(["auto", "cpu", "cuda"])
        self.start_button = QPushButton("Start training")
        self.cancel_button = QPushButton("Cancel")
        self.resume_button = QPushButton("Resume")
        self.progress_bar = QProgressBar()
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self.figure = Figure(figsize=(4, 3.2))
        self.loss_ax, self.metric_ax = self.figure.subplots(2, 1, sharex=False)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(240)

        form = QFormLayout()
        form.addRow("Dataset", row(self.dataset_edit, self.dataset_button))
        form.addRow("Run folder", row(self.run_edit, self.run_button))
        form.addRow("Model", self.model_combo)
        form.addRow("Epochs", self.epochs_spin)
        form.addRow("Window (frames)", self.window_spin)
        form.addRow("Batch size", self.batch_spin)
        form.addRow("Max minutes", self.minutes_spin)
        form.addRow("Device", self.device_combo)
        buttons = QHBoxLayout()
        for b in (self.start_button, self.cancel_button, self.resume_button):
            buttons.addWidget(b)
        train_box = QGroupBox("Train (separate process)")
        tl = QVBoxLayout(train_box)
        tl.addLayout(form)
        tl.addLayout(buttons)
        tl.addWidget(self.progress_bar)
        tl.addWidget(self.status_label)
        tl.addWidget(self.canvas)

        # -- runs --------------------------------------------------------------------------
        self.runs_edit = QLineEdit()
        self.runs_edit.setPlaceholderText("folder holding run folders")
        self.refresh_button = QPushButton("Refresh")
        self.runs_table = QTableWidget(0, len(RUN_COLUMNS))
        self.runs_table.setHorizontalHeaderLabels(list(RUN_COLUMNS))
        self.runs_table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.runs_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        runs_box = QGroupBox("Past runs (test metrics from `ultramn evaluate`)")
        rl = QVBoxLayout(runs_box)
        rl.addWidget(row(self.runs_edit, self.refresh_button))
        rl.addWidget(self.runs_table)
        self.run_paths: list[str] = []

        # -- pre-annotation ------------------------------------------------------------------
        self.preannotate_run_edit = QLineEdit()
        self.preannotate_run_edit.setPlaceholderText("run folder or checkpoint (select a past run)")
        self.preannotate_button = QPushButton("Pre-annotate open clip")
        self.preannotate_bar = QProgressBar()
        pre_box = QGroupBox("Pre-annotate")
        pl = QVBoxLayout(pre_box)
        pl.addWidget(self.preannotate_run_edit)
        pl.addWidget(self.preannotate_button)
        pl.addWidget(self.preannotate_bar)

        self.loop_panel = LabelLoopPanel(self)  # train on what is labelled, pre-annotate the rest

        content = QWidget()
        inner = QVBoxLayout(content)
        for box in (train_box, self.loop_panel, runs_box, pre_box):
            inner.addWidget(box)
        inner.addStretch(1)
        layout = QVBoxLayout(self)  # scrolls: the dock must not push the window past a laptop screen
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(scrolling(content))

        self.dataset_button.clicked.connect(lambda: self._browse(self.dataset_edit))
        self.run_button.clicked.connect(lambda: self._browse(self.run_edit))
        self.start_button.clicked.connect(lambda: self.start_training(resume=False))
        self.resume_button.clicked.connect(lambda: self.start_training(resume=True))
        self.cancel_button.clicked.connect(self.cancel_training)
        self.refresh_button.clicked.connect(self.refresh_runs)
        self.runs_table.itemSelectionChanged.connect(self._run_selected)
        self.preannotate_button.clicked.connect(self.preannotate_open_clip)
        self.timer = QTimer(self)
        self.timer.setInterval(poll_ms)
        self.timer.timeout.connect(self.poll)
        self._set_running(False)

    # -- training process ------------------------------------------------------------------
    def _browse(self, edit: QLineEdit) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a folder", edit.text())
        if path:
            edit.setText(path)

    def command(self, resume: bool) -> list[str]:
        """The command line the Start/Resume buttons run (tests replace it)."""
        dataset = self.dataset_edit.text()
        if resume and not dataset:  # resuming a listed run: its own dataset
            import json

            try:
                dataset = json.loads((Path(self.run_edit.text()) / "run.json").read_text())["args"]["dataset_dir"]
            except (OSError, ValueError, KeyError):
                dataset = ""
        cmd = [
            sys.executable,
            "-m",
            "napari_ultramn",
            "train",
            dataset,
            "--out",
            self.run_edit.text(),
            "--model",
            self.model_combo.currentText(),
            "--epochs",
            str(self.epochs_spin.value()),
            "--window",
            str(self.window_spin.value()),
            "--batch-size",
            str(self.batch_spin.value()),
            "--device",
            self.device_combo.currentText(),
            "-q",
        ]
        if self.minutes_spin.value() > 0:
            cmd += ["--max-minutes", str(self.minutes_spin.value())]
        return cmd + (["--resume"] if resume else [])

    def start_training(self, resume: bool = False) -> None:
        from ..model.runlog import PROGRESS_FILE, ProgressFollower

        if self.process is not None and self.process.poll() is None:
            self.status_label.setText("A training process is already running.")
            return
        run_dir = Path(self.run_edit.text())
        if not self.run_edit.text() or (not resume and not self.dataset_edit.text()):
            self.status_label.setText("Choose a dataset folder and a run folder first.")
            return
        try:
            self.process = start_logged_process(self.command(resume), run_dir / "train.log")
        except OSError as exc:
            self.status_label.setText(f"Cannot write the run folder {run_dir}: {exc.strerror or exc}")
            return
        self.follower = ProgressFollower(run_dir / PROGRESS_FILE)
        self.progress_bar.setValue(0)
        self.status_label.setText(
            f"{'Resuming' if resume else 'Training'} in process {self.process.pid}; log: {run_dir / 'train.log'}"
        )
        self.preannotate_run_edit.setText(str(run_dir))
        self._set_running(True)
        self.timer.start()

    def cancel_training(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        stop_process(self.process)
        self.poll()
        self.status_label.setText("Cancelled; Resume continues from the last finished epoch.")

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.resume_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    @property
    def training_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def follow(self, run_dir: str | Path) -> None:
        """Follow an existing run's progress log (e.g. one started from a shell)."""
        self.run_edit.setText(str(run_dir))
        self.follow_progress(run_dir)
        self.poll()
        self.timer.start()

    def follow_progress(self, run_dir: str | Path) -> None:
        """Show ``run_dir``'s progress and curves from now on (the labelling loop's rounds too)."""
        from ..model.runlog import PROGRESS_FILE, ProgressFollower

        self.follower = ProgressFollower(Path(run_dir) / PROGRESS_FILE)
        self.preannotate_run_edit.setText(str(run_dir))

    def poll(self) -> None:
        """Read new progress lines, update the bar and curves; notice when the process ends."""
        self.loop_panel.poll()
        if self.follower is None:
            if not self.loop_panel.running:
                self.timer.stop()
            return
        new = self.follower.poll()
        records = self.follower.records
        if (
            not new
            and not self.training_running
            and not self.loop_panel.running
            and any(r.get("event") == "end" for r in records)
        ):
            self.timer.stop()  # a finished run and nothing else to follow
            return
        starts = [r for r in records if r.get("event") == "start"]
        if new and starts:
            total = int(starts[-1].get("total_steps") or 0)
            step = max((int(r.get("step") or 0) for r in records), default=0)
            self.progress_bar.setMaximum(max(total, 1))
            self.progress_bar.setValue(min(step, max(total, 1)))
            self.plot(records)
            last = new[-1]
            if last.get("event") == "epoch":
                m = last.get("metrics") or {}
                self.status_label.setText(
                    f"epoch {last['epoch'] + 1}: val Dice {cell_text(m.get('val_dice'))}, "
                    f"plane accuracy {cell_text(m.get('val_plane_acc'))}"
                )
        ended = any(r.get("event") == "end" for r in new)
        exited = self.process is not None and self.process.poll() is not None
        if ended or exited:
            if ended:
                self.status_label.setText(f"Finished: {[r for r in new if r.get('event') == 'end'][-1].get('reason')}")
            elif self.process.returncode not in (0, None):
                self.status_label.setText(
                    f"Training stopped (exit {self.process.returncode}): {last_log_line(Path(self.run_edit.text()) / 'train.log')} "
                    "Resume continues from the last finished epoch."
                )
            if (self.process is None or exited) and not self.loop_panel.running:
                self.timer.stop()
            if self.process is None or exited:
                self._set_running(False)
            self.refresh_runs()

    def plot(self, records: list[dict]) -> None:
        steps = [r for r in records if r.get("event") == "step"]
        epochs = [r for r in records if r.get("event") == "epoch"]
        self.loss_ax.clear()
        self.metric_ax.clear()
        if steps:
            self.loss_ax.plot(
                [r["step"] for r in steps],
                [(r.get("losses") or {}).get("loss") for r in steps],
                lw=1,
                label="train loss",
            )
        if epochs:
            self.loss_ax.plot(
                [r["step"] for r in epochs],
                [(r.get("metrics") or {}).get("val_loss") for r in epochs],
                "o-",
                label="val loss",
            )
            x = [r["epoch"] + 1 for r in epochs]
            for key, label in (("val_dice", "val Dice"), ("val_plane_acc", "val plane acc")):
                self.metric_ax.plot(x, [(r.get("metrics") or {}).get(key) for r in epochs], "o-", label=label)
            self.metric_ax.set_ylim(0, 1.02)
            self.metric_ax.legend(fontsize=7, loc="lower right")
        self.loss_ax.set_xlabel("step", fontsize=8)
        self.metric_ax.set_xlabel("epoch", fontsize=8)
        if self.loss_ax.lines:  # a run that has not logged a step yet has nothing to name
            self.loss_ax.legend(fontsize=7, loc="upper right")
        self.figure.tight_layout()
        self.canvas.draw_idle()

    # -- past runs ---------------------------------------------------------------------------
    def refresh_runs(self) -> None:
        from ..model.runlog import list_runs

        folder = self.runs_edit.text() or (str(Path(self.run_edit.text()).parent) if self.run_edit.text() else "")
        runs = list_runs(folder) if folder else []
        self.run_paths = [r["path"] for r in runs]
        fill_table(self.runs_table, runs, RUN_COLUMNS)

    def _run_selected(self) -> None:
        rows = {i.row() for i in self.runs_table.selectedItems()}
        if rows:  # the chosen run is the one to pre-annotate from, or to resume
            self.preannotate_run_edit.setText(self.run_paths[min(rows)])
            self.run_edit.setText(self.run_paths[min(rows)])

    # -- pre-annotation ----------------------------------------------------------------------
    def _clip_layer(self):
        from napari.layers import Image

        active = self.viewer.layers.selection.active
        if isinstance(active, Image):
            return active
        return next((layer for layer in self.viewer.layers if isinstance(layer, Image)), None)

    def preannotate_open_clip(self) -> None:
        from ..model.preannotate import preannotate_clip

        layer = self._clip_layer()
        run = self.preannotate_run_edit.text() or self.run_edit.text()
        if layer is None or not run:
            self.status_label.setText("Open a clip (an Image layer) and choose a run first.")
            return
        frames = np.asarray(layer.data)
        if frames.ndim != 3 or layer.rgb:
            self.status_label.setText(f"'{layer.name}' is not a grayscale clip (T, H, W): shape {frames.shape}")
            return
        self.preannotate_button.setEnabled(False)
        self.preannotate_bar.setValue(0)

        def on_yield(p):
            self.preannotate_bar.setMaximum(max(p.total, 1))
            self.preannotate_bar.setValue(p.done)
            self.status_label.setText(p.message)

        def on_return(proposal):
            self.proposal = proposal
            self._add_proposal_layer(layer, proposal)

        def on_error(exc):
            self.status_label.setText(f"Pre-annotation failed: {exc}")

        def on_finish():
            self.preannotate_button.setEnabled(True)

        self.worker = start(preannotate_clip(run, frames), on_yield, on_return, on_error, on_finish)

    def _add_proposal_layer(self, image, proposal) -> None:
        name = f"{image.name} proposal"
        meta = {
            "provenance": "model",
            "confidence": proposal.confidence.tolist(),
            "clip_plane": proposal.clip_plane,
            "frame_planes": proposal.frame_planes,
            "plane_labels": proposal.plane_labels,
            "plane_ranges": [(r.start, r.stop, r.plane) for r in proposal.plane_ranges],
            "source": proposal.source,
        }
        data = proposal.masks.astype(np.uint8)
        if name in self.viewer.layers:
            self.viewer.layers[name].data = data
            self.viewer.layers[name].metadata.update(meta)
        else:
            self.viewer.add_labels(
                data, name=name, metadata=meta, scale=image.scale, translate=image.translate, opacity=0.5
            )
        mean_conf = float(np.mean(proposal.confidence)) if len(proposal.confidence) else float("nan")
        self.status_label.setText(
            f"Proposal added as '{name}': plane {proposal.clip_plane} "
            f"(p={proposal.clip_plane_prob:.2f}), mean confidence {mean_conf:.2f}. "
            "Accept or edit it in the annotator."
        )

    def closeEvent(self, event):  # noqa: N802 - Qt override
        self.timer.stop()  # the training process itself keeps running on purpose
        super().closeEvent(event)
