"""Video files (mp4, avi, mov, ...) as lazy gray clips, decoded with PyAV (FFmpeg).

Opening reads the container's packet headers once (demux only, no decoding) to build an index of
every frame's presentation timestamp and of the keyframes, then decodes frame 0. Reading frame
``i`` afterwards continues the running decoder when ``i`` lies ahead in the same group of pictures
(stepping through a clip costs one decode per frame), and otherwise seeks to the keyframe before
``i`` and decodes forward from there, so a random frame costs at most one GOP of decoding.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import InputError
from .clip import Clip, LazyFrames


class _VideoFrames:
    """Frame source ``index -> (H, W) uint8`` over an open PyAV container."""

    def __init__(self, path: Path):
        import av

        self.path = path
        try:
            self.container = av.open(str(path))
        except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or exc  # FFmpeg's text, without the path again
            raise InputError(path, f"cannot be read as a video ({reason})") from None
        if not self.container.streams.video:
            self.container.close()
            raise InputError(path, "has no video stream (the file is empty or holds no video)")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"  # frame threading: decode ahead on the spare core
        self._lock = threading.Lock()
        self._index_packets()
        self._decoder: Iterator | None = None
        self._next = 0  # index of the frame the running decoder yields next

    def _index_packets(self) -> None:
        import av

        pts: list[int | None] = []
        key_pts: list[int | None] = []
        try:
            for packet in self.container.demux(self.stream):
                if packet.size == 0:  # the flushing packet at the end of the stream
                    continue
                pts.append(packet.pts)
                if packet.is_keyframe:
                    key_pts.append(packet.pts)
        except av.FFmpegError as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise InputError(self.path, f"video is corrupt ({reason})") from None
        # Without timestamps frames can only be numbered in decode order, from the start.
        self.has_pts = bool(pts) and all(p is not None for p in pts)
        self.pts = sorted(p for p in pts if p is not None) if self.has_pts else list(range(len(pts)))
        self._pts_to_index = {p: i for i, p in enumerate(self.pts)}
        self.key_index = sorted({self._pts_to_index[p] for p in key_pts if p is not None}) if self.has_pts else [0]
        self.n_frames = len(self.pts)

    def _seek(self, index: int) -> None:
        keyframes = [k for k in self.key_index if k <= index] or [0]
        start = keyframes[-1] if self.has_pts else 0
        if self.has_pts:
            self.container.seek(int(self.pts[start]), stream=self.stream, backward=True)
        else:
            self.container.seek(0)
        self._decoder = self.container.decode(self.stream)
        self._next = start

    def __call__(self, index: int) -> np.ndarray:
        import av

        with self._lock:
            ahead_keys = [k for k in self.key_index if self._next < k <= index]
            if self._decoder is None or index < self._next or ahead_keys:
                self._seek(index)
            assert self._decoder is not None  # _seek made one
            try:
                for frame in self._decoder:
                    if self.has_pts and frame.pts is not None:
                        got = self._pts_to_index.get(frame.pts, self._next)
                    else:
                        got = self._next
                    self._next = got + 1
                    if got >= index:
                        return frame.to_ndarray(format="gray")
            except av.FFmpegError as exc:
                self._decoder = None
                reason = getattr(exc, "strerror", None) or exc
                raise InputError(self.path, f"frame {index} cannot be decoded ({reason})") from None
            self._decoder = None
            raise InputError(self.path, f"video ends before frame {index} of {self.n_frames}")

    def close(self) -> None:
        self.container.close()


def _frame_time_ms(stream) -> float | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            rate = Fraction(rate)
            if rate > 0:
                return float(1000 / rate)
    return None


def read_video_clip(path: str | Path, **_ignored) -> Clip:
    """Open a video file as a lazy gray :class:`Clip` with its frame rate (no spacing: videos
    carry no calibration, so measurements stay in pixels)."""
    path = Path(path)
    source = _VideoFrames(path)
    if source.n_frames == 0:
        source.close()
        raise InputError(path, "video has no frames")
    try:
        first = source(0)
    except InputError:
        source.close()
        raise
    pending = {0: first}  # frame 0 is decoded already: hand it to the cache, don't decode twice

    def read(i: int) -> np.ndarray:
        return pending.pop(i) if i in pending else source(i)

    lazy = LazyFrames(read, source.n_frames, first.shape)
    lazy.frame(0)  # the frame napari shows first
    stream = source.stream
    return Clip(
        frames=lazy,
        source_path=path,
        frame_time_ms=_frame_time_ms(stream),
        extra={"video_codec": stream.codec_context.name, "container": source.container.format.name},
    )
