"""The annotator's long work: propagation (with preview, warnings, "accept up to here") and
model pre-annotation, run through :func:`.workers.start` with progress and Cancel; and reading
the next clips of the queue ahead (:class:`~napari_ultramn.annotation.prefetch.ClipPrefetcher`).

A mixin of :class:`.annotator.AnnotatorWidget`; it uses the widget's session, layers and controls.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

from qtpy.QtWidgets import QListWidgetItem

from ..errors import UltramnError
from .workers import start


class LongWorkMixin:
    # -- reading ahead -----------------------------------------------------------------------
    def _prefetch_next(self) -> None:
        """Decode the clips that N or a click on the next line would open, while the rater works."""
        if self.prefetch is None or self.queue is None or not self.prefetch_enabled:
            return
        current = self.session.clip_id if self.session else None
        f = self.filters()
        ahead = (self.queue.next_unlabelled(current, **f), self.queue.neighbour(current, 1, **f))
        self.prefetch.want([c for c in ahead if c is not None and c != current])

    def _stop_prefetch(self) -> None:
        self._prefetch_timer.stop()
        if self.prefetch is not None:
            self.prefetch.close()
        self.prefetch = self._holder["prefetch"] = None

    # -- long work: propagation and pre-annotation ------------------------------------------------
    def key_propagate_forward(self) -> None:
        self.propagate(1)

    def key_propagate_backward(self) -> None:
        self.propagate(-1)

    def propagate(self, direction: int) -> None:
        if self.session is None or self._worker is not None:
            return
        try:
            self.ctl.check_propagation(direction)  # refused in 1-based words, before any work
            gen = self.session.propagation(self.current_frame, direction)
        except UltramnError as exc:
            self.error(exc)
            return
        self._drop_pending()
        self._start(gen, self._propagation_done)

    def _propagation_done(self, result) -> None:
        said = self.ctl.propagated(result)
        self.clip_layers.show_preview(result)
        self.warnings_list.clear()
        self.warnings_list.setVisible(bool(result.warnings))
        for t in sorted(result.warnings):
            item = QListWidgetItem(f"frame {t + 1}: {result.warnings[t]}")
            item.setData(0x0100, t)
            self.warnings_list.addItem(item)
        self.accept_button.setEnabled(True)
        self.info(said)

    def key_accept(self) -> None:
        if self.ctl.pending is None or self.session is None:
            return
        said: list[str] = []
        with self._finish_layouts.batch():  # the dock laid out once, with the message in place
            if self._do(lambda _s: said.append(self.ctl.accept_pending())):
                self._drop_pending()
                self.info(said[0])

    def _drop_pending(self) -> None:
        if self.ctl.drop_pending():
            self.info("")  # "go to the last good frame and accept" no longer applies
        self.accept_button.setEnabled(False)
        self.warnings_list.clear()
        self.warnings_list.setVisible(False)
        self.clip_layers.hide_preview()

    def preannotate_available(self) -> bool:
        run = self.model_edit.text().strip()
        return (
            self.session is not None
            and bool(run)
            and Path(run).exists()
            and importlib.util.find_spec("napari_ultramn.model.preannotate") is not None
        )

    def _refresh_preannotate(self, *_args) -> None:
        self.preannotate_button.setEnabled(self.preannotate_available() and self._worker is None)

    def preannotate(self) -> None:
        if not self.preannotate_available():
            return
        from ..model.preannotate import preannotate_clip

        self._start(preannotate_clip(self.model_edit.text().strip(), self.session.clip), self._proposal_done)

    def _proposal_done(self, proposal) -> None:
        said: list[str] = []  # names the plane the clip has now, not the model's guess
        if self._do(lambda _s: said.append(self.ctl.apply_proposal(proposal))):
            self.info(said[0])

    def _start(self, gen, on_done) -> None:
        session = self.session

        def done(result):
            # A result for a clip that is no longer open (the rater moved on) is dropped.
            if self.session is session and session is not None:
                on_done(result)

        self.progress_bar.setValue(0)
        if self.preannotate_button.isEnabled():
            self.preannotate_button.setEnabled(False)
        started = time.monotonic()
        shown = [started]

        def on_yield(p):
            # Every repaint of the dock costs the worker time (under Xvfb ~20-50 ms of CPU, and the
            # GIL): one per frame made a 30-frame propagation 4x slower than the core. The bar
            # appears only for work that lasts, and moves a few times a second; the last step
            # is always written, so the bar says where the work ended.
            now, last = time.monotonic(), p.done >= p.total
            if not last and (now - started < 0.5 or now - shown[0] < 0.5):
                return
            shown[0] = now
            if not last and not self.progress_bar.isVisible():
                self.progress_bar.setVisible(True)  # with Cancel: work this short needs neither
                self.cancel_button.setEnabled(True)
            self.progress_bar.setMaximum(max(p.total, 1))
            self.progress_bar.setValue(p.done)
            t = p.metrics.get("frame") if isinstance(p.metrics, dict) else None
            text = p.message if t is None else f"frame {int(t) + 1} / {self.session.annotation.n_frames}"
            self.progress_bar.setFormat(f"{text} %p%")  # the core counts frames from 0, the dock from 1

        self._worker = True  # "running", until _work_finished (also in synchronous test mode)
        worker = start(gen, on_yield, done, self.error, self._work_finished)
        if worker is not None and self._worker is True:
            self._worker = worker  # threaded: keep it so Cancel can stop it at its next yield

    def defer_while_working(self, timer) -> bool:
        """True, with ``timer`` started again, while a propagation or pre-annotation runs.

        For refills due once edits pause (the measurement table, the doubt list): run in the middle
        of the work they would take the worker's CPU and Python's lock and repaint the window, and
        the work's result changes what they show anyway.
        """
        if self._worker is None:
            return False
        timer.start()
        return True

    def _work_finished(self) -> None:
        self._worker = None
        self.progress_bar.setVisible(False)
        self.cancel_button.setEnabled(False)
        self._refresh_preannotate()

    def cancel(self) -> None:
        worker = self._worker
        if worker is not None and worker is not True:
            worker.quit()
            self.info("Cancelled.")
