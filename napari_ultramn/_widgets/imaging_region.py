"""Imaging-region dock widget: see the UNCROPPED source frame with the detected region, correct it.

For a data manager checking what ingest will keep of a screen recording: "Detect" opens the
source uncropped, runs :func:`napari_ultramn.io.screen_region.detect_imaging_area` on a sample of
its frames and shows the region as a rectangle (Shapes) with the blanked pixels (overlays inside
it, corners outside a fan) as a Labels overlay. Drag or resize the rectangle, then "Save
correction" stores it in ``PROJECT/region_corrections.json`` (:mod:`napari_ultramn.region_corrections`),
which ingest applies before anything else. Only translates between the viewer and the core.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtWidgets import QFileDialog, QFormLayout, QLabel, QLineEdit, QPushButton, QWidget

from ..errors import UltramnError
from .layout import row

if TYPE_CHECKING:
    import napari

SHAPES_NAME = "imaging region"
BLANKED_NAME = "blanked"
SAMPLE_FRAMES = 32


class ImagingRegionWidget(QWidget):
    """Project folder, source file, Detect, Save correction, and a status line."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = viewer
        self.clip = None
        self.area = None
        self.project_edit = QLineEdit()
        self.project_edit.setPlaceholderText("annotation project folder")
        self.project_button = QPushButton("Browse...")
        self.source_edit = QLineEdit()
        self.source_edit.setPlaceholderText("source recording (mp4, DICOM, PNG folder ...)")
        self.source_button = QPushButton("Browse...")
        self.note_edit = QLineEdit()
        self.note_edit.setPlaceholderText("why the correction (optional)")
        self.detect_button = QPushButton("Detect")
        self.save_button = QPushButton("Save correction")
        self.save_button.setEnabled(False)
        self.status = QLabel("Choose a source file and press Detect.")
        self.status.setWordWrap(True)

        form = QFormLayout(self)
        form.addRow("Project", row(self.project_edit, self.project_button))
        form.addRow("Source", row(self.source_edit, self.source_button))
        form.addRow("Note", self.note_edit)
        form.addRow(row(self.detect_button, self.save_button))
        form.addRow(self.status)

        self.project_button.clicked.connect(self._browse_project)
        self.source_button.clicked.connect(self._browse_source)
        self.detect_button.clicked.connect(self.detect)
        self.save_button.clicked.connect(self.save)

    def _browse_project(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Annotation project")
        if folder:
            self.project_edit.setText(folder)

    def _browse_source(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Source recording")
        if path:
            self.source_edit.setText(path)

    def detect(self) -> None:
        from ..io import open_clip
        from ..io.screen_region import MIN_CONFIDENCE, detect_imaging_area

        try:
            clip = open_clip(self.source_edit.text().strip())
            index = np.linspace(0, clip.n_frames - 1, min(SAMPLE_FRAMES, clip.n_frames)).round()
            area = detect_imaging_area(clip.frames[index.astype(int)])
        except UltramnError as exc:
            self.status.setText(str(exc))
            return
        self.clip, self.area = clip, area
        for name in (SHAPES_NAME, BLANKED_NAME, "source"):
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
        self.viewer.add_image(clip.frames, name="source")
        blanked = np.zeros(clip.frame_shape, np.uint8)
        r = area.region
        blanked[r.top : r.bottom, r.left : r.right] = ~area.keep_mask
        self.viewer.add_labels(blanked, name=BLANKED_NAME, opacity=0.4)
        corners = np.array([[r.top, r.left], [r.top, r.right], [r.bottom, r.right], [r.bottom, r.left]], float)
        layer = self.viewer.add_shapes(
            [corners],
            shape_type="rectangle",
            name=SHAPES_NAME,
            edge_color="yellow",
            face_color="transparent",
            edge_width=3,
        )
        layer.mode = "select"
        self.save_button.setEnabled(True)
        verdict = "refused by ingest" if area.confidence < MIN_CONFIDENCE else "accepted"
        self.status.setText(
            f"{area.reason} (confidence {area.confidence:.2f}, {verdict}). "
            "Drag the yellow rectangle, then Save correction."
        )

    def drawn_region(self):
        """The rectangle in the Shapes layer, clipped to the frame, as a Region."""
        from ..io import Region

        corners = np.asarray(self.viewer.layers[SHAPES_NAME].data[0])[:, -2:]
        h, w = self.clip.frame_shape
        top, left = np.clip(np.floor(corners.min(axis=0)).astype(int), 0, [h, w])
        bottom, right = np.clip(np.ceil(corners.max(axis=0)).astype(int), 0, [h, w])
        return Region(int(top), int(left), int(bottom), int(right))

    def save(self) -> None:
        from ..region_corrections import save_correction

        if self.clip is None or SHAPES_NAME not in self.viewer.layers or not len(self.viewer.layers[SHAPES_NAME].data):
            self.status.setText("Detect first, and keep one rectangle in the 'imaging region' layer.")
            return
        project = self.project_edit.text().strip()
        if not project:
            self.status.setText("Choose the project folder the correction belongs to.")
            return
        region = self.drawn_region()
        try:
            save_correction(project, self.clip.sha256, region, note=self.note_edit.text())
        except UltramnError as exc:
            self.status.setText(str(exc))
            return
        self.status.setText(
            f"Saved region {region.as_list()} for {self.clip.source_path.name}; re-ingest to re-crop the clip."
        )
