"""The annotator's quick actions, bound to keys and buttons: planes, ranges, keyframe and clip
navigation, interpolation, flag, done, undo/redo.

A mixin of :class:`.annotator.AnnotatorWidget`; each action calls the session through the
widget's ``_do`` so problems are shown as messages, never raised into napari's key handler.
"""

from __future__ import annotations

from ..annotation.controller import runs, span


class KeyActionsMixin:
    # -- actions (buttons and keys) ---------------------------------------------------------------
    def undo(self) -> None:
        self._step_history("undo", "Undone")

    def redo(self) -> None:
        self._step_history("redo", "Redone")

    def _step_history(self, verb: str, done: str) -> None:
        s = self.session
        if s is None:
            return
        if not getattr(s.history, f"can_{verb}"):
            self.info(f"Nothing to {verb}.")
            return
        frames = getattr(s, verb)()
        self.refresh_clip_view(frames)
        spans = [span(a, b) for a, b in runs(frames)]
        # an interpolation between 30 keyframes undone is 29 runs: the message stays a line or two
        where = ", ".join(spans) if len(spans) <= 3 else f"{len(frames)} frames, {spans[0]} … {spans[-1]}"
        self.info(f"{done}: {where}." if frames else f"{done} (the plane, a range or the flag).")

    def key_plane(self, plane: str) -> None:
        self._do(lambda s: s.set_clip_plane(plane))

    def key_non_standard(self) -> None:
        said: list[str] = []
        if self._do(lambda _s: said.append(self.ctl.mark_range(self.plane_labels[-1]))):
            self.info(said[0])

    def _step_keyframe(self, direction: int) -> None:
        if self.session is None:
            return
        t = self.current_frame
        ks = [k for k in self.session.annotation.keyframes() if (k - t) * direction > 0]
        if ks:
            self.go_to_frame(min(ks) if direction > 0 else max(ks))

    def key_next_keyframe(self) -> None:
        self._step_keyframe(1)

    def key_previous_keyframe(self) -> None:
        self._step_keyframe(-1)

    def _step_clip(self, backwards: bool) -> None:
        if self.queue is None:
            self.error("Open a project first.")
            return
        self.queue.refresh()
        current = self.session.clip_id if self.session else None
        nxt = self.queue.next_unlabelled(current, backwards=backwards, **self.filters())
        if nxt is None:
            self.info("No clip left to label in this queue.")
        else:
            self.open_clip(nxt)

    def key_next_clip(self) -> None:
        self._step_clip(False)

    def key_previous_clip(self) -> None:
        self._step_clip(True)

    def key_interpolate(self) -> None:
        filled: list[int] = []
        with self._finish_layouts.batch():  # the dock laid out once, with the message in place
            if self._do(lambda s: filled.extend(s.interpolate())):
                self.info(
                    f"Interpolated {len(filled)} frames."
                    if filled
                    else "Nothing to interpolate: trace at least two keyframes with frames between them."
                )

    def key_flag(self) -> None:
        if self.session is None:
            return
        self.ctl.set_comment(self.comment_edit.text())
        if self._do(lambda _s: self.ctl.cycle_quality()):
            self._refresh_queue()
            self.info(f"{self.session.clip_id} flagged {self.ctl.draft_quality}; comment saved.")

    def key_done(self) -> None:
        if self.session is None:
            return
        self.ctl.set_comment(self.comment_edit.text())
        done: list[bool] = []
        if not self._do(lambda _s: done.append(self.ctl.mark_done(self.confirm))):
            return
        if done[0]:
            self._refresh_queue()
            self.info(f"{self.session.clip_id} done. {self.queue.progress_text()}. N: next clip.")
        else:
            self.info(f"{self.session.clip_id} not marked done.")

    def confirm(self, question: str) -> bool:
        """Ask before a step that may lose or hide work (tests patch QMessageBox.question)."""
        from qtpy.QtWidgets import QMessageBox

        answer = QMessageBox.question(
            self,
            "Annotator",
            question,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    # -- the clip's controls (forwarded to the controller) -----------------------------------------
    def _on_plane_combo(self, index: int) -> None:
        if not self._updating and self.session is not None:
            self._do(lambda s: s.set_clip_plane(self.plane_labels[index - 1] if index > 0 else None))

    def _show_frame_on_slider(self) -> None:
        """napari's slider counts from 0: the number beside it shows the frame as the dock does.

        napari's own current/total boxes of the time axis are replaced by 1-based ones while a
        clip is open (:mod:`.annotator_frame`); the axis is named 't' once, not renamed per
        frame (each rename re-lays out napari's slider row). Not 'frame': napari 0.9 sizes the
        axis label with its own font metrics, not the label's, and cut it to 'fran' at 1366x768.
        """
        dims = self.viewer.dims
        s = self.session
        if s is None or dims.ndim != 3:
            return
        if dims.axis_labels[0] != "t":
            dims.axis_labels = ("t", *dims.axis_labels[1:])
        self.frame_numbers.show(self.current_frame, s.annotation.n_frames)

    def _on_range_button(self) -> None:
        said: list[str] = []
        first, last = self.range_start.value(), self.range_stop.value()  # as shown: 1-based
        if self._do(lambda _s: said.append(self.ctl.label_range(first, last, self.range_plane.currentText()))):
            self.info(said[0])

    def _on_comment_typed(self, text: str) -> None:
        self.ctl.set_comment(text)
        self._draft_timer.start()

    def _commit_draft(self) -> None:
        self._draft_timer.stop()
        if self.session is not None and self.ctl.draft_dirty:
            if self._do(lambda _s: self.ctl.commit_draft()):
                self._refresh_queue()

    def _on_quality(self, _index: int) -> None:
        if self.session is not None and self._do(lambda _s: self.ctl.set_quality(self.quality_combo.currentText())):
            self._refresh_queue()

    def _on_flag_button(self) -> None:
        self.ctl.set_comment(self.comment_edit.text())
        self._on_quality(0)
