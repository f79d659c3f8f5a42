"""Synthetic scanner screen recordings with burned-in text, and their hand-marked ground truth.

Sites export what the scanner *screen* showed (Clarius, Butterfly, SonoSite ...): a B-mode image
(linear rectangle, convex fan or phased-array sector) on a black screen, surrounded and sometimes
covered by static overlays: patient name, ID, date, age/sex, device text, calipers, a depth scale,
a grey bar, a logo. :func:`make_screen_recording` draws one such recording with moving speckle
(the phantom's B-mode renderer, :mod:`.render`) and returns the exact imaging-area mask and every
overlay's bounding box, so imaging-area detection (:mod:`napari_ultramn.io.screen_region`) can be
scored: no overlay pixel kept, (almost) all of the imaging area kept. Text uses Pillow's default
font (FreeType, anti-aliased) at a size that follows the screen height, as scanners' UIs do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from .render import analytic_speckle, log_compress, psf_kernel, smooth_curve, smooth_noise

LAYOUTS = ("linear", "convex", "phased")
Box = tuple[int, int, int, int]  # top, left, bottom, right (exclusive), like io.clip.Region

_NAMES = ("DOE^JANE", "MUSTERMANN^ERIKA", "ROSSI^MARIO", "SMITH^JOHN", "DUPONT^MARIE", "NOVAK^JAN")
_DEVICES = ("Clarius L15 HD3", "Butterfly iQ3", "Sonoque L741", "SonoSite PX", "Clarius C3 HD3")


@dataclass
class ScreenRecording:
    """Frames ``(T, H, W) uint8`` and the ground truth of one synthetic screen recording.

    area_mask: ``(H, W) bool``, the hand-marked imaging area (fan, sector or rectangle).
    text_boxes: ink bounding box of every text string drawn (names, IDs, dates, labels).
    overlay_boxes: ``(kind, box)`` of every static overlay, text included (kinds: text, caliper,
        marker, depth_scale, grey_bar, logo); no pixel inside any of them may be kept.
    """

    frames: np.ndarray
    area_mask: np.ndarray
    text_boxes: list[Box]
    overlay_boxes: list[tuple[str, Box]]
    layout: str
    frame_time_ms: float
    seed: int = 0
    identifiers: list[str] = field(default_factory=list)

    def overlay_mask(self) -> np.ndarray:
        """``(H, W) bool``: the union of every overlay box."""
        out = np.zeros(self.area_mask.shape, bool)
        for _, (t, left, b, r) in self.overlay_boxes:
            out[t:b, left:r] = True
        return out

    def keepable_mask(self) -> np.ndarray:
        """Imaging area minus overlay boxes: what a perfect detector keeps."""
        return self.area_mask & ~self.overlay_mask()


def make_screen_recording(
    layout: str = "convex",
    seed: int = 0,
    n_frames: int = 12,
    size: tuple[int, int] = (240, 320),
    *,
    frozen: bool = False,
    text_over_image: bool = True,
    calipers: bool = True,
    frame_time_ms: float = 50.0,
) -> ScreenRecording:
    """One seeded recording. ``size`` = (rows, cols) of the screen; ``frozen`` repeats one frame
    (a paused cine exported as video); ``n_frames=1`` is a single image."""
    if layout not in LAYOUTS:
        raise InputError(None, f"layout must be one of {LAYOUTS}, got {layout!r}")
    h, w = int(size[0]), int(size[1])
    if h < 120 or w < 120 or n_frames < 1:
        raise InputError(None, f"screen must be at least 120x120 with >= 1 frame, got {size}, {n_frames}")
    rng = np.random.default_rng(seed)
    geom = _geometry(layout, h, w, rng)
    area = geom.mask(h, w)
    frames = _tissue_frames(geom, area, 1 if frozen else n_frames, rng)
    if frozen:
        frames = np.repeat(frames, n_frames, axis=0)
    painter = _Overlay(h, w, rng)
    identifiers = painter.draw_screen_text(geom, area, text_over_image, calipers)
    frames = painter.composite(frames)
    return ScreenRecording(frames, area, painter.text_boxes, painter.boxes, layout, frame_time_ms, seed, identifiers)


def text_only_screen(size: tuple[int, int] = (240, 320), seed: int = 0) -> np.ndarray:
    """``(H, W) uint8``: a settings/report screen, lines of text and a logo, no image at all."""
    rng = np.random.default_rng(seed)
    painter = _Overlay(size[0], size[1], rng)
    step = painter.font_px + 4
    for i, y in enumerate(range(4, size[0] - step, step)):
        painter.text(
            8 + (i % 3) * 6,
            y,
            f"{rng.choice(_NAMES)}  ID {rng.integers(10**7, 10**8)}  2024-0{1 + i % 9}-1{i % 10}  exam {i}",
        )
    painter.logo(size[0] - 3 * step, size[1] - 5 * step)
    return painter.composite(np.zeros((1, *size), np.uint8))[0]


# -- geometry of the imaging area ------------------------------------------------------------
@dataclass
class _Geometry:
    layout: str
    top: float
    left: float
    bottom: float
    right: float
    apex: tuple[float, float] = (0.0, 0.0)  # sectors: (row, col) of the virtual apex
    r0: float = 0.0
    r1: float = 0.0
    half_angle: float = 0.0

    def coords(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(depth, lateral) in [0, 1] for screen pixels; outside the area they leave [0, 1]."""
        if self.layout == "linear":
            return ((rows - self.top) / (self.bottom - self.top), (cols - self.left) / (self.right - self.left))
        dy, dx = rows - self.apex[0], cols - self.apex[1]
        r, ang = np.hypot(dy, dx), np.arctan2(dx, dy)
        return (r - self.r0) / (self.r1 - self.r0), (ang + self.half_angle) / (2 * self.half_angle)

    def mask(self, h: int, w: int) -> np.ndarray:
        rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
        d, lat = self.coords(rows + 0.5, cols + 0.5)
        return (d >= 0) & (d < 1) & (lat >= 0) & (lat < 1)


