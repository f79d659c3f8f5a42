"""Export nerve masks: PNG sequences and DICOM Segmentation objects that reference the source cine.

DICOM SEG (highdicom): one BINARY segment "Median nerve" (SNOMED CT 'Anatomical Structure' /
56459004 'Median nerve'), one segmentation frame per source frame, frame ``i`` referencing frame
``i + 1`` of the source multi-frame ultrasound instance (Derivation Image Sequence > Source Image
Sequence > ReferencedFrameNumber).

Ultrasound cines have no Frame of Reference (no patient-space geometry), and highdicom 0.28 builds
SEGs of such sources for a single frame only (open issue ImagingDataCommons/highdicom#284). The
workaround, following D. Clunie's advice in highdicom#159 (without a Frame of Reference, frame
correspondence is carried by the per-frame derivation references): highdicom builds and checks
a one-frame SEG from the source presented as a single-frame US image; we then restore the real SOP
class, replicate the per-frame functional groups with one ReferencedFrameNumber each, add a
Temporal Position Index dimension so every frame's dimension index is unique, and pack all frames.
``highdicom.seg.segread(...).get_pixels_by_source_frame`` reads the result back frame by frame.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..atomic import atomic_path, atomic_write_bytes
from ..errors import InputError

_US_SINGLE_FRAME = "1.2.840.10008.5.1.4.1.1.6.1"  # Ultrasound Image Storage
#: Type 2 Patient/General Study attributes highdicom reads from the source without a default.
_TYPE2_COPIED = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
)


def _as_frame_dict(masks) -> dict[int, np.ndarray]:
    if isinstance(masks, Mapping):
        out = {int(t): np.asarray(m, dtype=bool) for t, m in masks.items()}
    else:
        stack = np.asarray(masks)
        if stack.ndim != 3:
            raise ValueError(f"masks must be (T, H, W) or a dict of (H, W) masks, got shape {stack.shape}")
        out = {t: stack[t].astype(bool, copy=False) for t in range(stack.shape[0])}
    for t, m in out.items():
        if m.ndim != 2:
            raise ValueError(f"frame {t}: a mask must be 2D (H, W), got shape {m.shape}")
        if t < 0:
            raise ValueError(f"frame indices must be >= 0, got {t}")
    return out


def export_png_sequence(masks, out_dir: str | Path, *, prefix: str = "mask_") -> list[Path]:
    """Write one 8-bit PNG per frame (0 background, 255 nerve) into ``out_dir``.

    ``masks`` is a ``(T, H, W)`` bool array or ``{frame: (H, W) mask}``. Files are named
    ``<prefix><frame>.png`` with the frame index zero-padded (at least 4 digits) so they sort in
    frame order. Each file is written atomically. Returns the paths in frame order.
    """
    import imageio.v3 as iio

    frames = _as_frame_dict(masks)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    width = max(4, len(str(max(frames, default=0))))
    paths = []
    for t in sorted(frames):
        png = iio.imwrite("<bytes>", frames[t].astype(np.uint8) * 255, extension=".png")
        path = out_dir / f"{prefix}{t:0{width}d}.png"
        atomic_write_bytes(path, png)
        paths.append(path)
    return paths


def _median_nerve_segment(rater: str):
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.sr.coding import Code

    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="Median nerve",
        segmented_property_category=codes.SCT.AnatomicalStructure,
        # SNOMED CT 56459004 'Median nerve structure'
        segmented_property_type=Code("56459004", "SCT", "Median nerve"),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )
    if rater:
        # who traced it travels in the segment description, which viewers show beside the label
        description.SegmentDescription = f"traced by {rater}"[:64]
    return description


def _pad_to_frame(masks: np.ndarray, frame_shape: tuple[int, int], crop_region, path) -> np.ndarray:
    """Place cropped ``(T, h, w)`` masks at ``crop_region`` [top, left, bottom, right] in full frames."""
    if crop_region is None:
        if masks.shape[1:] != frame_shape:
            raise InputError(
                path,
                f"masks of frame shape {masks.shape[1:]} do not match the source frames {frame_shape}; "
                "pass crop_region=[top, left, bottom, right] for masks in cropped coordinates",
            )
        return masks
    top, left, bottom, right = (int(v) for v in crop_region)
    if not (0 <= top < bottom <= frame_shape[0] and 0 <= left < right <= frame_shape[1]):
        raise ValueError(f"crop_region {list(crop_region)} does not fit source frames {frame_shape}")
    if (bottom - top, right - left) != masks.shape[1:]:
        raise ValueError(
            f"crop_region {list(crop_region)} is {bottom - top}x{right - left} but the masks are "
            f"{masks.shape[1]}x{masks.shape[2]}"
        )
    full = np.zeros((masks.shape[0], *frame_shape), dtype=bool)
    full[:, top:bottom, left:right] = masks
    return full


def export_dicom_seg(
    masks: np.ndarray,
    source_dicom: str | Path,
    out_path: str | Path,
    *,
    crop_region: list[int] | None = None,
    series_description: str = "Median nerve",
    rater: str = "",
) -> Path:
    """Write a DICOM Segmentation of ``masks`` referencing ``source_dicom``; returns ``out_path``.

    ``masks`` is ``(T, H, W)`` bool with one frame per source frame (an all-False frame means no
    nerve there). Masks drawn on the imaging region only (a clip opened with
    ``crop_to_region=True``) are padded back into the full frame with ``crop_region`` =
    ``[top, left, bottom, right]`` in source pixel coordinates. The SEG is BINARY with one segment
    'Median nerve'; frames without any nerve are still written so frame numbers match the source.
    """
    import highdicom as hd
    import pydicom
    from pydicom.errors import InvalidDicomError

    source_dicom = Path(source_dicom)
    try:
        source = pydicom.dcmread(source_dicom, stop_before_pixels=True)
    except (InvalidDicomError, OSError) as exc:
        raise InputError(source_dicom, f"cannot read the source DICOM ({exc})") from None
    rows, cols = int(source.get("Rows", 0)), int(source.get("Columns", 0))
    n_frames = int(source.get("NumberOfFrames", 1) or 1)
    if not rows or not cols:
        raise InputError(source_dicom, "the source DICOM has no image (Rows/Columns missing)")
    masks = np.asarray(masks)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3:
        raise ValueError(f"masks must be (T, H, W), got shape {masks.shape}")
    if masks.shape[0] != n_frames:
        raise InputError(
            source_dicom,
            f"the source has {n_frames} frames but {masks.shape[0]} masks were given; export one mask per source frame",
        )
    full = _pad_to_frame(masks.astype(bool), (rows, cols), crop_region, source_dicom)

    out_path = Path(out_path)
    # highdicom (<= 0.28, issue ImagingDataCommons/highdicom#284) refuses multi-frame sources
    # without a Frame of Reference, which is every ultrasound cine. So it builds a one-frame SEG
    # from the source presented as a single-frame US image, and _extend_to_cine() then gives it one
    # frame per source frame, each referencing its source frame (see the module docstring).
    single = copy.deepcopy(source)
    source_class = single.SOPClassUID
    single.SOPClassUID = _US_SINGLE_FRAME
    for keyword in ("NumberOfFrames", "FrameIncrementPointer"):
        if keyword in single:
            delattr(single, keyword)
    # Scanner exports (and scrubbed copies) sometimes drop Type 2 patient/study attributes that
    # highdicom copies unconditionally; Type 2 means "present, may be empty", so empty they go in.
    for keyword in _TYPE2_COPIED:
        if keyword not in single:
            setattr(single, keyword, "")
    try:
        seg = hd.seg.Segmentation(
            source_images=[single],
            pixel_array=full[0],
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[_median_nerve_segment(rater)],
            series_instance_uid=hd.UID(),
            series_number=int(source.get("SeriesNumber", 0) or 0) + 100,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="napari-ultramn",
            manufacturer_model_name="napari-ultramn annotator",
            software_versions=_version(),
            device_serial_number="0",
            series_description=series_description[:64],
            omit_empty_frames=False,
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise InputError(source_dicom, f"highdicom cannot build a segmentation from it: {exc}") from None
    _extend_to_cine(seg, full, source_class, multi_frame="NumberOfFrames" in source)
    # General Image: Patient Orientation is Type 2C, required without a Frame of Reference (every
    # ultrasound SEG). The SEG shares the source's pixel grid, so it shares its orientation too.
    if "FrameOfReferenceUID" not in seg and "PatientOrientation" not in seg:
        seg.PatientOrientation = source.get("PatientOrientation", "")
    if rater:
        # Content Creator's Name: the person who made the segmentation. A rater id without a
        # component delimiter goes in as the family name ("r1^"); validators read a bare "r1" as
        # the retired ACR-NEMA name form.
        name = rater[:63]
        seg.ContentCreatorName = name if "^" in name else name + "^"
    with atomic_path(out_path) as tmp:
        seg.save_as(tmp, enforce_file_format=True)
    return out_path


def _extend_to_cine(seg, masks: np.ndarray, source_class: str, multi_frame: bool) -> None:
    """Turn highdicom's one-frame SEG into one frame per source frame, in source order.

    Frame ``i`` gets a Derivation Image item whose Source Image references source frame ``i + 1``
    (ReferencedFrameNumber, the way a SEG maps frames when there is no Frame of Reference), and a
    second dimension, the Temporal Position Index (Frame Content), so that the dimension index
    values of the frames are unique as the Multi-frame Dimension module requires.
    """
    from pydicom.dataset import Dataset
    from pydicom.pixels import pack_bits
    from pydicom.tag import Tag

    n = masks.shape[0]
    for series in seg.ReferencedSeriesSequence:
        for item in series.ReferencedInstanceSequence:
            item.ReferencedSOPClassUID = source_class
    # highdicom puts the same item in ReferencedInstanceSequence and SourceImageSequence; a copy
    # keeps the frame list out of the Referenced Series Sequence, whose items have no such attribute.
    if "SourceImageSequence" in seg:
        seg.SourceImageSequence = [copy.deepcopy(item) for item in seg.SourceImageSequence]
    for item in seg.get("SourceImageSequence", []):
        item.ReferencedSOPClassUID = source_class
        if multi_frame:
            item.ReferencedFrameNumber = list(range(1, n + 1)) if n > 1 else 1
    temporal = Dataset()
    temporal.DimensionOrganizationUID = seg.DimensionIndexSequence[0].DimensionOrganizationUID
    temporal.DimensionIndexPointer = Tag("TemporalPositionIndex")
    temporal.FunctionalGroupPointer = Tag("FrameContentSequence")
    temporal.DimensionDescriptionLabel = "Temporal Position Index"
    seg.DimensionIndexSequence.append(temporal)
    template = seg.PerFrameFunctionalGroupsSequence[0]
    frames = []
    for i in range(n):
        item = copy.deepcopy(template)
        ref = item.DerivationImageSequence[0].SourceImageSequence[0]
        ref.ReferencedSOPClassUID = source_class
        if multi_frame:
            ref.ReferencedFrameNumber = i + 1
        content = item.FrameContentSequence[0]
        content.DimensionIndexValues = [1, i + 1]
        content.TemporalPositionIndex = i + 1
        frames.append(item)
    seg.PerFrameFunctionalGroupsSequence = frames
    seg.NumberOfFrames = n
    # BINARY frames are bit-packed back to back, with no padding between frames
    seg.PixelData = pack_bits(masks.reshape(-1))


def _version() -> str:
    from .. import __version__

    return str(__version__)
