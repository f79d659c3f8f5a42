"""Still images: a folder of frames (PNG, JPEG, BMP, TIFF) as a lazy gray clip, or one image file
as a one-frame clip.

Colour is reduced to gray with BT.601 luma (as DICOM colour is), palette images through their
palette, 16-bit images by keeping the top 8 bits (a fixed mapping, no flicker). Frame files are
ordered by natural sort (``frame_2.png`` before ``frame_10.png``), as exporters number
frames without zero padding. Opening reads every file's header (cheap) to check that all frames
share one shape, and decodes only frame 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from .clip import Clip, LazyFrames
from .source_files import natural_key

#: Images read as frames (a folder) or as a one-frame clip (one file): what Pillow and tifffile read.
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def frame_files(folder: Path) -> list[Path]:
    """The image files in ``folder`` (hidden files skipped), in natural order."""
    files = [
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES and not p.name.startswith(".")
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def _header_shape(path: Path) -> tuple[int, ...]:
    """Image shape from the file header, without decoding pixels."""
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        with tifffile.TiffFile(path) as tif:
            if len(tif.pages) > 1:
                raise ValueError(f"multi-page TIFF ({len(tif.pages)} pages); expected one frame")
            dims = dict(zip(tif.pages[0].axes, tif.pages[0].shape))
            return (dims["Y"], dims["X"], dims["S"]) if "S" in dims else (dims["Y"], dims["X"])
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
        bands = len(im.getbands())
        return (h, w) if bands == 1 else (h, w, bands)


def _to_gray(img: np.ndarray) -> np.ndarray:
    from .clip import to_uint8
    from .dicom import _luminance

    if img.dtype == np.uint16:  # 16-bit PNG/TIFF: keep the top 8 bits (fixed, no flicker)
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = to_uint8(img)
    if img.ndim == 3:
        if img.shape[-1] in (3, 4):
            return _luminance(img[..., :3])
        return np.ascontiguousarray(img[..., 0])  # gray + alpha, or a single channel
    return img


def _read_image(path: Path) -> np.ndarray:
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            img = page.asarray()
            # planar colour (RGB planes one after another) comes as (S, H, W)
            return np.moveaxis(img, 0, -1) if page.axes.startswith("S") else img
    from PIL import Image

    with Image.open(path) as opened:
        im: Image.Image = opened
        if im.mode in ("P", "PA"):  # palette images: look the colours up, not the indices
            im = im.convert("RGBA")
        elif im.mode == "1":
            im = im.convert("L")
        return np.asarray(im)


def frame_sizes(files: list[Path]) -> tuple[dict[tuple[int, int], list[str]], dict[str, str]]:
    """``({(h, w): [file names]}, {unreadable file name: why})`` from the files' headers."""
    shapes: dict[tuple[int, int], list[str]] = {}
    damaged: dict[str, str] = {}
    for f in files:
        try:
            shape = _header_shape(f)
        except Exception as exc:  # PIL/tifffile raise many types for a damaged file
            damaged[f.name] = str(exc)
            continue
        shapes.setdefault((int(shape[0]), int(shape[1])), []).append(f.name)
    return shapes, damaged


def read_frame_folder(path: str | Path, **_ignored) -> Clip:
    """Open a folder of image frames (one image per frame) as a lazy :class:`Clip`."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(path, "is not a folder of frames")
    files = frame_files(path)
    if not files:
        raise InputError(path, "folder holds no PNG, JPEG, BMP or TIFF frames and no DICOM files")
    shapes, damaged = frame_sizes(files)
    if damaged:
        name, why = next(iter(damaged.items()))
        raise InputError(path, f"frame file {name} cannot be read ({why})")
    if len(shapes) > 1:
        summary = "; ".join(f"{h}x{w}: {len(names)} file(s), e.g. {names[0]}" for (h, w), names in shapes.items())
        raise InputError(path, f"frames have different shapes ({summary})")
    frame_shape = next(iter(shapes))

    def read(i: int) -> np.ndarray:
        try:
            return _to_gray(_read_image(files[i]))
        except Exception as exc:
            raise InputError(files[i], f"frame {i} cannot be decoded ({exc})") from None

    lazy = LazyFrames(read, len(files), frame_shape)
    lazy.frame(0)
    return Clip(frames=lazy, source_path=path, extra={"frame_files": len(files)})


def read_image_file(path: str | Path, **_ignored) -> Clip:
    """Open one PNG, JPEG, BMP or (single-page) TIFF image as a one-frame :class:`Clip`."""
    path = Path(path)
    try:
        _header_shape(path)  # refuses a multi-page TIFF
        gray = _to_gray(_read_image(path))
    except Exception as exc:  # PIL/tifffile raise many types for a damaged file
        raise InputError(path, f"image cannot be read ({exc})") from None
    lazy = LazyFrames(lambda _i: gray, 1, gray.shape)
    lazy.frame(0)
    return Clip(frames=lazy, source_path=path, extra={"frame_files": 1})
