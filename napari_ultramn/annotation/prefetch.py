"""Decode the next clip(s) of a rater's queue in the background, so moving on does not wait.

Plain Python (no Qt, no napari). The annotator tells a :class:`ClipPrefetcher` which clips are
likely next (:meth:`~ClipPrefetcher.want`); one daemon thread opens each through
``Project.open_clip`` and decodes every frame into memory. When the rater opens one of them,
:meth:`~ClipPrefetcher.take` hands the decoded clip over (to ``AnnotationSession.open(clip=...)``),
so napari shows it and propagation reads it without touching the file again.

Bounds and rules:

* at most ``capacity`` clips (default 2) and ``max_bytes`` of frames are held; a clip larger than
  what is left is not prefetched (it is opened lazily, as without prefetch);
* a clip no longer wanted is dropped, and its decoding stops at the next frame (cancellable);
* no annotation lock is ever taken here: locks belong to opening a clip, not to reading ahead;
* a clip whose file changed after it was decoded (re-ingest) is not handed over;
* a decoding error (:class:`~napari_ultramn.errors.UltramnError`) is kept and raised by
  :meth:`~ClipPrefetcher.take`, i.e. when the rater actually opens that clip, never before.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence

import numpy as np

from ..errors import UltramnError
from ..io.clip import Clip, LazyFrames

DEFAULT_MAX_BYTES = 512 << 20  # two 300-frame 800x1000 clips; a laptop has this to spare


@dataclasses.dataclass(eq=False)
class _Entry:
    clip_id: str
    stamp: tuple | None = None  # (size, mtime_ns) of the clip file when decoding started
    clip: Clip | None = None
    error: UltramnError | None = None
    nbytes: int = 0
    cancel: threading.Event = dataclasses.field(default_factory=threading.Event)
    done: threading.Event = dataclasses.field(default_factory=threading.Event)


class ClipPrefetcher:
    """Background decoding of the clips a rater is likely to open next (see the module docstring).

    ``project``: anything with ``open_clip(clip_id) -> Clip`` and ``clip_path(clip_id)``.
    """

    def __init__(self, project, *, capacity: int = 2, max_bytes: int = DEFAULT_MAX_BYTES):
        if capacity < 1 or max_bytes < 1:
            raise ValueError(f"capacity and max_bytes must be positive, got {capacity} and {max_bytes}")
        self.project = project
        self.capacity = int(capacity)
        self.max_bytes = int(max_bytes)
        self._entries: list[_Entry] = []  # wanted, in priority order
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- what the annotator calls ------------------------------------------------------------
    def want(self, clip_ids: Sequence[str]) -> None:
        """Hold these clips (the first ``capacity`` of them, in this order); drop every other."""
        ids = list(dict.fromkeys(clip_ids))[: self.capacity]
        with self._cond:
            if self._closed:
                return
            keep = {e.clip_id: e for e in self._entries if e.clip_id in ids}
            for e in self._entries:
                if e.clip_id not in keep:
                    e.cancel.set()
            self._entries = [keep.get(cid) or _Entry(cid) for cid in ids]
            if any(not e.done.is_set() for e in self._entries):
                self._start_thread()
            self._cond.notify_all()

    def take(self, clip_id: str) -> Clip | None:
        """The decoded clip ``clip_id`` (no longer held here), or ``None`` if it is not ready.

        Raises the error decoding it met. A clip still being decoded is dropped (the caller opens
        it lazily, which shows its first frame at once).
        """
        with self._cond:
            entry = next((e for e in self._entries if e.clip_id == clip_id), None)
            if entry is None:
                return None
            self._entries.remove(entry)
            entry.cancel.set()
            self._cond.notify_all()
        if not entry.done.is_set():
            return None
        if entry.error is not None:
            raise entry.error
        if entry.clip is None or self._stamp(clip_id) != entry.stamp:
            return None  # too large to hold, or the file was replaced since it was read
        return entry.clip

    def ready(self, clip_id: str) -> bool:
        """Whether ``clip_id`` is decoded (or failed) and waiting to be taken."""
        with self._cond:
            return any(e.clip_id == clip_id and e.done.is_set() for e in self._entries)

    @property
    def held_bytes(self) -> int:
        with self._cond:
            return sum(e.nbytes for e in self._entries if e.clip is not None)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait until every wanted clip is decoded (or failed); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: all(e.done.is_set() for e in self._entries), timeout_s)

    def close(self) -> None:
        """Stop decoding and let go of every clip (the thread ends at its next frame)."""
        with self._cond:
            self._closed = True
            for e in self._entries:
                e.cancel.set()
            self._entries = []
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    # -- the background thread ---------------------------------------------------------------
    def _start_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="ultramn clip prefetch", daemon=True)
            self._thread.start()

    def _next(self) -> _Entry | None:
        """The first wanted clip not decoded yet; waits for one; None once closed."""
        with self._cond:
            while not self._closed:
                entry = next((e for e in self._entries if not e.done.is_set()), None)
                if entry is not None:
                    return entry
                self._cond.wait()
            return None

    def _run(self) -> None:
        while (entry := self._next()) is not None:
            try:
                entry.stamp = self._stamp(entry.clip_id)
                entry.clip, entry.nbytes = self._decode(entry)
            except UltramnError as exc:
                entry.error, entry.nbytes = exc, 0
            except Exception:  # noqa: BLE001 - anything else: not prefetched; opening it reports it
                entry.clip, entry.nbytes = None, 0
            finally:
                with self._cond:
                    entry.done.set()
                    self._cond.notify_all()

    def _stamp(self, clip_id: str) -> tuple | None:
        try:
            st = self.project.clip_path(clip_id).stat()
        except (OSError, UltramnError):
            return None
        return st.st_size, st.st_mtime_ns

    def _room(self, entry: _Entry) -> int:
        with self._cond:
            return self.max_bytes - sum(e.nbytes for e in self._entries if e is not entry)

    def _decode(self, entry: _Entry) -> tuple[Clip | None, int]:
        clip = self.project.open_clip(entry.clip_id)
        handle = clip.extra.pop("_h5", None)  # the file is read here once, then closed
        try:
            n, h, w = clip.shape
            if n * h * w > self._room(entry):
                return None, 0
            entry.nbytes = n * h * w  # counted while decoding, so two decodes never overshoot
            frames = np.empty((n, h, w), np.uint8)
            for t in range(n):
                if entry.cancel.is_set():
                    return None, 0
                frames[t] = clip.frames.frame(t)
        finally:
            if handle is not None and hasattr(handle, "close"):
                handle.close()
        frames.flags.writeable = False
        # No frame cache on top: the frames are all in memory already.
        lazy = LazyFrames(frames.__getitem__, n, (h, w), cache_frames=0)
        return dataclasses.replace(clip, frames=lazy), frames.nbytes
