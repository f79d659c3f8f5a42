"""The annotator's "check" tools (issue 14): jump to the most doubtful frame, list the worst,
spread a correction to its neighbours and show on the strip what it changed.

A mixin of :class:`.annotator.AnnotatorWidget`. The scores come from the core
(``AnnotationSession.doubts``: :mod:`napari_ultramn.annotation.doubt`), the spread from
``AnnotationSession.correct`` (:mod:`napari_ultramn.annotation.repropagate`); this module only
shows them. Frames are shown 1-based, as a person counts.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import QCheckBox, QLabel, QListWidget, QListWidgetItem, QPushButton, QSizePolicy

from ..annotation.controller import runs, span

_LISTED = 5  # worst frames listed
_CHANGED_COLOUR = (255, 255, 255)
_SHOW_CHANGED_MS = 4000  # how long the strip marks the frames a correction changed


class DoubtMixin:
    def _build_doubt(self) -> None:
        """The controls, placed right under the provenance strip of the 'Nerve' section."""
        self.doubt_button = QPushButton("Check next doubtful frame")
        self.doubt_button.setToolTip("jump to the frame most likely wrong that you have not checked (J)")
        self.spread_check = QCheckBox("Spread corrections")
        self.spread_check.setChecked(True)
        self.spread_check.setToolTip(
            "an edit re-propagates the propagated, interpolated and model frames "
            "next to it, up to the next keyframe on each side (one undo step)"
        )
        self.changed_strip = QLabel()
        self.changed_strip.setFixedHeight(5)
        self.changed_strip.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.changed_strip.setToolTip("white: frames the last correction changed")
        self.doubt_list = QListWidget()
        self.doubt_list.setMaximumHeight(80)
        self.doubt_list.setToolTip("the most doubtful frames; click one to go to it")
        lay = self.track_label.parentWidget().layout()
        at = lay.indexOf(self.track_label) + 1
        for i, w in enumerate((self.changed_strip, self.doubt_button, self.spread_check, self.doubt_list)):
            lay.insertWidget(at + i, w)
        self.doubt_button.clicked.connect(self.key_next_doubt)
        self.doubt_list.itemClicked.connect(lambda item: self.go_to_frame(item.data(0x0100)))
        self._checked: set[int] = set()  # frames jumped to and left unchanged (this clip)
        self._checked_session = None
        self._changed: list[int] = []
        self._changed_timer = QTimer(self)
        self._changed_timer.setSingleShot(True)
        self._changed_timer.timeout.connect(lambda: self._show_changed([]))
        self._doubt_timer = QTimer(self)  # the list follows edits once they pause (a stroke never waits)
        self._doubt_timer.setSingleShot(True)
        self._doubt_timer.setInterval(250)
        self._doubt_timer.timeout.connect(self._refresh_doubts)

    def _doubt_checked(self) -> set[int]:
        if self._checked_session is not self.session:  # another clip: nothing checked yet
            self._checked, self._checked_session = set(), self.session
            self._show_changed([])
        return self._checked

    # -- actions ---------------------------------------------------------------------------------
    def key_next_doubt(self) -> None:
        """Go to the most doubtful frame not yet checked (the current one counts as checked)."""
        if self.session is None:
            return
        checked = self._doubt_checked()
        checked.add(self.current_frame)
        worst = self.session.doubts(exclude=checked, limit=1)
        if not worst:
            self.info("Every frame is checked or drawn by a human.")
            return
        self.go_to_frame(worst[0].frame)
        self.info(worst[0].text())

    def _doubt_set_mask(self, session, t: int, mask, label: str = "paint", assisted: bool = False) -> None:
        """An edit from the canvas (``assisted``: an accepted smart keyframe): spread it (one undo
        step) or set the frame alone."""
        if not self.spread_check.isChecked():
            (session.set_assisted_mask if assisted else session.set_mask)(t, mask, label)
            return
        changed = session.correct(t, mask, label, assisted=assisted)
        self._doubt_checked().difference_update(changed)
        spread = [f for f in changed if f != t]
        if spread:
            self._show_changed(changed)
            where = ", ".join(span(a, b) for a, b in runs(spread))
            QTimer.singleShot(0, lambda: self.info(f"Correction of frame {t + 1} spread to {where}."))

    # -- display ---------------------------------------------------------------------------------
    def _schedule_doubts(self) -> None:
        self._doubt_timer.start()

    def _refresh_doubts(self) -> None:
        if self.defer_while_working(self._doubt_timer):
            return
        rows: list[tuple[str, int]] = []
        if self.session is not None:
            checked = self._doubt_checked()
            rows = [(d.text(), d.frame) for d in self.session.doubts(exclude=checked, limit=_LISTED, min_score=0.05)]
        lst = self.doubt_list
        if rows == [(lst.item(i).text(), lst.item(i).data(0x0100)) for i in range(lst.count())]:
            return  # the same list: not cleared and refilled (a repaint of the window, mid-work)
        lst.clear()
        for text, frame in rows:
            item = QListWidgetItem(text)
            item.setData(0x0100, frame)
            lst.addItem(item)

    def _show_changed(self, frames) -> None:
        """Mark ``frames`` on the strip under the provenance strip for a few seconds."""
        self._changed = sorted(frames)
        n = self.session.annotation.n_frames if self.session is not None else 0
        self.changed_strip.setPixmap(changed_pixmap(n, self._changed, max(200, self.track_label.width())))
        if self._changed:
            self._changed_timer.start(_SHOW_CHANGED_MS)


def changed_pixmap(n_frames: int, frames, width: int) -> QPixmap:
    """A thin strip as wide as the provenance strip: ``frames`` white, the rest dark."""
    n = max(n_frames, 1)
    row = np.zeros((n, 3), np.uint8) + 35
    if len(frames):
        row[np.asarray(frames, dtype=int)] = _CHANGED_COLOUR
    cols = np.minimum((np.arange(width) * n) // width, n - 1)
    img = np.ascontiguousarray(np.repeat(row[cols][None], 5, 0))
    qimg = QImage(img.data, img.shape[1], img.shape[0], img.strides[0], QImage.Format.Format_RGB888)
    return QPixmap.fromImage(qimg.copy())
