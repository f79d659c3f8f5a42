"""Autosave off the caller's thread: the annotator's GUI never waits for a save.

Saving a whole 300-frame annotation (run-length encoding every mask, schema check, atomic write
with fsync) takes ~17 ms on an idle machine and ~50 ms on a busy one: on the GUI thread, a stall
after every brush stroke. The session instead
hands :class:`BackgroundSaver` a *frozen copy* of the annotation (:func:`frozen_copy`: microseconds,
because masks are immutable values that edits replace) and goes on; one worker thread writes.

Only the newest copy matters (each save writes the whole annotation), so copies that arrive while
a write is running replace each other and only the last is written: saves never queue up behind
a fast painter. Each write stays atomic, so a crash at any moment leaves the last completed
save readable; what a crash can lose is the change made in the last moments (the quiet time
below plus one save's time).

The writer waits for a pause in the edits (``quiet_s`` with no new copy; ``max_wait_s`` at most,
so a rater who never pauses is still saved every second), then writes; :meth:`flush` and
:meth:`close` write at once. Why wait: the write is Python work (run-length encoding, the schema
check) and holds the GIL in turns with the GUI thread. Started at once, it ran while the GUI
thread showed the change, and each time the GUI thread came back from Qt (a paint, a layout, a
numpy call) it could wait up to Python's switch interval (5 ms) for the writer: measured on an
interpolation under Xvfb, the GUI thread's part took 4.2-4.7 ms with the writer started at once
and 3.6-3.7 ms with it waiting, and a 0.5 ms switch interval brought the window frame 2-3 ms sooner.

A failed write is kept and raised by the next :meth:`BackgroundSaver.check` (the next change, or
:meth:`close`), so the user hears of it; the work is still in memory.
"""

from __future__ import annotations

import atexit
import copy
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from .clip_annotation import ClipAnnotation
from .history import snapshot

_LIVE: weakref.WeakSet = weakref.WeakSet()  # savers not yet closed, for the exit hook below


@atexit.register
def _write_pending_at_exit() -> None:
    """A normal interpreter exit writes what the savers hold: their thread is a daemon (it must
    not keep a closed application alive), and a copy waiting for a pause would otherwise be lost."""
    for saver in list(_LIVE):
        saver.flush(timeout=10)


def frozen_copy(annotation: ClipAnnotation) -> ClipAnnotation:
    """A copy later edits cannot reach: the undo history's :func:`~.history.snapshot` (frame
    dict and clip-level fields copied, the immutable FrameMasks shared) on a shallow copy."""
    frozen = copy.copy(annotation)
    frozen.frames, fields = snapshot(annotation)
    for name, value in fields.items():
        setattr(frozen, name, value)
    return frozen


class BackgroundSaver:
    """One daemon thread running ``write(item)`` on the newest submitted item."""

    def __init__(
        self,
        write: Callable[[Any], object],
        name: str = "ultramn-autosave",
        *,
        quiet_s: float = 0.0,
        max_wait_s: float = 1.0,
    ):
        self._write = write
        self.quiet_s, self.max_wait_s = float(quiet_s), float(max_wait_s)
        self._cond = threading.Condition()
        self._pending: object | None = None
        self._first_submit = self._last_submit = 0.0  # monotonic times of the pending item
        self._flushing = 0  # callers waiting in flush(): write without waiting for a pause
        self._busy = False
        self._closed = False
        self._error: BaseException | None = None
        self.writes = 0
        self.superseded = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        _LIVE.add(self)

    def submit(self, item: object) -> None:
        """Queue ``item`` for writing, replacing any item not yet started."""
        if item is None:
            raise ValueError("nothing to save")
        with self._cond:
            if self._closed:
                raise RuntimeError("the autosave thread is closed")
            now = time.monotonic()
            if self._pending is not None:
                self.superseded += 1
            else:
                self._first_submit = now
            self._pending, self._last_submit = item, now
            self._cond.notify_all()

    def _wait_for_a_pause(self) -> None:
        """With the lock held and an item pending: wait until edits pause, unless a flush, a
        close or ``max_wait_s`` since the first unsaved copy says to write now."""
        while self.quiet_s > 0 and not (self._flushing or self._closed):
            now = time.monotonic()
            due = min(self._last_submit + self.quiet_s, self._first_submit + self.max_wait_s)
            if now >= due:
                return
            self._cond.wait(due - now)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._closed)
                if self._pending is None:  # closed, nothing left
                    return
                self._wait_for_a_pause()
                item, self._pending, self._busy = self._pending, None, True
            try:
                self._write(item)
                error = None
            except BaseException as exc:  # kept for the caller's thread; this one must survive
                error = exc
            with self._cond:
                self._busy = False
                if error is None:
                    self.writes += 1
                else:
                    self._error = error
                self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted is written (or failed); False on timeout."""
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()  # a writer waiting for a pause writes now
            try:
                return self._cond.wait_for(lambda: self._pending is None and not self._busy, timeout)
            finally:
                self._flushing -= 1

    def check(self) -> None:
        """Raise (once) the error of a failed background write, if there was one."""
        with self._cond:
            error, self._error = self._error, None
        if error is not None:
            raise error

    def close(self, timeout: float | None = None) -> None:
        """Write what is pending, stop the thread, then raise a write error if there was one."""
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
        _LIVE.discard(self)
        self.check()
