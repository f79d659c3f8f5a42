"""The annotator's sub-widgets, built here so ``annotator.py`` only wires them to the core.

Every control is an attribute of the widget (tests drive them as a person would).
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QColor, QImage, QPixmap
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from ..annotation.clip_annotation import PROVENANCES
from ..vocabulary import QUALITIES
from .annotator_display import build_view_section
from .annotator_layers import _RATER_COLOURS
from .annotator_sections import ElidedLabel, LayoutBarrier, Section, scrolling
from .layout import row

#: Frame-track colours (RGB) by provenance code; index -1 (unannotated) is the last entry.
TRACK_COLOURS = np.array(
    [
        (250, 210, 40),  # drawn: yellow, like the nerve layer's keyframes
        (60, 200, 230),  # interpolated: cyan
        (90, 210, 110),  # propagated: green
        (220, 90, 220),  # model: magenta
        (245, 140, 40),  # model_edited: orange (a human keyframe)
        (80, 110, 255),  # assisted: blue (a smart-keyframe proposal the rater accepted)
        (55, 55, 60),  # unannotated
    ],
    dtype=np.uint8,
)
NON_STANDARD_COLOUR = (210, 60, 60)


def _button(text: str, tip: str = "") -> QPushButton:
    b = QPushButton(text)
    b.setToolTip(tip)
    return b


def _combo(min_chars: int = 6) -> QComboBox:
    """A combo that may shrink below its longest item (Qt elides the shown text)."""
    c = QComboBox()
    c.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    c.setMinimumContentsLength(min_chars)
    c.currentTextChanged.connect(c.setToolTip)
    return c


def _wrapping(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    return label


def build_panels(w) -> None:
    """Create every control as an attribute of ``w``, in folding sections inside a scroll area.

    Laid out for a ~340 px wide dock (napari's canvas keeps half a 1366x768 window); the
    messages stay below the scroll area, always in sight.
    """
    content = QWidget()
    layout = QVBoxLayout(content)
    layout.setContentsMargins(2, 2, 2, 2)
    w.sections = {}

    def section(title: str, body: QWidget, expanded: bool = True, barrier: bool = False) -> None:
        # barrier: a section whose texts change with every action or frame step re-lays out itself
        # only, not every section of the dock, unless it needs another height (LayoutBarrier)
        w.sections[title] = Section(title, LayoutBarrier(body) if barrier else body, expanded)
        layout.addWidget(w.sections[title])

    # -- who and where ------------------------------------------------------------------
    box = QWidget()
    form = QFormLayout(box)
    form.setContentsMargins(0, 0, 0, 0)
    form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)  # a narrow dock puts fields below
    w.project_edit = QLineEdit()
    w.project_edit.setPlaceholderText("annotation project folder")
    w.browse_button = _button("…", "choose the project folder")
    w.rater_edit = QLineEdit()
    w.rater_edit.setPlaceholderText("rater id, e.g. r1")
    w.review_check = QCheckBox("Review")
    w.review_check.setToolTip("adjudicate: see every rater's masks and build the final 'adjudicated' one")
    w.open_project_button = _button("Open project")
    form.addRow("Folder", row(w.project_edit, w.browse_button))
    form.addRow("Rater", row(w.rater_edit, w.review_check))
    form.addRow(w.open_project_button)
    section("Project", box)

    # -- queue --------------------------------------------------------------------------
    box = QWidget()
    v = QVBoxLayout(box)
    v.setContentsMargins(0, 0, 0, 0)
    w.plane_filter = _combo()
    w.participant_filter = _combo()
    w.status_filter = _combo()
    v.addWidget(w.plane_filter)  # its own row: hidden in blind mode, long plane names in review
    v.addWidget(row(w.participant_filter, w.status_filter))
    w.queue_list = QListWidget()
    w.queue_list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    w.queue_list.setMaximumHeight(100)
    v.addWidget(w.queue_list)
    w.progress_label = _wrapping("no project open")  # done, median time per clip, time left: all of it
    w.progress_label.setStyleSheet("font-weight: bold")
    w.prev_clip_button = _button("◀ Prev", "previous unlabelled clip (Shift-N)")
    w.next_clip_button = _button("Next ▶", "next unlabelled clip (N)")
    v.addWidget(w.progress_label)
    v.addWidget(row(w.prev_clip_button, w.next_clip_button))
    section("Clips", box)

    # -- clip: plane, ranges, flag --------------------------------------------------------
    box = QWidget()
    form = QFormLayout(box)
    form.setContentsMargins(0, 0, 0, 0)
    form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)  # a narrow dock puts fields below
    w.clip_label = _wrapping("—")
    form.addRow(w.clip_label)
    w.plane_combo = _combo(8)
    w.plane_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)  # plane names whole
    form.addRow("Plane", w.plane_combo)
    w.range_start = QSpinBox()
    w.range_stop = QSpinBox()
    for spin in (w.range_start, w.range_stop):
        spin.setToolTip("frames as numbered on screen, 1 to the clip's length; both included")
    form.addRow("Frames", row(w.range_start, QLabel("to"), w.range_stop))
    w.range_plane = _combo(8)
    w.range_plane.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
    w.range_button = _button("Label", "label frames first..last (both included) with this plane")
    w.clear_ranges_button = _button("Clear", "remove every frame range of this clip")
    form.addRow("as", w.range_plane)
    form.addRow(row(w.range_button, w.clear_ranges_button))
    w.ranges_label = _wrapping()  # every range in full: it is what the rater checks
    form.addRow(w.ranges_label)
    w.quality_combo = QComboBox()
    w.quality_combo.addItems(list(QUALITIES))
    w.flag_button = _button("Flag", "save quality and comment (Shift-F cycles the quality)")
    form.addRow("Quality", row(w.quality_combo, w.flag_button))
    w.comment_edit = QLineEdit()
    w.comment_edit.setPlaceholderText("comment (saved as you type)")
    form.addRow("Comment", w.comment_edit)
    w.done_button = _button("Mark clip done", "Shift-D")
    w.set_aside_button = _button("Set corrupt file aside", "keep the unreadable file, renamed, and start again")
    w.set_aside_button.setVisible(False)
    form.addRow(row(w.done_button, w.set_aside_button))
    section("Clip", box, barrier=True)

    # -- tracing tools --------------------------------------------------------------------
    box = QWidget()
    v = QVBoxLayout(box)
    v.setContentsMargins(0, 0, 0, 0)
    w.frame_label = _wrapping()
    w.track_label = QLabel()
    w.track_label.setMinimumHeight(18)
    w.track_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
    w.track_label.setToolTip(
        "top: yellow/orange = human keyframes, blue = assisted keyframes, cyan = interpolated, "
        "green = propagated, magenta = model; a thin line only = traced as "
        "'no nerve' (empty mask); bottom red = non-standard plane"
    )
    v.addWidget(w.frame_label)
    v.addWidget(w.track_label)
    legend = _wrapping(
        " ".join(
            f'<span style="color: rgb{tuple(int(c) for c in TRACK_COLOURS[i])}">■</span> {p}'
            for i, p in enumerate(PROVENANCES)
        )
        + " · a thin line: traced as no nerve"
    )
    legend.setTextFormat(Qt.TextFormat.RichText)
    v.addWidget(legend)
    w.interpolate_button = _button("Interpolate", "fill frames between keyframes (Shift-I)")
    w.propagate_back_button = _button("◀ Propagate", "Ctrl-Left")
    w.propagate_button = _button("Propagate ▶", "Ctrl-Right")
    v.addWidget(row(w.interpolate_button, w.propagate_back_button, w.propagate_button))
    w.assist_button = _button("Smart keyframe", "click inside the nerve for a proposal; Enter accepts (Shift-S)")
    w.assist_button.setCheckable(True)  # the mode itself: annotator_assist
    v.addWidget(w.assist_button)
    w.accept_button = _button("Accept to here", "accept the propagation up to this frame (Alt-A)")
    w.cancel_button = _button("Cancel")
    w.accept_button.setEnabled(False)
    w.cancel_button.setEnabled(False)
    w.undo_button = _button("Undo", "Ctrl-Z")
    w.redo_button = _button("Redo", "Ctrl-Shift-Z")
    v.addWidget(row(w.accept_button, w.cancel_button))
    v.addWidget(row(w.undo_button, w.redo_button))
    w.progress_bar = QProgressBar()
    w.progress_bar.setVisible(False)
    v.addWidget(w.progress_bar)
    w.warnings_list = QListWidget()
    w.warnings_list.setMaximumHeight(70)
    w.warnings_list.setToolTip("propagation warnings; click one to go to its frame")
    w.warnings_list.setVisible(False)
    v.addWidget(w.warnings_list)
    w.model_edit = QLineEdit()
    w.model_edit.setPlaceholderText("model run folder (optional)")
    w.preannotate_button = _button("Pre-annotate", "fill untouched frames and the plane from a model")
    w.preannotate_button.setEnabled(False)
    v.addWidget(row(w.model_edit, w.preannotate_button))
    section("Nerve", box, barrier=True)
    section("View", build_view_section(w))  # window/level, outline, cine, caliper (annotator_display)

    # -- review -----------------------------------------------------------------------------
    w.review_box = QWidget()
    v = QVBoxLayout(w.review_box)
    v.setContentsMargins(0, 0, 0, 0)
    w.pick_combo = _combo()
    w.pick_clip_button = _button("Use all", "take this rater's masks and planes as the final ones")
    w.pick_frame_button = _button("Use frame", "take this rater's mask of the current frame")
    v.addWidget(row(w.pick_combo, w.pick_clip_button, w.pick_frame_button))
    w.rater_legend = _wrapping()  # the colour of each rater's layer, from the pick list
    w.rater_legend.setTextFormat(Qt.TextFormat.RichText)
    v.addWidget(w.rater_legend)
    model = w.pick_combo.model()  # the pick list is filled with the rater layers, in layer order
    for signal in (model.rowsInserted, model.rowsRemoved, model.modelReset):
        signal.connect(lambda *_args: show_rater_legend(w))
    section("Review: other raters", w.review_box)
    w.sections["Review: other raters"].setVisible(False)

    # -- measurement ------------------------------------------------------------------------
    box = QWidget()
    v = QVBoxLayout(box)
    v.setContentsMargins(0, 0, 0, 0)
    w.unit_label = _wrapping()
    w.measure_label = _wrapping()
    w.excursion_label = _wrapping()
    w.measure_table = QTableWidget(0, 6)
    w.measure_table.setMinimumHeight(110)
    w.measure_table.setMaximumHeight(160)
    w.measure_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    w.measure_table.verticalHeader().setVisible(False)
    w.measure_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    for x in (w.unit_label, w.measure_label, w.excursion_label, w.measure_table):
        v.addWidget(x)
    section("Measurement", box, barrier=True)

    # -- keys ---------------------------------------------------------------------------------
    w.keys_label = QLabel("")
    w.keys_label.setTextFormat(Qt.TextFormat.RichText)
    w.keys_label.setWordWrap(True)
    w.keys_label.setStyleSheet("font-size: 10px")
    section("Keys", w.keys_label, expanded=False)
    layout.addStretch(1)

    outer = QVBoxLayout(w)
    outer.setContentsMargins(2, 2, 2, 2)
    outer.addWidget(scrolling(content), 1)
    w.save_label = ElidedLabel("")
    w.message_label = _wrapping()
    w.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    # two lines kept: most messages take one or two, so one following another does not change the
    # dock's height (a new height re-lays out napari's window: one more composited frame)
    w.message_label.setMinimumHeight(2 * w.message_label.fontMetrics().lineSpacing())
    status = QWidget()  # after every action: inside a barrier, so napari's window is not re-laid out
    v = QVBoxLayout(status)
    v.setContentsMargins(0, 0, 0, 0)
    v.addWidget(w.save_label)
    v.addWidget(w.message_label)
    outer.addWidget(LayoutBarrier(status))
    w.setMaximumWidth(520)


def rater_colour(i: int) -> str:
    """The colour of the ``i``-th rater layer (as :class:`.annotator_layers.ClipLayers` gives it)."""
    return _RATER_COLOURS[i % len(_RATER_COLOURS)]


def show_rater_legend(w) -> None:
    """Colour the pick list's raters as their layers and write the legend under it.

    The pick list holds the review layers' raters in layer order, so item ``i`` has the colour
    of layer ``i``; the legend follows every refill of the list.
    """
    combo = w.pick_combo
    names = [combo.itemText(i) for i in range(combo.count())]
    for i in range(len(names)):
        combo.setItemData(i, QColor(rater_colour(i)), Qt.ItemDataRole.DecorationRole)
    if not names:
        w.rater_legend.setText("No other rater has annotated this clip." if w.ctl.session else "")
        return
    w.rater_legend.setText(
        "Layers: "
        + " ".join(f'<span style="color: {rater_colour(i)}">■</span>&nbsp;{name}' for i, name in enumerate(names))
    )


def follow_clip(w) -> None:
    """Keep the clip's status lines true: when no clip is open (closed, or the next one failed
    to open) they say so instead of describing the clip that was open before."""

    def on_event(name: str) -> None:
        if name != "clip" or w.ctl.session is not None:
            return
        w.clip_label.setText("No clip open.")
        for label in (
            w.frame_label,
            w.ranges_label,
            w.save_label,
            w.measure_label,
            w.excursion_label,
            w.unit_label,
            w.rater_legend,
        ):
            label.setText("")
        w.track_label.clear()
        w._track_key = None  # drawn again by the next clip's first frame
        w._record = (None, {})  # the next clip's record is read afresh (a fixed registry shows)
        w.comment_edit.setText("")
        w.measure_table.setRowCount(0)

    w.ctl.on(on_event)


def track_pixmap(
    codes: np.ndarray, non_standard: np.ndarray, current: int, width: int = 320, empty: np.ndarray | None = None
) -> QPixmap:
    """Two-row strip: provenance per frame on top, non-standard frames below, a tick at ``current``.

    ``empty`` ((T,) bool): frames traced as 'no nerve' (an empty mask) show their provenance as a
    thin line only, so a model that found nothing does not paint the strip as if it had proposed
    a nerve everywhere.
    """
    n = max(len(codes), 1)
    top = TRACK_COLOURS[np.asarray(codes, dtype=int)]  # -1 indexes the last (unannotated) colour
    bottom = np.where(np.asarray(non_standard, bool)[:, None], NON_STANDARD_COLOUR, (35, 35, 40))
    strip = np.concatenate([np.repeat(top[None], 10, 0), np.repeat(bottom[None], 4, 0)]).astype(np.uint8)
    if empty is not None:
        strip[3:10, np.asarray(empty, bool)] = TRACK_COLOURS[-1]
    cols = np.minimum((np.arange(width) * n) // width, n - 1)
    img = np.ascontiguousarray(strip[:, cols])
    if 0 <= current < n:
        lo, hi = (current * width) // n, max((current * width) // n + 1, ((current + 1) * width) // n)
        img[:, lo:hi] = (255, 255, 255)
        img[3:11, lo:hi] = 0
    qimg = QImage(img.data, img.shape[1], img.shape[0], img.strides[0], QImage.Format.Format_RGB888)
    return QPixmap.fromImage(qimg.copy())
