"""Synthetic median-nerve ultrasound: seeded B-mode phantom clips and whole DICOM studies.

No public median-nerve dataset can be downloaded, so tests, the demo and the napari sample data
use these. :func:`generate_clip` makes one clip with exact ground truth (nerve masks, plane labels
with short out-of-plane runs labelled ``NON_STANDARD``, frame quality); :func:`write_study`
writes a multi-participant study as real multi-frame DICOM files plus its ground truth (layout in
docs/ARCHITECTURE.md). Light to import (pydicom and pandas load only when a study is written);
never imports torch.
"""

from .generate import PhantomClip, generate_clip
from .study import write_study

__all__ = ["PhantomClip", "generate_clip", "write_study"]
