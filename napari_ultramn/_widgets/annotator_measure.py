"""Live measurement of the current frame and the clip table, in mm (or px, said so).

Measurements are cached per frame and recomputed only for frames whose mask object changed
(FrameMasks are replaced, never mutated), so painting one frame of a 300-frame clip re-measures
one frame, not 300. The clip table follows edits after a short pause (:data:`TABLE_DELAY_MS`):
an interpolation or a propagation fills tens of frames at once, and measuring them all before the
masks show made the dock several times slower than the core; the current frame's figures are
always shown at once.
"""

from __future__ import annotations

import math

import pandas as pd
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QTableWidgetItem

from ..annotation.measure import centroid_excursion, measure_mask

_COLUMNS = ("frame", "provenance", "area", "perimeter", "flattening", "circularity")
#: the clip table is refilled this long after the last edit (the rater's eyes are on the image)
TABLE_DELAY_MS = 300


def _fmt(v, digits: int = 2) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


class MeasurementView:
    """Fills the widget's ``unit_label``, ``measure_label``, ``excursion_label``, ``measure_table``."""

    def __init__(self, widget):
        self.w = widget
        self._cache: dict[int, tuple[object, dict]] = {}
        self.unit = "px"
        self._pending = None  # the session whose table is out of date
        self._timer = QTimer(widget)
        self._timer.setSingleShot(True)
        self._timer.setInterval(TABLE_DELAY_MS)
        self._timer.timeout.connect(self._edits_paused)

    def reset(self, session) -> None:
        self._cache.clear()
        clip = session.clip
        self.unit = clip.spacing_unit
        if clip.spacing_mm:
            r, c = clip.spacing_mm
            self.w.unit_label.setText(f"Units: mm (pixel {r:.3f} × {c:.3f} mm, from {clip.spacing_source})")
        else:
            self.w.unit_label.setText("Units: px — this clip has no calibration, so nothing is in mm")
        u = self.unit
        tab = self.w.measure_table
        # Short headings (the dock is narrow); the whole name is the heading's tooltip.
        heads = (
            ("frame", "frame (1-based)"),
            ("source", "how the mask was made"),
            (f"area {u}²", f"area {u}²"),
            (f"perim. {u}", f"perimeter {u}"),
            ("flat.", "flattening"),
            ("circ.", "circularity"),
        )
        tab.setHorizontalHeaderLabels([short for short, _ in heads])
        for j, (_short, full) in enumerate(heads):
            tab.horizontalHeaderItem(j).setToolTip(full)

    def _measure(self, session) -> dict[int, dict]:
        frames = session.annotation.frames
        for t in list(self._cache):
            if t not in frames:
                del self._cache[t]
        for t, fm in frames.items():
            cached = self._cache.get(t)
            if cached is None or cached[0] is not fm:
                self._cache[t] = (fm, measure_mask(fm.mask, session.clip.spacing_mm).as_dict())
        return {t: self._cache[t][1] for t in sorted(frames)}

    def table(self, session) -> pd.DataFrame:
        """The clip's measurements (one row per annotated frame), columns named with units."""
        rows = []
        for t, m in self._measure(session).items():
            rows.append({"frame": t, "provenance": session.annotation.frames[t].provenance, **m})
        return pd.DataFrame(rows)

    def update(self, session) -> None:
        """The clip table is out of date: refill it once edits pause (or at :meth:`flush`)."""
        self._pending = session
        self._timer.start()

    def _edits_paused(self) -> None:
        if not self.w.defer_while_working(self._timer):
            self.flush()

    def flush(self) -> None:
        """Refill the clip table now if an edit left it out of date."""
        self._timer.stop()
        session, self._pending = self._pending, None
        if session is not None and session is self.w.session:
            self._fill(session)

    def _fill(self, session) -> None:
        df = self.table(session)
        u = self.unit
        tab = self.w.measure_table
        tab.setRowCount(len(df))
        keys = ("frame", "provenance", f"area_{u}2", f"perimeter_{u}", "flattening", "circularity")
        for i, row in enumerate(df.itertuples(index=False)):
            values = row._asdict()
            for j, key in enumerate(keys):
                v = values[key]
                text = str(v + 1) if key == "frame" else v if isinstance(v, str) else _fmt(v)
                tab.setItem(i, j, QTableWidgetItem(text))
        if len(df) >= 2:
            ex = centroid_excursion(df)
            self.w.excursion_label.setText(
                f"Centroid excursion over {ex['n_frames']} frames: max {_fmt(ex[f'max_displacement_{u}'])} {u}"
                f" (frame {int(ex['frame_of_max_displacement']) + 1}), path {_fmt(ex[f'path_length_{u}'])} {u}"
            )
        else:
            self.w.excursion_label.setText("Centroid excursion: trace two or more frames")

    def show_frame(self, session, t: int) -> None:
        u = self.unit
        cached = self._cache.get(t)
        fm = session.annotation.frames.get(t)
        if fm is None:
            self.w.measure_label.setText(f"Frame {t + 1}: not traced")
            return
        if cached and cached[0] is fm:
            m = cached[1]
        else:  # kept: the next action on this frame (an interpolation elsewhere) shows it again
            m = measure_mask(fm.mask, session.clip.spacing_mm).as_dict()
            self._cache[t] = (fm, m)
        self.w.measure_label.setText(
            f"<b>Frame {t + 1}</b>: area <b>{_fmt(m[f'area_{u}2'])} {u}²</b> · perimeter "
            f"{_fmt(m[f'perimeter_{u}'])} {u} · flattening {_fmt(m['flattening'])} · circularity "
            f"{_fmt(m['circularity'])} · centroid ({_fmt(m[f'centroid_row_{u}'], 1)}, "
            f"{_fmt(m[f'centroid_col_{u}'], 1)}) {u}"
        )
