"""Annotations: per-rater, per-clip plane labels and nerve masks with provenance."""

from .model import PROVENANCES, ClipAnnotation, FrameMask, PlaneRange
from .rle import rle_decode, rle_encode
from .store import AnnotationStore

__all__ = [
    "PROVENANCES", "ClipAnnotation", "FrameMask", "PlaneRange", "rle_decode", "rle_encode",
    "AnnotationStore",
]
