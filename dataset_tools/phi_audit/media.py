"""Pixels: burned-in text in clip frames, DICOM pixel data, images and videos; plus the text
images and arrays carry beside their pixels (PNG text chunks, EXIF, string arrays in ``.npz``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .burned_text import find_burned_text, ocr_text, sample_indices, to_gray
from .text_scan import Scanner

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"}


def scan_frames(scanner: Scanner, frames, file: str, where: str = "") -> None:
    """Burned-in text in a clip: ``frames`` is ``(T, H, W[, C])``, an array or anything indexable
    by frame (an h5py dataset, ``Clip.frames``); a sample of frames is read, never all."""
    if not scanner.pixels:
        return
    shape = tuple(getattr(frames, "shape", ()))
    if len(shape) == 2:
        sample, idx = to_gray(np.asarray(frames)), np.array([0])
    else:
        idx = sample_indices(shape[0])
        sample = to_gray(np.stack([np.asarray(frames[int(i)]) for i in idx]))
    prefix = f"{where}, " if where else ""
    for region in find_burned_text(sample, idx):
        kind = "static across frames" if region.static else "spatial cues"
        scanner.add(
            "burned_text", file, prefix + region.location(), f"text-like block of {region.glyphs} glyphs ({kind})"
        )
        _ocr(scanner, sample, idx, region, file, prefix)


def _ocr(scanner, sample, idx, region, file, prefix) -> None:
    """Name the identifier in a text block when Tesseract is installed (optional)."""
    if not scanner.matcher:
        return
    k = int(np.searchsorted(idx, region.first_frame))
    text = ocr_text(sample[min(k, len(sample) - 1)], region.bbox)
    if text:
        for m in scanner.matcher.find(text):
            scanner.add(
                "identifier",
                file,
                prefix + region.location() + " (OCR)",
                f"{m.identifier.kind} ({m.what}) {m.identifier.masked()}",
            )


def scan_image(scanner: Scanner, source, file: str, where: str = "") -> None:
    """An image file (``source`` a path) or embedded image (``source`` its bytes): its text
    metadata (PNG text chunks, comments, EXIF) and its pixels."""
    import io

    from PIL import Image, ImageSequence

    prefix = f"{where}, " if where else ""
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
        tags = [(f"image metadata '{k}'", str(k), v) for k, v in (im.info or {}).items()]
        tags += [(f"EXIF tag {t}", f"exif_{t}", v) for t, v in im.getexif().items()]
        for location, key, value in tags:
            if isinstance(value, bytes):
                value = value.decode("latin-1", "replace")
            if isinstance(value, str):
                scanner.value(value, file, prefix + location, key)
        frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)][:64]
    if len(frames) == 1:
        scan_frames(scanner, frames[0], file, where)
    elif frames and len({f.shape for f in frames}) == 1:
        scan_frames(scanner, np.stack(frames), file, where)


def scan_video(scanner: Scanner, path: Path, file: str) -> None:
    import av

    from napari_ultramn.io import open_clip

    try:  # container and stream tags (title, comment, author...) are where recorders put names
        with av.open(str(path)) as container:
            tags = [("container", container.metadata)] + [(f"stream {s.index}", s.metadata) for s in container.streams]
    except av.FFmpegError:
        tags = []  # open_clip below names the problem
    for where, metadata in tags:
        for key, value in (metadata or {}).items():
            scanner.value(str(value), file, f"{where} tag '{key}'", str(key))
    if scanner.pixels:
        scan_frames(scanner, open_clip(path).frames, file)


def scan_numpy(scanner: Scanner, path: Path, file: str) -> None:
    """``.npy``/``.npz``: text arrays are searched, 2-D/3-D uint8 arrays checked for text."""
    arrays = {}
    loader = np.load(path, allow_pickle=False) if path.suffix.lower() == ".npz" else _single(path)
    with loader as data:
        for name in data.files:
            scanner.value(name, file, f"array name '{name}'")
            arrays[name] = data[name]
    for name, arr in arrays.items():
        if arr.dtype.kind in "US":
            for i, v in enumerate(arr.ravel()[:100_000]):
                v = v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                scanner.value(v, file, f"array '{name}'[{i}]", name)
        elif arr.dtype == np.uint8 and arr.ndim in (2, 3) and min(arr.shape[-2:]) >= 16:
            scan_frames(scanner, arr, file, f"array '{name}'")


class _single:
    """``np.load`` of a ``.npy`` file behaving like an npz archive of one array ``arr_0``."""

    def __init__(self, path: Path):
        self.files, self._arr = ["arr_0"], np.load(path, allow_pickle=False)

    def __getitem__(self, name):
        return self._arr

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
