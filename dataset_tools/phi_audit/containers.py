"""HDF5 files and DICOM files: every attribute, string dataset and element, and their pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .media import scan_frames
from .text_scan import Scanner

MAX_STRINGS = 100_000  # elements of one string dataset searched
_FRAME_NAMES = ("frames", "images", "image", "pixels")
#: DICOM VRs holding free text, where a date has no business (DA/DT/TM elements are dates by
#: definition: only the identifier list judges them).
_TEXT_VRS = {"LO", "LT", "SH", "ST", "UT", "UC", "AE", "CS", "UR"}
_BYTE_VRS = {"OB", "OW", "OD", "OF", "OL", "OV", "UN"}


def _text(value) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind in "USO" and value.size <= MAX_STRINGS:
        return "\n".join(t for t in (_text(v) for v in value.ravel()) if t)
    return None


# ---------------------------------------------------------------- HDF5
def scan_hdf5(scanner: Scanner, path: Path, file: str) -> None:
    from napari_ultramn.io.h5 import load_h5py

    h5py = load_h5py()
    with h5py.File(path, "r") as fh:
        _h5_attrs(scanner, fh, file)
        names: list[str] = []
        fh.visit(names.append)  # every group and dataset, recursively, in a stable order
        for name in names:
            obj = fh[name]
            where = "/" + name
            scanner.value(name.rsplit("/", 1)[-1], file, f"HDF5 {where} (name)")
            _h5_attrs(scanner, obj, file)
            if isinstance(obj, h5py.Dataset):
                _h5_dataset(scanner, obj, file, where, h5py)


def _h5_attrs(scanner: Scanner, obj, file: str) -> None:
    where = obj.name
    for key in obj.attrs:
        try:
            value = obj.attrs[key]
        except (OSError, TypeError):  # an attribute type h5py cannot read
            continue
        text = _text(value)
        if text is not None:
            scanner.value(text, file, f"HDF5 {where} attribute '{key}'", str(key))
        elif np.ndim(value) == 0 and np.issubdtype(np.asarray(value).dtype, np.integer):
            scanner.value(str(value), file, f"HDF5 {where} attribute '{key}'", str(key), patterns=False)


def _h5_dataset(scanner: Scanner, ds, file: str, where: str, h5py) -> None:
    if h5py.check_string_dtype(ds.dtype) is not None or ds.dtype.kind in "SUO":
        flat = np.asarray(ds[()] if ds.ndim == 0 else ds[: min(len(ds), MAX_STRINGS)]).ravel()
        leaf = where.rsplit("/", 1)[-1]
        for i, v in enumerate(flat[:MAX_STRINGS]):
            text = _text(v)
            if text:
                scanner.value(text, file, f"HDF5 {where}[{i}]", leaf)
    elif (
        where.rsplit("/", 1)[-1].lower().endswith(_FRAME_NAMES)
        and ds.ndim in (2, 3, 4)
        and ds.dtype.kind in "ui"
        and min(ds.shape[-2:] if ds.ndim < 4 else ds.shape[-3:-1]) >= 8
    ):
        if scanner.deferred_frames is not None and scanner.pixels:
            scanner.deferred_frames.append((ds.file.filename, ds.name, file, f"HDF5 {where}"))
        else:
            scan_frames(scanner, ds, file, f"HDF5 {where}")


def scan_hdf5_frames(scanner: Scanner, job: tuple[str, str, str, str]) -> None:
    """Search one HDF5 frame stack left for later (``Scanner.deferred_frames``) for burned-in text."""
    from napari_ultramn.io.h5 import load_h5py

    path, name, file, where = job
    with load_h5py().File(path, "r") as fh:
        scan_frames(scanner, fh[name], file, where)


# ---------------------------------------------------------------- DICOM
def scan_dicom(scanner: Scanner, path: Path, file: str) -> None:
    import pydicom

    ds = pydicom.dcmread(path, force=True)
    # A de-identified copy that says its dates were shifted: its DA/DT values may equal another
    # participant's real date by chance, so only the text around them is judged.
    shifted = (
        str(ds.get("LongitudinalTemporalInformationModified", "")).upper() == "MODIFIED"
        or "shift" in str(ds.get("DeidentificationMethod", "")).lower()
    )
    if getattr(ds, "file_meta", None) is not None:
        _dicom_elements(scanner, ds.file_meta, file, "", shifted)
    _dicom_elements(scanner, ds, file, "", shifted)
    if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
        scanner.add("pattern", file, "(0028,0301) BurnedInAnnotation", "the file declares burned-in annotation (YES)")
    if scanner.pixels and ("PixelData" in ds or "FloatPixelData" in ds or "DoubleFloatPixelData" in ds):
        from napari_ultramn.io import open_clip

        clip = open_clip(path)
        scan_frames(scanner, clip.frames, file, "(7FE0,0010) PixelData")


def _dicom_elements(scanner: Scanner, ds, file: str, prefix: str, shifted: bool) -> None:
    for elem in ds:
        tag = f"({elem.tag.group:04X},{elem.tag.element:04X})"
        name = elem.keyword or ("private" if elem.tag.is_private else "unknown")
        if elem.tag.is_private and elem.tag.element >= 0x1000:
            creator = _private_creator(ds, elem.tag)
            name = f"private [{creator}]" if creator else "private"
        where = f"{prefix}{tag} {name}"
        if elem.tag == 0x7FE00010 or elem.keyword in ("FloatPixelData", "DoubleFloatPixelData"):
            continue  # pixels: searched for burned-in text instead
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value or []):
                _dicom_elements(scanner, item, file, f"{prefix}{tag}[{i}].", shifted)
            continue
        try:
            value = elem.value
        except Exception:  # a deferred value that cannot be read: the raw bytes are still searched
            value = None
        if elem.VR == "PN":
            for pn in value if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]:
                text = str(pn or "")
                before = len(scanner.hits)
                scanner.value(text, file, where, elem.keyword or "person_name", pn_element=True)
                if not any(h.category == "identifier" for h in scanner.hits[before:]):
                    # a name split differently than the list has it: each component alone
                    for component in text.split("=")[0].split("^"):
                        scanner.value(component, file, f"{where} component", elem.keyword, patterns=False)
        elif elem.VR in _BYTE_VRS or isinstance(value, bytes):
            raw = value if isinstance(value, bytes) else b""
            text = raw[: 1 << 20].decode("latin-1")
            printable = "".join(c if 32 <= ord(c) < 127 else " " for c in text)
            scanner.value(printable, file, where, elem.keyword or None, patterns=elem.tag.is_private)
        else:
            values = value if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
            for v in values:
                if v is None:
                    continue
                scanner.value(
                    str(v),
                    file,
                    where,
                    elem.keyword or None,
                    patterns=elem.VR in _TEXT_VRS or elem.tag.is_private,
                    dates=elem.VR not in ("DA", "DT", "TM", "UI"),
                    shifted=shifted and elem.VR in ("DA", "DT"),
                )


def _private_creator(ds, tag) -> str | None:
    block = tag.element >> 8
    creator_tag = (tag.group << 16) | block
    if creator_tag in ds:
        return str(ds[creator_tag].value)
    return None