def _geometry(layout: str, h: int, w: int, rng: np.random.Generator) -> _Geometry:
    """Area below a text band, right of a text column, left of the depth scale and grey bar."""
    top = h * rng.uniform(0.13, 0.18)
    bottom = h * rng.uniform(0.84, 0.9)
    if h > w:  # portrait (a phone app): the image takes the whole width
        left_free, right_free = w * rng.uniform(0.06, 0.1), w * rng.uniform(0.82, 0.86)
    else:  # landscape (a cart or tablet): text columns left, scale and bar right
        left_free, right_free = w * rng.uniform(0.2, 0.26), w * rng.uniform(0.8, 0.84)
    depth = bottom - top
    if layout == "linear":
        width = min(right_free - left_free, depth * rng.uniform(0.8, 1.3))
        left = (left_free + right_free - width) / 2
        return _Geometry(layout, top, left, bottom, left + width)
    half = np.radians(rng.uniform(28, 36) if layout == "convex" else rng.uniform(38, 45))
    max_half_width = (right_free - left_free) / 2
    # r1 sin(half) must fit the free width; the fan's depth r1 - r0 cos(half) fits the height
    r0_frac = rng.uniform(0.35, 0.5) if layout == "convex" else 0.03
    r1 = min(max_half_width / np.sin(half), depth / (1 - r0_frac * np.cos(half)))
    r0 = r0_frac * r1
    apex = (top - r0 * np.cos(half), (left_free + right_free) / 2)
    return _Geometry(
        layout, top, apex[1] - r1 * np.sin(half), apex[0] + r1, apex[1] + r1 * np.sin(half), apex, r0, r1, half
    )


