"""The annotator's quick actions, bound to keys and buttons: planes, ranges, keyframe and clip
navigation, interpolation, flag, done, undo/redo.

A mixin of :class:`.annotator.AnnotatorWidget`; each action calls the session through the
widget's ``_do`` so problems are shown as messages, never raised into napari's key handler.
"""

from __future__ import annotations


class KeyActionsMixin:
    # -- actions (buttons and keys) ---------------------------------------------------------------
    def undo(self) -> None:
        if self.session is not None:
            self.refresh_clip_view(self.session.undo())

    def redo(self) -> None:
        if self.session is not None:
            self.refresh_clip_view(self.session.redo())

    def key_plane(self, plane: str) -> None:
        self._do(lambda s: s.set_clip_plane(plane))

    def key_non_standard(self) -> None:
        if self.session is None:
            return
        t = self.current_frame
        if self._range_start is None:
            self._range_start = t
            self.info(f"Non-standard from frame {t + 1}: go to its last frame and press 0 again.")
            return
        a, b = sorted((self._range_start, t))
        self._range_start = None
        if self._do(lambda s: s.set_plane_range(a, b + 1, self.plane_labels[-1])):
            self.info(f"Frames {a + 1}–{b + 1} labelled {self.plane_labels[-1]}.")

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
        if self._do(lambda s: filled.extend(s.interpolate())):
            self.info(f"Interpolated {len(filled)} frames." if filled else
                      "Nothing to interpolate: trace at least two keyframes with frames between them.")

    def key_flag(self) -> None:
        if self.session is None:
            return
        order = ("ok", "poor", "unusable")
        nxt = order[(order.index(self.session.annotation.quality) + 1) % 3]
        self._do(lambda s: s.set_flag(nxt, self.comment_edit.text()))
        self._refresh_queue()

    def key_done(self) -> None:
        if self._do(lambda s: s.set_status("done")):
            self._refresh_queue()
            self.info(f"{self.session.clip_id} done. {self.queue.progress_text()}. N: next clip.")
