"""napari-ultramn: median-nerve ultrasound video annotation, agreement, datasets and the UltraMN model.

Importing this package is light: it never imports napari, Qt or torch. The napari plugin lives in
the ``_reader``, ``_writer``, ``_sample_data`` and ``_widgets`` modules, which napari imports
on demand through the manifest ``napari.yaml``.
"""

__version__ = "0.1.0"

#: Default plane vocabulary of the UltraMN protocol; projects may define their own.
DEFAULT_PLANES = (
    "transverse_wrist",
    "transverse_forearm",
    "longitudinal_wrist",
    "longitudinal_forearm",
)
#: Label for frames (or clips) where the probe has left every standard plane.
NON_STANDARD = "non_standard"
