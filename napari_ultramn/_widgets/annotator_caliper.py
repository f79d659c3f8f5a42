"""A caliper: lines drawn on a frame, each labelled with its length in mm (or px, said so).

The lines live in their own napari Shapes layer (``caliper``), made the first time the caliper
is turned on and removed with the clip: a measurement aid, never part of the annotation. Lengths
come from :func:`napari_ultramn.annotation.measure.line_length`, in physical coordinates (pixels
need not be square). An uncalibrated clip says ``px (not calibrated)`` beside every number.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QLabel, QPushButton, QWidget

from ..annotation.measure import line_length
from .annotator_cine import column, toggle_button
from .layout import row

CALIPER = "caliper"
_COLOUR = "#3cff8c"


def same_layer(a, b) -> bool:
    """``a is b`` through napari's plugin proxies (each access to a layer may give a new proxy)."""
    return a is not None and b is not None and getattr(a, "__wrapped__", a) is getattr(b, "__wrapped__", b)


def length_text(length: float, unit: str) -> str:
    return f"{length:.2f} mm" if unit == "mm" else f"{length:.1f} px (not calibrated)"


def line_lengths(layer, spacing_mm) -> list[tuple[int | None, str]]:
    """``(frame or None, text)`` for each shape of the caliper layer ('' for a shape that is not a line)."""
    out = []
    for verts, kind in zip(layer.data, layer.shape_type):
        verts = np.asarray(verts, float)
        frame = int(round(verts[0, 0])) if verts.shape[1] == 3 else None
        if kind != "line" or len(verts) < 2:
            out.append((frame, ""))
            continue
        out.append((frame, length_text(*line_length(verts[0], verts[-1], spacing_mm))))
    return out


class Caliper:
    """Builds ``caliper_button``, ``caliper_clear_button`` and ``caliper_label`` on the widget."""

    def __init__(self, widget):
        self.w = widget
        self.layer = None
        self.session = None
        self._before = None  # the layer that was active before the caliper took the mouse

    def build(self) -> QWidget:
        w = self.w
        w.caliper_button = toggle_button(
            "Caliper", "draw lines to measure (press, drag, release) on the image (Shift-M)", self._on_button
        )
        w.caliper_clear_button = QPushButton("Clear lines")
        w.caliper_clear_button.clicked.connect(self.clear)
        w.caliper_label = QLabel("Caliper: off")
        w.caliper_label.setWordWrap(True)
        return column(row(w.caliper_button, w.caliper_clear_button), w.caliper_label)

    def clip_opened(self, session, layers: dict) -> None:
        self.session = session
        self.update()

    def clip_closed(self) -> None:
        self._set_on(False)
        if self.layer is not None:
            self.layer.events.data.disconnect(self._on_data)
            if self.layer in self.w.viewer.layers:
                self.w.viewer.layers.remove(self.layer)
        self.layer, self.session = None, None
        self.w.caliper_label.setText("Caliper: off")

    def toggle(self) -> None:
        self.w.caliper_button.toggle()

    def clear(self) -> None:
        if self.layer is not None:
            self.layer.data = []
        self.update()

    def _on_button(self, on: bool) -> None:
        if on and self.session is None:
            self.w.error("Open a clip first.")
            self._set_on(False)
            return
        viewer = self.w.viewer
        if on:
            self._before = viewer.layers.selection.active
            layer = self._layer()
            viewer.layers.selection.active = layer
            layer.mode = "add_line"
        elif self.layer is not None and self.layer in viewer.layers:
            self.layer.mode = "pan_zoom"
            before = self._before if self._before in viewer.layers else self.w.layers.get("nerve")
            if before is not None and same_layer(viewer.layers.selection.active, self.layer):
                viewer.layers.selection.active = before
        self.update()

    def _set_on(self, on: bool) -> None:
        self.w.caliper_button.blockSignals(True)
        self.w.caliper_button.setChecked(on)
        self.w.caliper_button.blockSignals(False)

    def _layer(self):
        if self.layer is None or self.layer not in self.w.viewer.layers:
            image = self.w.layers["image"]
            self.layer = self.w.viewer.add_shapes(
                ndim=3,
                name=CALIPER,
                scale=image.scale,
                edge_color=_COLOUR,
                edge_width=1,
                features={"length": np.array([], dtype=object)},
                text={"string": "{length}", "color": _COLOUR, "size": 10, "anchor": "upper_left"},
            )
            self.layer.events.data.connect(self._on_data)
        return self.layer

    def _on_data(self, event) -> None:
        # napari sends 'added' from inside its own drawing code: relabel once it has finished.
        QTimer.singleShot(0, self.update)

    def update(self, *_args) -> None:
        """Relabel every line and show the current frame's lengths in the dock."""
        w = self.w
        if self.session is None:
            return
        state = "on: press, drag and release on the image" if w.caliper_button.isChecked() else "off"
        if self.layer is None or self.layer not in w.viewer.layers:
            w.caliper_label.setText(f"Caliper {state}.")
            return
        lengths = line_lengths(self.layer, self.session.clip.spacing_mm)
        texts = [text for _t, text in lengths]
        if list(self.layer.features.get("length", [])) != texts:
            self.layer.features = {"length": np.array(texts, dtype=object)}
        t = w.current_frame
        here = [text for frame, text in lengths if text and frame in (t, None)]
        shown = " · ".join(here) if here else "no line on this frame"
        w.caliper_label.setText(f"Caliper {state}. Frame {t + 1}: {shown}")
