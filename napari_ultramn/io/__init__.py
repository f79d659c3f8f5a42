"""Reading ultrasound clips: DICOM, video files, frame folders and our own HDF5 clips."""

from .clip import Clip, LazyFrames, Region, clip_from_array
from .open_clip import open_clip

__all__ = ["Clip", "LazyFrames", "Region", "clip_from_array", "open_clip"]
