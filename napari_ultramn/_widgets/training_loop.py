"""The Training dock's labelling loop: train on what is labelled, then pre-annotate the rest.

Runs ``python -m napari_ultramn label-loop PROJECT --out LOOP_DIR ...`` in its own process and
session (like training: the viewer never freezes, closing it does not stop the round) with the
training settings of the dock, and follows ``LOOP_DIR/loop.json`` (stage and message) and the
round's ``model/progress.jsonl`` (the dock's curves) with the dock's timer.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from qtpy.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
)

from .layout import row
from .workers import last_log_line, start_logged_process, stop_process


class LabelLoopPanel(QGroupBox):
    """'Train on labelled clips, then pre-annotate the rest' for ``dock`` (a TrainingWidget)."""

    def __init__(self, dock):
        super().__init__("Labelling loop (separate process)")
        self.dock = dock
        self.process: subprocess.Popen | None = None
        self.project_edit = QLineEdit()
        self.project_edit.setPlaceholderText("annotation project folder")
        self.loop_edit = QLineEdit()
        self.loop_edit.setPlaceholderText("loop folder (one round-<k> per run)")
        project_button, loop_button = QPushButton("Browse..."), QPushButton("Browse...")
        self.start_button = QPushButton("Train on labelled clips, then pre-annotate the rest")
        self.cancel_button = QPushButton("Cancel round")
        self.status_label = QLabel("Uses the model, epochs, window, batch size, minutes and device above.")
        self.status_label.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Project", row(self.project_edit, project_button))
        form.addRow("Loop folder", row(self.loop_edit, loop_button))
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(row(self.start_button, self.cancel_button))
        lay.addWidget(self.status_label)
        project_button.clicked.connect(lambda: self._browse(self.project_edit))
        loop_button.clicked.connect(lambda: self._browse(self.loop_edit))
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self._following = ""
        self._set_running(False)

    def _browse(self, edit: QLineEdit) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a folder", edit.text())
        if path:
            edit.setText(path)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        d = self.dock
        cmd = [
            sys.executable,
            "-m",
            "napari_ultramn",
            "label-loop",
            self.project_edit.text(),
            "--out",
            self.loop_edit.text(),
            "--model",
            d.model_combo.currentText(),
            "--epochs",
            str(d.epochs_spin.value()),
            "--window",
            str(d.window_spin.value()),
            "--batch-size",
            str(d.batch_spin.value()),
            "--device",
            d.device_combo.currentText(),
            "-q",
        ]
        if d.minutes_spin.value() > 0:
            cmd += ["--max-minutes", str(d.minutes_spin.value())]
        return cmd

    def start(self) -> None:
        if self.running or self.dock.training_running:
            self.status_label.setText("A training process is already running; cancel it or wait.")
            return
        if not self.project_edit.text() or not self.loop_edit.text():
            self.status_label.setText("Choose the project and a loop folder first.")
            return
        out = Path(self.loop_edit.text())
        try:
            self.process = start_logged_process(self.command(), out / "loop.log")
        except OSError as exc:
            self.status_label.setText(f"Cannot write the loop folder {out}: {exc.strerror or exc}")
            return
        self._following = ""
        self.status_label.setText(f"Round starting in process {self.process.pid}; log: {out / 'loop.log'}")
        self._set_running(True)
        self.dock.timer.start()

    def cancel(self) -> None:
        if not self.running:
            return
        stop_process(self.process)
        self.status_label.setText("Round cancelled; proposals already written stay (rater 'model').")
        self._set_running(False)

    def poll(self) -> None:
        """Called by the dock's timer: show the round's stage, follow its training curves."""
        if self.process is None:
            return
        from dataset_tools.label_loop import loop_state
        from napari_ultramn.errors import InputError

        try:
            state = loop_state(self.loop_edit.text())
        except InputError:
            state = None  # being replaced this instant: read again on the next tick
        if state is not None and state["stage"] != "build" and state["run"] != self._following:
            self._following = state["run"]
            self.dock.follow_progress(state["run"])  # the curves of this round's training
        if self.process.poll() is None:
            if state is not None:
                self.status_label.setText(state.get("message", state["stage"]))
            return
        code, self.process = self.process.returncode, None
        self._set_running(False)
        if code == 0 and state is not None:
            self.status_label.setText(state.get("message", "done"))
        else:
            self.status_label.setText(
                f"The round stopped (exit {code}): {last_log_line(Path(self.loop_edit.text()) / 'loop.log')}"
            )

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
