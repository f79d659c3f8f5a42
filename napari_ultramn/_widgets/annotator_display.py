"""The dock's "View" section: window/level, nerve outline or filled, cine, caliper, strip clicks.

How a rater likes to see a clip is saved per clip and per rater through the Qt-free
:mod:`napari_ultramn.annotation.view_settings` and restored when the clip is reopened.

Right-drag sets window/level (horizontal = width, vertical = level) when napari would only
zoom with it: the clip image is the active layer, or the nerve / polygon / caliper layer is in
pan-zoom mode (holding Space while painting is pan-zoom too). In paint mode napari's right-drag
is its encircle-and-fill stroke and fill/erase act on any button, so those are left to napari,
as is every right-drag with a modifier and every other layer. The wheel still zooms.

``AnnotatorWidget`` calls :meth:`DisplayTools.clip_opened` once a clip's layers are shown and
:meth:`DisplayTools.clip_closed` before they go; nothing else here depends on how it makes them.
"""

from __future__ import annotations

from qtpy.QtCore import QEvent, QObject, Qt, QTimer
from qtpy.QtWidgets import QComboBox, QLabel, QPushButton, QWidget

from ..annotation import view_settings as vs
from ..errors import UltramnError
from .annotator_caliper import Caliper, same_layer
from .annotator_cine import Cine, column, toggle_button
from .layout import row

_SAVE_DELAY_MS = 400  # a drag changes the limits many times a second: save once it pauses
_PAN_ZOOM_ROLES = ("nerve", "outline")


def build_view_section(w) -> QWidget:
    """Create ``w.display`` and its controls; returns the body of the dock's "View" section."""
    w.display = DisplayTools(w)
    return w.display.body


def _camera(viewer):
    return viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera


