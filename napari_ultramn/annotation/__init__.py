"""Annotations: per-rater, per-clip plane labels and nerve masks with provenance.

The algorithms (interpolation, propagation, measurement, export) are exported lazily so importing
this package stays cheap (no scikit-image, pandas or highdicom until they are used).
"""

from .clip_annotation import PROVENANCES, ClipAnnotation, FrameMask, PlaneRange
from .rle import rle_decode, rle_encode
from .store import AnnotationStore

_LAZY = {
    "interpolate_masks": "interpolate",
    "fill_between_keyframes": "interpolate",
    "propagate_mask": "propagate",
    "PropagationResult": "propagate",
    "measure_mask": "measure",
    "measure_clip": "measure",
    "centroid_excursion": "measure",
    "export_png_sequence": "export",
    "export_dicom_seg": "export",
}

__all__ = [
    "PROVENANCES",
    "ClipAnnotation",
    "FrameMask",
    "PlaneRange",
    "rle_decode",
    "rle_encode",
    "AnnotationStore",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