# -- moving tissue -----------------------------------------------------------------------------
def _echogenicity(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """Layered tissue: bright skin, fat with septa, striated muscle, a bright fascia, dark vessels."""
    z = np.linspace(0, 1, rows, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, cols, dtype=np.float32)[None, :]
    skin = 0.04 + 0.01 * smooth_curve(cols, rng)[None, :]
    fascia = rng.uniform(0.35, 0.55) + 0.05 * smooth_curve(cols, rng)[None, :]
    e = np.where(z < skin, 4.0, np.where(z < fascia, 0.5, 1.0)).astype(np.float32)
    e *= np.exp(0.6 * smooth_noise((rows, cols), rng, (1.5, 12.0)))  # septa / striations
    e += 6.0 * np.exp(-(((z - fascia) / 0.012) ** 2))
    for _ in range(int(rng.integers(1, 4))):
        cy, cx, ry, rx = rng.uniform(0.3, 0.8), rng.uniform(0.15, 0.85), *rng.uniform(0.04, 0.1, 2)
        e = np.where(((z - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 < 1, 0.04, e)
    return e * np.exp(-1.2 * z)  # depth attenuation (time-gain compensation is never perfect)


def _tissue_frames(geom: _Geometry, area: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """B-mode frames on a black screen: a speckle canvas in probe coordinates, translated a little
    every frame (the probe slides), scan-converted into the area with bilinear interpolation."""
    h, w = area.shape
    ys, xs = np.nonzero(area)
    d, lat = geom.coords(ys + 0.5, xs + 0.5)
    span_rows, span_cols = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    rows, cols = max(32, int(span_rows / 1.6)), max(32, int(span_cols / 1.6))  # scan lines < pixels
    step = rng.uniform(0.6, 1.4)  # canvas pixels per frame
    extra = int(np.ceil(step * n)) + 2
    e = _echogenicity(rows, cols + extra, rng)
    canvas = log_compress(np.abs(analytic_speckle(e, rng, psf_kernel())) ** 2 + 0.002).astype(np.float32)
    # Near a sector's apex many scan lines meet in one pixel; a scan converter averages them
    # (no aliasing). Scan lines per pixel at each pixel's radius pick how much of a laterally
    # averaged canvas it shows.
    lines_per_px = np.ones_like(d)
    if geom.layout != "linear":
        radius = geom.r0 + d * (geom.r1 - geom.r0)
        lines_per_px = cols / (2 * geom.half_angle * np.maximum(radius, 1.0))
    smooth = np.clip((lines_per_px - 1) / 3, 0, 1).astype(np.float32)
    if smooth.any():
        from scipy.ndimage import uniform_filter1d

        width = int(min(cols, np.ceil(lines_per_px.max())))
        canvas = np.stack([canvas, uniform_filter1d(canvas, max(2, width // 2), axis=1)])
    else:
        canvas = canvas[None]
    fy = np.clip(d * (rows - 1), 0, rows - 1.001)
    fy0 = fy.astype(np.int64)
    wy = (fy - fy0).astype(np.float32)
    frames = np.zeros((n, h, w), np.uint8)
    for t in range(n):
        fx = np.clip(lat * (cols - 1) + step * t, 0, cols + extra - 1.001)
        fx0 = fx.astype(np.int64)
        wx = (fx - fx0).astype(np.float32)
        grey = np.zeros(ys.size, np.float32)
        for level, weight in zip(canvas, (1 - smooth, smooth)):
            top = level[fy0, fx0] * (1 - wx) + level[fy0, fx0 + 1] * wx
            low = level[fy0 + 1, fx0] * (1 - wx) + level[fy0 + 1, fx0 + 1] * wx
            grey += weight * (top * (1 - wy) + low * wy)
        frames[t, ys, xs] = np.clip(grey, 0, 255).astype(np.uint8)
    return frames


# -- overlays ----------------------------------------------------------------------------------
class _Overlay:
    """Static screen overlays drawn with Pillow into a coverage layer, boxes recorded as drawn."""

    def __init__(self, h: int, w: int, rng: np.random.Generator):
        from PIL import ImageFont

        self.h, self.w, self.rng = h, w, rng
        self.font_px = max(9, round(min(h, w) / 32))  # UIs scale text with the narrow side
        self.font = ImageFont.load_default(size=self.font_px)
        self.alpha = np.zeros((h, w), np.float32)  # coverage of the overlay, 0..1
        self.value = np.zeros((h, w), np.float32)  # its grey level
        self.boxes: list[tuple[str, Box]] = []
        self.text_boxes: list[Box] = []

    def _paint(self, kind: str, coverage: np.ndarray, grey: float) -> Box | None:
        ys, xs = np.nonzero(coverage > 0)
        if ys.size == 0:
            return None
        box = (int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1)
        a = coverage.astype(np.float32)
        self.value = np.where(a > 0, grey, self.value)
        self.alpha = np.maximum(self.alpha, a)
        self.boxes.append((kind, box))
        return box

    def _draw(self, fn) -> np.ndarray:
        from PIL import Image, ImageDraw

        img = Image.new("L", (self.w, self.h), 0)
        fn(ImageDraw.Draw(img))
        return np.asarray(img, np.float32) / 255.0

    def text(self, x: float, y: float, text: str, grey: float | None = None) -> Box | None:
        grey = self.rng.uniform(200, 255) if grey is None else grey
        cov = self._draw(lambda d: d.text((int(x), int(y)), text, fill=255, font=self.font))
        box = self._paint("text", cov, grey)
        if box is not None:
            self.text_boxes.append(box)
        return box

    def text_width(self, text: str) -> int:
        left, _, right, _ = self.font.getbbox(text)
        return int(right - left)

    def caliper(self, y: float, x: float) -> None:
        s = max(3, self.font_px // 2)
        cov = self._draw(
            lambda d: (d.line([(x - s, y), (x + s, y)], fill=255), d.line([(x, y - s), (x, y + s)], fill=255))
        )
        self._paint("caliper", cov, self.rng.uniform(220, 255))

    def marker(self, y: float, x: float) -> None:
        s = max(2, self.font_px // 3)
        self._paint("marker", self._draw(lambda d: d.rectangle([x, y, x + s, y + s], fill=255)), 235)

    def logo(self, y: float, x: float) -> None:
        s = self.font_px
        self._paint("logo", self._draw(lambda d: d.ellipse([x, y, x + 3 * s, y + 1.6 * s], fill=255)), 90)
        self.text(x + 0.5 * s, y + 0.3 * s, "US", grey=250)

    def grey_bar(self, top: float, left: float, height: float, width: float) -> None:
        t, b, r = int(top), int(top + height), int(left + width)
        left = int(left)
        cov = np.zeros((self.h, self.w), np.float32)
        cov[t:b, left:r] = 1.0
        ramp = np.linspace(255, 0, b - t, dtype=np.float32)[:, None]
        self._paint("grey_bar", cov, 0)
        self.value[t:b, left:r] = ramp

    def depth_scale(self, geom: _Geometry, x: float, n_ticks: int) -> None:
        top, bottom = geom.top, geom.bottom
        tick = max(3, self.font_px // 2)
        ys = np.linspace(top, bottom - 1, n_ticks)

        def draw(d):
            d.line([(x, top), (x, bottom - 1)], fill=255)
            for y in ys:
                d.line([(x, y), (x + tick, y)], fill=255)

        self._paint("depth_scale", self._draw(draw), 200)
        for i, y in enumerate(ys[1:], 1):
            self.text(x + tick + 2, y - self.font_px // 2 - 1, str(i), grey=200)

    def draw_screen_text(self, geom: _Geometry, area: np.ndarray, over_image: bool, calipers: bool) -> list[str]:
        """Corner text (identifiers), depth scale, grey bar, logo, and overlays over the image."""
        rng, fp = self.rng, self.font_px
        name, pid = str(rng.choice(_NAMES)), str(rng.integers(10**7, 10**8))
        date = f"20{rng.integers(18, 26)}-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}"
        age = f"{rng.choice(['F', 'M'])} {rng.integers(18, 90)}y"
        line = fp + 3
        self.text(4, 3, name)
        self.text(4, 3 + line, f"ID {pid}")
        right_col = self.w - 4
        for i, s in enumerate((f"{date} {rng.integers(7, 19):02d}:{rng.integers(0, 60):02d}", age)):
            self.text(right_col - self.text_width(s) - 2, 3 + i * line, s)
        self.text(4, self.h - line - 2, str(rng.choice(_DEVICES)))
        self.text(right_col - self.text_width("MI 0.9 TIS 0.2") - 2, self.h - line - 2, "MI 0.9 TIS 0.2")
        self.logo(self.h * 0.45 if self.w > self.h else geom.bottom + 2 * fp, 4)
        self.marker(geom.top - fp * 0.2 - 2, geom.left - fp * 0.8)
        gap = rng.integers(4, 9)
        self.depth_scale(geom, geom.right + gap, int(rng.integers(4, 7)))
        bar_left = geom.right + gap + 3 * fp
        if bar_left + fp * 0.6 < self.w - 2:
            self.grey_bar(geom.top, bar_left, (geom.bottom - geom.top) * 0.3, fp * 0.6)
        if over_image:
            label = str(rng.choice(["R MEDIAN N", "TRANSV WRIST", "L FOREARM"]))
            cx = (geom.left + geom.right) / 2 - self.text_width(label) / 2
            self.text(cx, geom.top + (geom.bottom - geom.top) * 0.12, label)
            self.text(cx, geom.top + (geom.bottom - geom.top) * 0.8, pid)
        if calipers:
            ys, xs = np.nonzero(area)
            for _ in range(2):
                i = int(rng.integers(ys.size))
                self.caliper(ys[i], xs[i])
            y = self.h * 0.7 if self.w > self.h else geom.bottom + 4 * fp
            self.text(4, y, f"D {rng.uniform(2, 9):.2f} mm")
        return [name, pid, date]

    def composite(self, frames: np.ndarray) -> np.ndarray:
        a = self.alpha[None]
        out = frames.astype(np.float32) * (1 - a) + self.value[None] * a
        return np.clip(np.round(out), 0, 255).astype(np.uint8)


# -- writers -----------------------------------------------------------------------------------
def write_screen_recording(path: str | Path, frames: np.ndarray, frame_time_ms: float = 50.0, crf: int = 20) -> Path:
    """Write ``(T, H, W) uint8`` as an H.264 mp4 (PyAV, yuv420p, like a phone's screen capture)
    or, for one frame and a ``.png`` path, as a PNG image."""
    from ..atomic import atomic_path

    path = Path(path)
    frames = np.asarray(frames, np.uint8)
    if frames.ndim == 2:
        frames = frames[None]
    if path.suffix.lower() == ".png":
        from PIL import Image

        with atomic_path(path) as tmp:
            Image.fromarray(frames[0]).save(tmp, format="PNG")
        return path
    import av

    t, h, w = frames.shape
    # yuv420p needs even sizes: pad one black row/column, as screen recorders do
    padded = np.zeros((t, h + h % 2, w + w % 2), np.uint8)
    padded[:, :h, :w] = frames
    fps = max(1, round(1000.0 / frame_time_ms))
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = padded.shape[2], padded.shape[1], "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for frame in padded:
            rgb = np.repeat(frame[:, :, None], 3, axis=2)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(stream.encode())
    return path