class DisplayTools:
    """Window/level, nerve display, cine and caliper of the open clip."""

    def __init__(self, widget):
        self.w = w = widget
        self.cine = Cine(w)
        self.caliper = Caliper(w)
        self.settings = vs.ViewSettings()
        self.session = None
        self.layers: dict = {}
        self._range = (0.0, 255.0)
        self._sample = None
        self._applying = False
        self._save_timer = QTimer(w)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(_SAVE_DELAY_MS)
        self._save_timer.timeout.connect(self.save)
        self.body = self._build()
        # The key table names widget methods: these are the View section's.
        w.key_cine = self.cine.toggle
        w.key_nerve_outline = w.outline_button.toggle
        w.key_next_preset = self.next_preset
        w.key_reset_window = self.reset_window
        w.key_caliper = self.caliper.toggle
        self._strip = _StripClicks(w)
        w.track_label.installEventFilter(self._strip)
        w.track_label.setCursor(Qt.CursorShape.PointingHandCursor)
        w.track_label.setToolTip(w.track_label.toolTip() + "; click or drag to go to a frame")

    def _build(self) -> QWidget:
        w = self.w
        w.wl_preset_combo = QComboBox()
        w.wl_preset_combo.addItems(list(vs.PRESETS))
        w.wl_preset_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)  # names whole
        w.wl_preset_combo.setPlaceholderText("set by hand")
        w.wl_preset_combo.setToolTip(
            "window/level preset (Shift-W: next); right-drag on the image sets "
            "it by hand (in pan-zoom or holding Space)"
        )
        w.wl_preset_combo.activated.connect(lambda i: self.apply_preset(w.wl_preset_combo.itemText(i)))
        w.wl_reset_button = QPushButton("Reset")
        w.wl_reset_button.setToolTip("full grey range (Shift-R)")
        w.wl_reset_button.clicked.connect(self.reset_window)
        w.wl_label = QLabel("")
        w.wl_label.setWordWrap(True)
        w.outline_button = toggle_button(
            "Outline only", "show the nerve as its outline instead of filled (Shift-O)", self._on_outline
        )
        return column(
            w.wl_preset_combo,
            w.wl_label,
            row(w.wl_reset_button, w.outline_button),
            self.cine.build(),
            self.caliper.build(),
        )

    # -- clip ------------------------------------------------------------------------------
    def clip_opened(self, session, layers: dict) -> None:
        """Show ``session``'s clip as this rater left it; start listening to the view."""
        self.session, self.layers = session, layers
        image = layers["image"]
        self._sample = None
        self._range = vs.data_range(image.dtype if hasattr(image, "dtype") else image.data.dtype)
        default = vs.ViewSettings(preset=vs.DEFAULT_PRESET)
        try:
            self.settings = vs.load_view(session.project.root, session.clip_id, session.user) or default
        except UltramnError as exc:  # a preference, not data: say so and start from the defaults
            self.settings = default
            self.w.error(f"{exc} (view settings: using the defaults; the next change replaces the file)")
        self._applying = True
        try:
            image.contrast_limits = self.settings.contrast_limits or self._limits(vs.DEFAULT_PRESET)
            self.w.outline_button.setChecked(self.settings.nerve_display == "outline")
            self._show_nerve_display()
        finally:
            self._applying = False
        self._show_window()
        image.events.contrast_limits.connect(self._on_limits)
        self.w.viewer.mouse_drag_callbacks.append(self._on_drag)
        self.w.viewer.dims.events.current_step.connect(self.caliper.update)
        self.cine.clip_opened(session, layers)
        self.caliper.clip_opened(session, layers)

    def clip_closed(self) -> None:
        """Stop playback, save what is pending, let go of the layers (they may be reused)."""
        self.cine.clip_closed()
        self.caliper.clip_closed()
        if self.session is None:
            return
        if self._save_timer.isActive():
            self._save_timer.stop()
            self.save()
        viewer = self.w.viewer
        self.layers["image"].events.contrast_limits.disconnect(self._on_limits)
        if self._on_drag in viewer.mouse_drag_callbacks:
            viewer.mouse_drag_callbacks.remove(self._on_drag)
        viewer.dims.events.current_step.disconnect(self.caliper.update)
        self.session, self.layers = None, {}

    def save(self) -> None:
        s = self.session
        if s is None:
            return
        try:
            vs.save_view(s.project.root, s.clip_id, s.user, self.settings)
        except UltramnError as exc:
            self.w.error(exc)

    # -- window / level ----------------------------------------------------------------------
    def _limits(self, preset: str) -> tuple[float, float]:
        if self._sample is None and preset != vs.DEFAULT_PRESET:
            self._sample = vs.sample_frames(self.session.clip.frames)
        return vs.preset_limits(preset, self._sample, self._range)

    def apply_preset(self, name: str) -> None:
        if self.session is None:
            self.w.error("Open a clip first.")
            return
        self.set_limits(self._limits(name), preset=name)

    def next_preset(self) -> None:
        names = list(vs.PRESETS)
        current = self.settings.preset
        self.apply_preset(names[(names.index(current) + 1) % len(names)] if current in names else names[0])

    def reset_window(self) -> None:
        self.apply_preset(vs.DEFAULT_PRESET)

    def set_limits(self, limits, preset: str | None = None) -> None:
        """Show ``limits`` on the clip image and save them (``preset``: where they came from)."""
        self._applying = True
        try:
            self.layers["image"].contrast_limits = tuple(float(v) for v in limits)
        finally:
            self._applying = False
        self._changed(preset)

    def _on_limits(self, *_args) -> None:
        if not self._applying:  # napari's own contrast slider, or a right-drag: by hand
            self._changed(None)

    def _changed(self, preset: str | None) -> None:
        self.settings.contrast_limits = tuple(float(v) for v in self.layers["image"].contrast_limits)
        self.settings.preset = preset
        self._show_window()
        self._save_timer.start()

    def _show_window(self) -> None:
        combo = self.w.wl_preset_combo
        combo.setCurrentIndex(combo.findText(self.settings.preset) if self.settings.preset else -1)
        if "image" in self.layers:
            width, level = vs.limits_to_window(self.layers["image"].contrast_limits)
            self.w.wl_label.setText(f"Window {width:.0f} · level {level:.0f} ({self.settings.preset or 'set by hand'})")

    def takes_right_drag(self) -> bool:
        """True where napari's right-drag would only zoom (see the module docstring)."""
        active = self.w.viewer.layers.selection.active
        if active is None or not self.layers:
            return False
        if same_layer(active, self.layers.get("image")):
            return True
        ours = [self.layers.get(r) for r in _PAN_ZOOM_ROLES] + [self.caliper.layer]
        return any(same_layer(active, lay) for lay in ours) and str(active.mode) == "pan_zoom"

    def _on_drag(self, viewer, event):
        if event.button != 2 or event.modifiers or not self.takes_right_drag():
            return
        event.handled = True  # napari's canvas then keeps the press from the camera
        camera = _camera(viewer)
        pan = camera.mouse_pan
        camera.mouse_pan = False  # and the moves too (napari throttles them, so 'handled' comes late)
        start, limits = event.pos, tuple(self.layers["image"].contrast_limits)
        try:
            yield
            while event.type == "mouse_move":
                dx, dy = (float(v) for v in (event.pos - start)[:2])
                self.layers["image"].contrast_limits = vs.drag_window(limits, dx, dy, self._range)
                event.handled = True
                yield
        finally:
            camera.mouse_pan = pan

    # -- nerve display ------------------------------------------------------------------------
    def _on_outline(self, on: bool) -> None:
        self.settings.nerve_display = "outline" if on else "filled"
        self._show_nerve_display()
        if self.session is not None and not self._applying:
            self._save_timer.start()

    def _show_nerve_display(self) -> None:
        nerve = self.layers.get("nerve")
        outline = self.settings.nerve_display == "outline"
        self.w.outline_button.setText("Filled" if outline else "Outline only")
        if nerve is not None:
            # A line one screen-ish pixel wide on small frames, thicker on big ones.
            nerve.contour = max(1, min(nerve.data.shape[-2:]) // 200) if outline else 0


class _StripClicks(QObject):
    """A press or drag on the provenance strip goes to the frame under the mouse."""

    def __init__(self, widget):
        super().__init__(widget)
        self.w = widget

    def eventFilter(self, obj, ev) -> bool:  # noqa: N802 (Qt's name)
        kind = ev.type()
        dragging = kind == QEvent.Type.MouseMove and ev.buttons() & Qt.MouseButton.LeftButton
        pressed = kind == QEvent.Type.MouseButtonPress and ev.button() == Qt.MouseButton.LeftButton
        if not (pressed or dragging) or self.w.session is None:
            return False
        pixmap = obj.pixmap()
        width = pixmap.width() if pixmap is not None and not pixmap.isNull() else obj.width()
        self.w.go_to_frame(
            strip_frame(
                ev.position().x() if hasattr(ev, "position") else ev.x(), width, self.w.session.annotation.n_frames
            )
        )
        return True


def strip_frame(x: float, width: int, n_frames: int) -> int:
    """Frame under pixel column ``x`` of a strip ``width`` px wide (as ``track_pixmap`` draws it)."""
    return int(min(max(int(x), 0) * n_frames // max(width, 1), n_frames - 1))
