"""The radiologist's dock widget: a queue of clips, plane labels, nerve tracing, measurement.

A thin layer over the plain-Python core: :class:`AnnotationSession` (lock, history, autosave,
blind/review mode), :class:`ClipQueue`, interpolation, propagation and measurement; what a person
has typed or half-done (comment, quality, a half-marked range) and the current frame live in the
Qt-free :class:`AnnotatorController`. The widget only moves data between those and the napari
layers, and shows what happened (frames 1-based, as a person counts). Keyboard bindings
are in :mod:`.annotator_keys`, layer handling in :mod:`.annotator_layers`, the controls in
:mod:`.annotator_panels`, measurement display in :mod:`.annotator_measure`.
"""

from __future__ import annotations

import functools
import os
import warnings
from typing import TYPE_CHECKING

from qtpy.QtCore import QEvent, QTimer
from qtpy.QtWidgets import QFileDialog, QListWidgetItem, QWidget

from .. import DEFAULT_PLANES, NON_STANDARD
from ..annotation.controller import AnnotatorController
from ..annotation.prefetch import ClipPrefetcher
from ..annotation.queue import QUEUE_STATUSES, ClipQueue
from ..annotation.session import ADJUDICATED, AnnotationSession, CorruptAnnotationError
from ..annotation.store import check_id
from ..errors import UltramnError
from ..project import Project
from . import annotator_keys as keys
from . import annotator_layers as L
from .annotator_actions import KeyActionsMixin
from .annotator_activity import ActivityFilter
from .annotator_assist import SmartKeyframeMixin
from .annotator_doubt import DoubtMixin
from .annotator_frame import FrameNumbers
from .annotator_measure import MeasurementView
from .annotator_panels import build_panels, follow_clip, track_pixmap
from .annotator_sections import LayoutFinisher
from .annotator_work import LongWorkMixin

if TYPE_CHECKING:
    import napari

_ALL = {"plane": "all planes", "participant": "all participants", "status": "any status"}


