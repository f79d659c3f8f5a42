"""The annotator's state in one place, without Qt: what the widgets show and forward to.

The dock used to keep this state in widget attributes, the contents of Qt controls and
re-entrancy flags; a typed comment lived only in a line edit until "Flag" was clicked (and a
refresh overwrote it), and frame numbers were 1-based in some places and 0-based in others.
Here every user action is a method, and the state a person sees is derived from one place:

* frames are 0-based inside (files, the API, the session) and **1-based in every text** this
  module produces (:func:`shown`), including error messages;
* the draft comment and quality are kept as typed and written by :meth:`commit_draft` (the
  widget calls it debounced, on clip switch and on close);
* a half-marked non-standard range, the blind/review mode and the current frame live here;
* the **active time** per clip: the widget reports every user action (:meth:`AnnotatorController.active`)
  and the :class:`ActivityClock` credits the time since the previous one, at most
  :data:`IDLE_SECONDS`, to the open clip (written with its annotation: ``active_seconds``).

Listeners registered with :meth:`on` are called with the event name after each change.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable

import numpy as np

from ..errors import InputError
from ..vocabulary import QUALITIES

#: A pause between two actions counts as active time up to this many seconds; the rest of a
#: longer pause is idle (a call, a coffee). 60 s covers looking hard at a difficult frame
#: before the next stroke, so real effort is not undercounted, while an hour away adds one minute.
IDLE_SECONDS = 60.0


def shown(t: int) -> int:
    """A 0-based frame index as a person reads it (1-based)."""
    return int(t) + 1


def span(start: int, stop: int) -> str:
    """The half-open 0-based frames ``[start, stop)`` as a person reads them: 'frames 3–5'."""
    return f"frame {shown(start)}" if stop - start == 1 else f"frames {shown(start)}–{stop}"


def runs(frames) -> list[tuple[int, int]]:
    """Sorted 0-based frames as half-open runs ``[(start, stop), ...]``."""
    out: list[tuple[int, int]] = []
    for t in sorted(frames):
        if out and out[-1][1] == t:
            out[-1] = (out[-1][0], t + 1)
        else:
            out.append((t, t + 1))
    return out


def mask_is_empty(mask: np.ndarray) -> bool:
    """True if ``mask`` has no pixel set. ``argmax`` of a bool array stops at the first True, so
    a traced nerve is found after a fraction of the frame (``any`` reads all of it, a few times
    slower on masks just made by an interpolation, out of the CPU's cache)."""
    m = np.asarray(mask)
    if m.dtype != bool:
        return not m.any()
    return m.size == 0 or not m.flat[int(m.argmax())]


class ActivityClock:
    """Active time from a stream of user actions: each :meth:`tick` returns the seconds since the
    previous one, capped at ``idle_seconds``. ``clock`` (monotonic seconds) is injectable for tests."""

    def __init__(self, idle_seconds: float = IDLE_SECONDS, clock: Callable[[], float] = time.monotonic):
        if not idle_seconds > 0:
            raise ValueError(f"idle_seconds must be positive, got {idle_seconds}")
        self.idle_seconds = float(idle_seconds)
        self.clock = clock
        self._last: float | None = None

    def restart(self) -> None:
        """Start counting from now (a clip was opened: that is an action too)."""
        self._last = self.clock()

    def stop(self) -> None:
        """Nothing counts until the next :meth:`restart` (no clip open)."""
        self._last = None

    def tick(self) -> float:
        """One user action: the active seconds it closes (0 if the clock is stopped)."""
        if self._last is None:
            return 0.0
        now = self.clock()
        gap, self._last = now - self._last, now
        return min(max(gap, 0.0), self.idle_seconds)


class AnnotatorController:
    """The state of one annotator window; ``session`` is an :class:`AnnotationSession` or ``None``."""

    def __init__(self, review: bool = False, clock: Callable[[], float] = time.monotonic):
        self.review = review
        self.activity = ActivityClock(clock=clock)
        self.session = None
        self.frame = 0
        self.range_start: int | None = None  # 0-based first frame of a half-marked range
        self.draft_comment = ""
        self.draft_quality = "ok"
        self.pending = None  # a finished propagation waiting for "accept up to here"
        # empty_frames: the FrameMask each flag was computed from, per frame, for this annotation
        self._empty: dict[int, object] = {}
        self._empty_flags = np.zeros(0, bool)
        self._empty_of: object | None = None  # the annotation the flags belong to
        self._listeners: list[Callable[[str], None]] = []

    # -- events ----------------------------------------------------------------------------------
    def on(self, listener: Callable[[str], None]) -> None:
        self._listeners.append(listener)

    def _emit(self, name: str) -> None:
        for fn in list(self._listeners):
            fn(name)

    @property
    def blind(self) -> bool:
        """Blind mode: nothing from the clip's header or from other raters is shown or prefilled."""
        return not self.review

    # -- the clip ----------------------------------------------------------------------------------
    def attach(self, session) -> None:
        """Show ``session``'s clip: the draft starts as what is saved."""
        self.session = session
        self.review = session.review
        ann = session.annotation
        self.activity.restart()
        self.draft_comment, self.draft_quality = ann.comment, ann.quality
        self.range_start = None
        self.frame = (ann.keyframes() or [0])[0]
        self._emit("clip")

    def detach(self):
        """Write the draft and let go of the session (returned, for the caller to close)."""
        session = self.session
        if session is not None:
            self.commit_draft()
        self.activity.stop()
        self.session, self.range_start, self.pending = None, None, None
        self._empty_of = None  # its emptiness flags go with it
        self._emit("clip")
        return session

    def active(self) -> float:
        """The rater did something (key, click, paint, typing): credit the open clip the time
        since the previous action (at most :data:`IDLE_SECONDS`); returns the seconds credited."""
        seconds = self.activity.tick()
        if self.session is not None and seconds > 0:
            self.session.add_active_time(seconds)
        return seconds

    def _need(self):
        if self.session is None:
            raise InputError(None, "Open a clip first.")
        return self.session

    def set_frame(self, t: int) -> None:
        self.frame = int(t)
        self._emit("frame")

    # -- comment and quality -----------------------------------------------------------------------
    def set_comment(self, text: str) -> None:
        self.draft_comment = text
        self._emit("draft")

    def set_quality(self, quality: str) -> None:
        if quality not in QUALITIES:
            raise InputError(None, f"quality must be one of {QUALITIES}, not '{quality}'")
        self.draft_quality = quality
        self.commit_draft()

    def cycle_quality(self) -> str:
        self.set_quality(QUALITIES[(QUALITIES.index(self.draft_quality) + 1) % len(QUALITIES)])
        return self.draft_quality

    @property
    def draft_dirty(self) -> bool:
        ann = self.session.annotation if self.session else None
        return ann is not None and (ann.comment, ann.quality) != (self.draft_comment, self.draft_quality)

    def commit_draft(self) -> bool:
        """Save the comment and quality as typed (if they changed); True if a change was written."""
        if not self.draft_dirty or self.session is None:
            return False
        self.session.set_flag(self.draft_quality, self.draft_comment)
        self._emit("saved")
        return True

    # -- planes and ranges (1-based in, 1-based out) -------------------------------------------------
    def label_range(self, first: int, last: int, plane: str) -> str:
        """Label the frames ``first``..``last`` *as shown* (1-based, inclusive, either order)."""
        s = self._need()
        n = s.annotation.n_frames
        a, b = sorted((int(first), int(last)))
        if a < 1 or b > n:
            raise InputError(None, f"frames {a}–{b} are outside this clip's frames 1–{n}")
        s.set_plane_range(a - 1, b, plane)
        return f"{span(a - 1, b).capitalize()} labelled {plane}."

    def mark_range(self, plane: str) -> str:
        """First press: remember the current frame; second press: label the range up to here."""
        self._need()
        if self.range_start is None:
            self.range_start = self.frame
            self._emit("range")
            return f"{plane} from frame {shown(self.frame)}: go to its last frame and press the key again."
        start, self.range_start = self.range_start, None
        try:
            return self.label_range(shown(start), shown(self.frame), plane)
        finally:
            self._emit("range")

    def ranges_text(self) -> str:
        ann = self.session.annotation if self.session else None
        if ann is None or not ann.plane_ranges:
            return "no frame ranges"
        return "; ".join(f"{span(r.start, r.stop)} {r.plane}" for r in ann.plane_ranges)

    # -- propagation: preview, then "accept up to here" ----------------------------------------------
    def propagated(self, result) -> str:
        """Keep a finished propagation for review; returns what to tell the rater."""
        self.pending = result
        self._emit("pending")
        frames = result.frames()
        where = span(min(frames), max(frames) + 1) if frames else "no frames"
        return (
            f"Propagated into {where} ({len(result.warnings)} warnings). Go to the last good frame "
            "and press Alt-A to accept up to it."
        )

    def accept_pending(self) -> str:
        """Accept the pending propagation up to the current frame (all of it at its anchor)."""
        s, r = self._need(), self.pending
        if r is None:
            raise InputError(None, "Nothing to accept: propagate first.")
        t = self.frame
        up_to = t if (t - r.anchor) * r.direction > 0 else None
        s.accept_propagation(r, up_to)
        self.drop_pending()
        got = [f for f in r.frames() if up_to is None or (f - up_to) * r.direction <= 0]
        return f"Accepted the propagation into {span(min(got), max(got) + 1)}." if got else "Accepted nothing."

    def drop_pending(self) -> bool:
        """Forget the pending propagation; True if there was one."""
        had, self.pending = self.pending is not None, None
        if had:
            self._emit("pending")
        return had

    def apply_proposal(self, proposal) -> str:
        """Fill untouched frames with a model ``Proposal`` (``masks (T, H, W)``, ``confidence``,
        ``frame_planes``, ``clip_plane``); says which plane the clip now has (the model's, or the
        rater's own kept) and how many of the frames the model found no nerve in."""
        s = self._need()
        had = s.annotation.clip_plane
        masks = {t: proposal.masks[t] for t in range(len(proposal.masks))}
        conf = {t: float(proposal.confidence[t]) for t in masks}
        filled = s.apply_proposals(masks, conf, proposal.frame_planes, clip_plane=proposal.clip_plane)
        ann = s.annotation
        empty = sum(not ann.frames[t].mask.any() for t in filled)
        plane = (
            f"plane {ann.clip_plane} from the model"
            if ann.clip_plane != had
            else f"your plane {had} kept"
            if had
            else "no standard plane proposed"
        )
        none = f", {empty} of them with no nerve found" if empty else ""
        return f"Model proposal applied to {len(filled)} untouched frames{none} ({plane}); your own frames were kept."

    # -- checks before long work and before "done" ---------------------------------------------------
    def check_propagation(self, direction: int) -> None:
        """Refuse, in 1-based words, a propagation the session would refuse in 0-based ones."""
        s = self._need()
        t = self.frame
        if t not in s.annotation.frames:
            raise InputError(None, f"frame {shown(t)} has no mask to propagate; trace it first")
        if not s.annotation.frames[t].mask.any():
            raise InputError(None, f"frame {shown(t)} is traced as 'no nerve': there is nothing to propagate")
        if s.propagation_stop(t, direction)[0] == t:
            raise InputError(None, f"frame {shown(t)}: nothing to propagate into in that direction")

    def done_questions(self) -> list[str]:
        """What a person should confirm before marking the clip done (empty: nothing to ask)."""
        ann = self._need().annotation
        out = []
        if ann.clip_plane is None:
            out.append("no plane is set")
        untraced = [t for t in range(ann.n_frames) if t not in ann.frames]
        if untraced and self.draft_quality != "unusable":
            where = ", ".join(span(a, b) for a, b in runs(untraced)[:4])
            more = "…" if len(runs(untraced)) > 4 else ""
            out.append(f"{len(untraced)} of {ann.n_frames} frames are not traced ({where}{more})")
        return out

    def mark_done(self, confirm: Callable[[str], bool]) -> bool:
        """Write the draft, ask ``confirm(question)`` if something is missing, then mark done."""
        s = self._need()
        self.commit_draft()
        questions = self.done_questions()
        if questions and not confirm(f"{s.clip_id}: " + "; ".join(questions) + ". Mark it done anyway?"):
            return False
        s.set_status("done")
        self._emit("saved")
        return True

    def empty_frames(self) -> np.ndarray:
        """``(T,) bool``: frames annotated with an empty mask ('no nerve here'), for the frame
        strip. Kept per FrameMask (they are replaced, never changed): only frames whose FrameMask
        is new since the last call are looked at, so a slider move or an interpolation is cheap."""
        ann = self._need().annotation
        n_frames = ann.n_frames
        if self._empty_of is not ann or len(self._empty_flags) != n_frames:
            self._empty_of, self._empty = ann, {}
            self._empty_flags = np.zeros(n_frames, bool)
        cache, flags = self._empty, self._empty_flags
        frames = ann.frames
        for t in [t for t in cache if t not in frames]:  # cleared (undo of a first trace)
            del cache[t]
            flags[t] = False
        for t, fm in frames.items():
            if cache.get(t) is not fm:
                cache[t] = fm
                flags[t] = mask_is_empty(fm.mask)
        return flags.copy()

    # -- texts ------------------------------------------------------------------------------------
    def frame_text(self) -> str:
        ann = self._need().annotation
        t = self.frame
        fm = ann.frames.get(t)
        what = "unannotated" if fm is None else fm.provenance.replace("_", " ")
        if fm is not None and fm.confidence is not None:
            what += f" (confidence {fm.confidence:.2f})"
        return (
            f"Frame {shown(t)} / {ann.n_frames} · {what} · plane {ann.frame_plane(t) or 'not set'} · "
            f"{len(ann.keyframes())} keyframes"
        )

    def save_text(self, now: _dt.datetime | None = None) -> str:
        """The autosave line, always about the open clip."""
        s = self.session
        if s is None:
            return ""
        if not s.saves:
            return f"{s.clip_id}: no changes yet (saved as you work)"
        rel = s.path.relative_to(s.project.root)
        return f"{s.clip_id}: autosaved {(now or _dt.datetime.now()):%H:%M:%S} → {rel} ({s.saves} saves)"