class AnnotatorWidget(KeyActionsMixin, LongWorkMixin, SmartKeyframeMixin, DoubtMixin, QWidget):
    """Dock widget 'Annotator' (``napari-ultramn.annotator``)."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = viewer
        self.frame_numbers = FrameNumbers(viewer, self)  # napari's number beside the slider, 1-based
        self.project: Project | None = None
        self.queue: ClipQueue | None = None
        self.session: AnnotationSession | None = None
        self.layers: dict = {}  # by role (image, nerve, outline, raters, preview): clip_layers.roles
        # Made once per viewer and refilled per clip (a remove/add per layer costs more than a whole
        # switch may take); the next clips of the queue are decoded in the background.
        self.clip_layers = L.ClipLayers(viewer, self._on_paint, self._on_shapes)
        self.prefetch: ClipPrefetcher | None = None
        self.prefetch_enabled = True
        self._prefetch_timer = QTimer(self)  # once the new clip is on screen, not during its switch
        self._prefetch_timer.setSingleShot(True)
        self._prefetch_timer.setInterval(300)
        self._prefetch_timer.timeout.connect(self._prefetch_next)
        self.ctl = AnnotatorController()  # the state: draft comment and quality, range, frame, mode
        self._worker = None
        self._corrupt_clip: str | None = None
        self._updating = False
        self._record: tuple = (None, {})  # ((project, clip id), the clip's project record): _clip_record
        self._track_key: tuple | None = None  # what the provenance strip shows now
        build_panels(self)
        self._finish_layouts = LayoutFinisher(self)  # one composited frame per action
        self._build_doubt()  # issue 14: check doubtful frames, spread corrections
        self._draft_timer = QTimer(self)  # a typed comment is saved once typing pauses
        self._draft_timer.setSingleShot(True)
        self._draft_timer.setInterval(800)
        self._draft_timer.timeout.connect(self._commit_draft)
        self.measurement = MeasurementView(self)
        self.init_assist()  # smart keyframe mode (annotator_assist)
        self.rater_edit.setText(os.environ.get("ULTRAMN_RATER", ""))
        self._connect()
        self.keys_label.setText(keys.help_html(self.plane_labels))
        self._keys = keys.KeyFilter(self, viewer)  # refuses a table that clashes with napari's keys
        self._dock_keys = keys.DockKeys()
        viewer.dims.events.current_step.connect(self._on_frame)
        self._activity = ActivityFilter(self)  # active time per clip, idle excluded
        follow_clip(self)  # with no clip open, the status lines say so
        # When napari deletes the widget (viewer closed) Python methods can no longer run, so the
        # lock is released through a holder that outlives the widget.
        self._holder: dict = {}
        self.destroyed.connect(functools.partial(_release_holder, self._holder))

    def event(self, ev) -> bool:
        # Closing the dock ('x') only unparents this widget: release the clip and the keys then,
        # or reopening the annotator in this window would find its own lock and refuse.
        if ev.type() == QEvent.Type.ParentChange and self.parent() is None:
            if self.session is not None or self.layers:
                self.close_session()
            self._stop_prefetch()
            self.frame_numbers.restore()  # napari's own frame number back beside its slider
            self._keys.remove()  # napari's keymaps were never touched: nothing else to restore
        return super().event(ev)

    def keyPressEvent(self, ev) -> None:  # noqa: N802 (Qt's name): a key the dock's controls left
        if not self._dock_keys.press(self._keys, ev):
            super().keyPressEvent(ev)  # on to napari's viewer, through napari's dock

    def keyReleaseEvent(self, ev) -> None:  # noqa: N802
        if not self._dock_keys.release(ev):
            super().keyReleaseEvent(ev)

    # -- wiring --------------------------------------------------------------------------
    def _connect(self) -> None:
        self.browse_button.clicked.connect(self._browse)
        self.open_project_button.clicked.connect(lambda: self.open_project())
        for combo in (self.plane_filter, self.participant_filter, self.status_filter):
            combo.currentIndexChanged.connect(self._refresh_queue)
        self.queue_list.itemActivated.connect(lambda item: self.open_clip(item.data(0x0100)))
        self.next_clip_button.clicked.connect(self.key_next_clip)
        self.prev_clip_button.clicked.connect(self.key_previous_clip)
        self.plane_combo.currentIndexChanged.connect(self._on_plane_combo)
        self.range_button.clicked.connect(self._on_range_button)
        self.comment_edit.textEdited.connect(self._on_comment_typed)
        self.comment_edit.editingFinished.connect(self._commit_draft)
        self.quality_combo.activated.connect(self._on_quality)
        self.clear_ranges_button.clicked.connect(lambda: self._do(lambda s: s.clear_plane_ranges()))
        self.flag_button.clicked.connect(self._on_flag_button)
        self.done_button.clicked.connect(self.key_done)
        self.set_aside_button.clicked.connect(self._on_set_aside)
        self.interpolate_button.clicked.connect(self.key_interpolate)
        self.propagate_button.clicked.connect(self.key_propagate_forward)
        self.propagate_back_button.clicked.connect(self.key_propagate_backward)
        self.accept_button.clicked.connect(self.key_accept)
        self.cancel_button.clicked.connect(self.cancel)
        self.undo_button.clicked.connect(self.undo)
        self.redo_button.clicked.connect(self.redo)
        self.warnings_list.itemClicked.connect(lambda item: self.go_to_frame(item.data(0x0100)))
        self.model_edit.textChanged.connect(self._refresh_preannotate)
        self.preannotate_button.clicked.connect(self.preannotate)
        self.pick_clip_button.clicked.connect(lambda: self._do(lambda s: s.pick(self.pick_combo.currentText())))
        self.pick_frame_button.clicked.connect(
            lambda: self._do(lambda s: s.pick(self.pick_combo.currentText(), [self.current_frame]))
        )

    @property
    def pending(self):
        """The propagation waiting for "accept up to here" (kept by the controller)."""
        return self.ctl.pending

    @property
    def plane_labels(self) -> list[str]:
        return self.project.plane_labels if self.project else [*DEFAULT_PLANES, NON_STANDARD]

    @property
    def current_frame(self) -> int:
        """0-based, as napari's slider; everything the dock shows adds 1."""
        return int(self.viewer.dims.current_step[0]) if self.session else 0

    def go_to_frame(self, t: int) -> None:
        if self.session is not None and t is not None:
            self.viewer.dims.set_current_step(0, int(t))

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Annotation project folder")
        if folder:
            self.project_edit.setText(folder)

    # -- messages ------------------------------------------------------------------------
    def error(self, exc) -> None:
        self._message(str(exc), "color: #ff6b6b")

    def info(self, text: str) -> None:
        self._message(text, "")

    def _message(self, text: str, style: str) -> None:
        # a style sheet set again, even unchanged, re-polishes the label and re-lays out the dock:
        # a few ms per action, more than an interpolation of 30 frames takes in the core
        if self.message_label.styleSheet() != style:
            self.message_label.setStyleSheet(style)
        if self.message_label.text() != text:
            self.message_label.setText(text)
        self._finish_layouts()  # the window is composited once per action, with every text in place

    def _do(self, fn) -> bool:
        """Run ``fn(session)``; show any problem as a message instead of a traceback."""
        if self.session is None:
            self.error("Open a clip first.")
            return False
        before = dict(self.session.annotation.frames)
        try:
            fn(self.session)
        except (UltramnError, ValueError, IndexError) as exc:
            self.error(exc)
            return False
        ann = self.session.annotation
        changed = [t for t in set(before) | set(ann.frames) if before.get(t) is not ann.frames.get(t)]
        self.refresh_clip_view(changed)
        return True

    # -- project and queue -----------------------------------------------------------------
    def open_project(self, path=None, rater: str | None = None, review: bool | None = None) -> bool:
        if path is not None:
            self.project_edit.setText(str(path))
        if rater is not None:
            self.rater_edit.setText(rater)
        if review is not None:
            self.review_check.setChecked(review)
        self.close_session()
        self._stop_prefetch()
        try:
            check_id("rater", self.rater_edit.text().strip())
            self.project = Project.open(self.project_edit.text().strip())
        except (UltramnError, ValueError) as exc:
            self.error(exc)
            return False
        # In review mode the work being done is the 'adjudicated' annotation: queue that.
        owner = ADJUDICATED if self.review_check.isChecked() else self.rater_edit.text().strip()
        self.ctl.review = self.review_check.isChecked()
        self.queue = ClipQueue(self.project, owner, blind=self.ctl.blind, review=self.ctl.review)
        self.prefetch = self._holder["prefetch"] = ClipPrefetcher(self.project)
        self._updating = True
        for combo, key, values in (
            (self.plane_filter, "plane", self.queue.planes()),
            (self.participant_filter, "participant", self.queue.participants()),
            (self.status_filter, "status", list(QUEUE_STATUSES)),
        ):
            combo.clear()
            combo.addItems([_ALL[key], *values])
        self.plane_filter.setVisible(not self.ctl.blind)
        self.plane_combo.clear()
        self.plane_combo.addItems(["— plane not set —", *self.plane_labels])
        self.range_plane.clear()
        self.range_plane.addItems(self.plane_labels)
        self.range_plane.setCurrentText(self.plane_labels[-1])
        self._updating = False
        self._keys.remove()  # the plane keys follow the project's planes
        self._keys = keys.KeyFilter(self, self.viewer)
        self.keys_label.setText(keys.help_html(self.plane_labels))
        self._refresh_queue()
        self.sections["Project"].set_expanded(False)  # room for the clip on a laptop; a click reopens it
        self.info(f"Project '{self.project.name}': {len(self.project.clips())} clips.")
        return True

    def filters(self) -> dict:
        out = {}
        for combo, key in (
            (self.plane_filter, "plane"),
            (self.participant_filter, "participant"),
            (self.status_filter, "status"),
        ):
            if combo.currentIndex() > 0:
                out[key] = combo.currentText()
        return out

    def _refresh_queue(self, *_args) -> None:
        if self.queue is None or self._updating:
            return
        if self.session is not None:  # the queue reads the files: let the autosave land first
            try:
                self.session.flush()
            except UltramnError as exc:
                self.error(exc)
        self.queue.refresh()
        current = self.session.clip_id if self.session else None
        entries = self.queue.entries(**self.filters())
        lst = self.queue_list
        if [lst.item(i).data(0x0100) for i in range(lst.count())] != [e.clip_id for e in entries]:
            lst.clear()  # other clips or another order: rebuilt; else only changed lines are redrawn
            for e in entries:
                item = QListWidgetItem()
                item.setData(0x0100, e.clip_id)
                lst.addItem(item)
        for i, e in enumerate(entries):
            item, text = lst.item(i), self.queue.line(e)  # blind: without the header's plane
            if item.text() != text:
                item.setText(text)
                item.setToolTip(text)  # the list elides a long line
            if item.font().bold() != e.multi_rater:  # review: a clip two or more raters annotated
                font = item.font()
                font.setBold(e.multi_rater)
                item.setFont(font)
        row = next((i for i, e in enumerate(entries) if e.clip_id == current), -1)
        if lst.currentRow() != row:
            lst.setCurrentRow(row)
        self.progress_label.setText(self.queue.progress_text(**self.filters()))
        self._prefetch_timer.start()  # what comes next may have changed

    # -- clips -----------------------------------------------------------------------------
    def open_clip(self, clip_id: str, set_aside_corrupt: bool = False) -> bool:
        """Lock and show ``clip_id`` for the current rater; a problem is shown, never raised.

        The layers stay and are refilled; a clip decoded ahead by the prefetcher is used as is.
        """
        if self.project is None and not self.open_project():
            return False
        self._end_session()
        self.set_aside_button.setVisible(False)
        try:
            clip = self.prefetch.take(clip_id) if self.prefetch is not None else None
            s = AnnotationSession.open(
                self.project,
                clip_id,
                self.rater_edit.text().strip(),
                review=self.review_check.isChecked(),
                set_aside_corrupt=set_aside_corrupt,
                background_save=True,
                clip=clip,
            )  # a brush stroke never waits for the save
        except CorruptAnnotationError as exc:
            self._corrupt_clip = clip_id
            self.set_aside_button.setVisible(True)
            self._remove_layers()
            self.error(exc)
            return False
        except UltramnError as exc:
            self._remove_layers()
            self.error(exc)
            return False
        self._holder["session"] = s
        self._holder["ctl"] = self.ctl  # plain Python: it can still write a typed comment then
        self.ctl.attach(s)
        start = self.ctl.frame  # refilling the layers moves the slider: go back to it after
        self.measurement.reset(s)
        # Filled before the session is shown, so the slider moves of the refill are not frames to show.
        self.layers = self.clip_layers.fill(s, self._layer_metadata(s))
        self.session = s
        n = s.annotation.n_frames
        for spin in (self.range_start, self.range_stop):  # frames as a person counts them: 1..n
            spin.setRange(1, n)
        self.range_start.setValue(1)
        self.range_stop.setValue(n)
        self.sections["Review: other raters"].setVisible(s.review)  # blind: other raters are not named
        self.pick_combo.clear()
        self.pick_combo.addItems([lay.metadata["rater"] for lay in self.layers["raters"]])
        self.viewer.dims.set_current_step(0, start)
        self.refresh_clip_view([])
        self._refresh_queue()
        note = f" Set aside the unreadable file as {s.set_aside_path.name}." if s.set_aside_path else ""
        mode = "review: final annotation saved as 'adjudicated'" if s.review else "blind mode"
        self.info(f"Opened {clip_id} for {s.user} ({mode}).{note}")
        self.display.clip_opened(s, self.layers)  # view settings, cine, caliper (annotator_display)
        return True

    def close_session(self) -> None:
        """Cancel running work, release the lock, remove the clip's layers (project or dock closed)."""
        self._end_session()
        self._remove_layers()

    def _end_session(self) -> None:
        """Cancel running work and release the clip's lock; the layers stay for the next clip."""
        self.cancel()
        self._drop_pending()
        self.stop_assist()  # smart keyframe clicks belong to this clip
        self._draft_timer.stop()
        try:
            self.ctl.commit_draft()  # the comment as typed
        except UltramnError as exc:
            self.error(exc)
        self.display.clip_closed()  # stops cine, saves the view, removes the caliper
        if self.session is not None:
            session, self.session = self.session, None
            self.ctl.detach()
            self._holder.pop("session", None)
            self._holder.pop("ctl", None)
            try:
                session.close()  # writes the pending autosave before releasing the lock
            except UltramnError as exc:
                self.error(exc)
        self._show_frame_on_slider()

    def _remove_layers(self) -> None:
        self.frame_numbers.restore()
        self.clip_layers.remove()
        self.layers = {}

    def _on_set_aside(self) -> None:
        if self._corrupt_clip:
            self.open_clip(self._corrupt_clip, set_aside_corrupt=True)

    def _layer_metadata(self, s=None) -> dict:
        s = s or self.session
        return {
            "clip_id": s.clip_id,
            "rater": s.annotation.rater,
            "clip_plane": s.annotation.clip_plane,
            "provenance": L.provenance_codes_to_list(s.annotation),
            "spacing_mm": list(s.clip.spacing_mm) if s.clip.spacing_mm else None,
        }

    # -- keeping the view in step with the annotation ------------------------------------------
    def refresh_clip_view(self, frames) -> None:
        """Show the annotation after a change of ``frames`` (0-based; the others are as shown).

        Only what changed is redone: the layer's changed frames, texts that differ, the strip if
        its content differs; the dock is laid out once at the end (one composited window frame).
        """
        s = self.session
        if s is None:
            return
        with self._finish_layouts.batch():
            self._refresh_clip_view(s, frames)

    def _refresh_clip_view(self, s, frames) -> None:
        nerve = self.layers["nerve"]
        if frames:
            L.write_frames(nerve, s.annotation, frames, shown=self.current_frame)
        nerve.metadata.update(self._layer_metadata())
        ann = s.annotation
        self._updating = True
        plane = self.plane_labels.index(ann.clip_plane) + 1 if ann.clip_plane in self.plane_labels else 0
        if self.plane_combo.currentIndex() != plane:
            self.plane_combo.setCurrentIndex(plane)
        if self.quality_combo.currentText() != self.ctl.draft_quality:
            self.quality_combo.setCurrentText(self.ctl.draft_quality)
        if self.comment_edit.text() != self.ctl.draft_comment:  # never under the cursor of a typist
            self.comment_edit.setText(self.ctl.draft_comment)
        self._updating = False
        self.ranges_label.setText(self.ctl.ranges_text())
        rec = self._clip_record(s)
        side = "" if self.ctl.blind else f"{rec.get('side') or '?'} · "  # blind: nothing from the header
        clip_text = (
            f"<b>{s.clip_id}</b> · participant {rec.get('participant')} · {side}"
            f"{ann.n_frames} frames · status {ann.status.replace('_', ' ')}"
            + ("" if ann.quality == "ok" else f" · <b>{ann.quality}</b>")
        )
        if self.clip_label.text() != clip_text:
            self.clip_label.setText(clip_text)
        for button, on in ((self.undo_button, s.history.can_undo), (self.redo_button, s.history.can_redo)):
            if button.isEnabled() != on:
                button.setEnabled(on)
        self.save_label.setText(self.ctl.save_text())
        self.measurement.update(s)
        self._on_frame()
        if self.queue is not None:  # the first change of a clip makes it 'in progress'
            e = next((e for e in self.queue.entries() if e.clip_id == s.clip_id), None)
            if e is None or (e.status, e.quality) != (ann.status, ann.quality):
                self._refresh_queue()
        self._refresh_preannotate()
        self._schedule_doubts()
        self._finish_layouts()

    def _clip_record(self, s) -> dict:
        """The open clip's project record (participant, side): read once per clip, not per action
        (an SQLite query; the record does not change while the clip is open)."""
        key = (str(s.project.root), s.clip_id)  # not the session itself: it is not kept past its clip
        if self._record[0] != key:
            self._record = (key, s.project.clip_record(s.clip_id))
        return self._record[1]

    def _on_frame(self, *_args) -> None:
        s = self.session
        if s is None:
            return
        t = self.current_frame
        ann = s.annotation
        self.ctl.set_frame(t)
        self._show_frame_on_slider()
        self.frame_label.setText(self.ctl.frame_text())
        other = self.plane_labels[-1]  # a property (the project's list): asked once, not per frame
        non_standard = [p == other for p in ann.frame_planes()]
        codes, empty = ann.provenance_codes(), self.ctl.empty_frames()
        width = max(200, self.track_label.width())
        key = (codes.tobytes(), bytes(non_standard), t, width, empty.tobytes())
        if key != self._track_key:
            self._track_key = key  # the strip is drawn again only when something on it changed
            self.track_label.setPixmap(track_pixmap(codes, non_standard, t, width, empty=empty))
        self.measurement.show_frame(s, t)
        self._finish_layouts()  # a frame step (slider, cine) is one composited frame too

    def _on_paint(self, event) -> None:
        s = self.session
        if s is None:
            return
        masks = L.painted_masks(self.layers["nerve"].data, event.value, self.current_frame)
        self._do(lambda s: [self._doubt_set_mask(s, t, m) for t, m in masks.items()])

    def _on_shapes(self, event) -> None:
        if (
            self.session is None
            or self._updating
            or str(getattr(event, "action", "added")) not in ("added", "ActionType.ADDED")
        ):
            return
        outline = self.layers["outline"]
        masks = L.polygons_to_masks(outline, self.session.annotation.frame_shape, self.current_frame)
        if not masks:
            return
        self._do(lambda s: [self._doubt_set_mask(s, t, m, label="polygon") for t, m in masks.items()])
        # napari sends 'added' from inside its own _finish_drawing: emptying the layer now re-enters
        # it and fails (TypeError), leaving the layer broken for every later click. Empty it after.
        QTimer.singleShot(0, self._clear_outline)

    def _clear_outline(self) -> None:
        outline = self.layers.get("outline")
        if outline is None or outline not in self.viewer.layers or not len(outline.data):
            return
        self._updating = True
        try:
            outline.data = []
        finally:
            self._updating = False


def _release_holder(holder: dict, *_args) -> None:
    prefetch = holder.pop("prefetch", None)
    if prefetch is not None:
        prefetch.close()
    session, ctl = holder.pop("session", None), holder.pop("ctl", None)
    if session is not None:
        try:
            if ctl is not None and ctl.session is session:
                ctl.commit_draft()  # a comment typed just before the window closed
            session.close()
        except UltramnError as exc:  # the viewer is going away: no widget left to show it in
            warnings.warn(str(exc), stacklevel=2)
