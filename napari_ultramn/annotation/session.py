"""One rater working on one clip: lock, load, change through history, autosave every change.

Plain Python (no napari, no Qt): the annotator widget and ``ultramn annotate`` drive it, tests drive
it directly. Every change goes through :meth:`AnnotationSession.change`, which records one undo step
and saves the whole annotation atomically (``AnnotationStore.save``), so a crash at any moment loses
at most the change being made. With ``background_save=True`` (the GUI) the save runs on a worker
thread (:mod:`.autosave`) once the edits pause (:data:`AUTOSAVE_QUIET_S`; at least once a
second while they go on), so a brush stroke never waits for it; :meth:`flush` writes at once, and
:meth:`close` writes what is pending before it releases the lock.

* **Blind mode** (default): the session never loads another rater's file of the clip.
* **Review mode**: an adjudicator sees every rater's annotation of the clip
  (:meth:`other_annotations`) and builds the final one, saved under the rater id
  :data:`ADJUDICATED`, by picking a rater's work (:meth:`pick`) and editing it.
* **Active time** (:meth:`add_active_time`, from the controller's activity clock) is kept in the
  annotation and written with the next save, and by :meth:`close` if the file already exists
  (looking at a clip without changing anything never creates a file: it would count as a rating).
* A **corrupt** file is reported (:class:`CorruptAnnotationError`: path and schema error) and
  kept; only ``set_aside_corrupt=True`` (the user said yes) moves it aside to start afresh.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from ..errors import ConflictError, InputError
from .autosave import BackgroundSaver, frozen_copy
from .clip_annotation import QUALITIES, STATUSES, ClipAnnotation, FrameMask, PlaneRange, now_iso
from .history import History, diff, snapshot
from .lock import AnnotationLock
from .store import ADJUDICATED as _ADJUDICATED

#: Rater id of the adjudicated (final) annotation written in review mode.
ADJUDICATED = _ADJUDICATED

# Background mode: the newest state is written once no change came for this long (a window frame is
# drawn meanwhile without the writer competing for the GIL; see .autosave). A crash may lose the
# change of the last 0.15 s + one save; the file on disk is always the last complete save.
AUTOSAVE_QUIET_S = 0.15


class CorruptAnnotationError(InputError):
    """The rater's existing file cannot be read; it is kept until the user agrees to set it aside."""


def edited_fraction(proposal: np.ndarray, mask: np.ndarray) -> float:
    """|A xor B| / |A or B|: how much of a model proposal a human changed (0 = accepted as is)."""
    union = np.count_nonzero(proposal | mask)
    return 0.0 if union == 0 else float(np.count_nonzero(proposal ^ mask) / union)


class AnnotationSession:
    """Open with :meth:`open`; close with :meth:`close` (or use as a context manager)."""

    def __init__(
        self,
        project,
        clip,
        annotation: ClipAnnotation,
        lock: AnnotationLock,
        *,
        user: str,
        review: bool = False,
        set_aside_path=None,
        history_depth: int = 200,
        background_save: bool = False,
    ):
        self.project = project
        self.clip = clip
        self.annotation = annotation
        self.user = user
        self.review = review
        self.lock = lock
        self.set_aside_path = set_aside_path
        self.history = History(history_depth)
        self.saves = 0
        self._active_unsaved = False  # active time credited since the last save
        self._active_seen = False  # this session has counted itself in work_sessions
        self._proposals: dict[int, np.ndarray] = {}  # model masks, to measure how much a human edits
        self._closed = False
        self._saver = (
            BackgroundSaver(self._write, name=f"autosave {annotation.clip_id}", quiet_s=AUTOSAVE_QUIET_S)
            if background_save
            else None
        )

    # -- lifecycle -----------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        project,
        clip_id: str,
        rater: str,
        *,
        review: bool = False,
        set_aside_corrupt: bool = False,
        history_depth: int = 200,
        background_save: bool = False,
        clip=None,
    ) -> AnnotationSession:
        """Lock and load ``rater``'s annotation of ``clip_id`` (a new one if there is none).

        In review mode the annotation opened is :data:`ADJUDICATED`'s; ``rater`` is the adjudicator.
        ``background_save``: autosave on a worker thread (see the module docstring).
        ``clip``: ``clip_id`` already opened (decoded ahead by :mod:`.prefetch`); default: opened here.
        Raises :class:`ConflictError` if it is open elsewhere, :class:`CorruptAnnotationError` if
        the file is unreadable (unless ``set_aside_corrupt``), :class:`InputError` for a bad clip.
        """
        store = project.annotations
        owner = ADJUDICATED if review else rater
        path = store.path(clip_id, owner)  # validates both ids
        if not review and rater == ADJUDICATED:
            raise InputError(path, f"rater id '{ADJUDICATED}' is reserved for review mode (--review)")
        clip = project.open_clip(clip_id) if clip is None else clip
        lock = AnnotationLock.acquire(path.with_suffix(".lock"), who=f"clip '{clip_id}' of rater '{owner}'")
        try:
            aside = None
            try:
                annotation = store.load(clip_id, owner)
            except InputError as exc:
                if not set_aside_corrupt:
                    raise CorruptAnnotationError(
                        path,
                        f"{exc.problem}. The file was left untouched; set it aside "
                        "(it is kept, renamed) to start this clip again.",
                    ) from None
                aside = store.set_aside(clip_id, owner)
                annotation = None
            if annotation is None:
                # Blind mode starts with no plane: one prefilled from the clip's header would be
                # copied, and plane agreement would come out perfect. Adjudication may start from it.
                plane = project.clip_record(clip_id).get("plane") if review else None
                annotation = ClipAnnotation(clip_id, owner, clip.n_frames, clip.frame_shape, clip_plane=plane)
            elif (annotation.n_frames, tuple(annotation.frame_shape)) != (clip.n_frames, clip.frame_shape):
                raise CorruptAnnotationError(
                    path,
                    f"annotation is for {annotation.n_frames} frames of "
                    f"{tuple(annotation.frame_shape)} but the clip has {clip.n_frames} frames of "
                    f"{clip.frame_shape}",
                )
        except BaseException:
            lock.release()
            raise
        return cls(
            project,
            clip,
            annotation,
            lock,
            user=rater,
            review=review,
            set_aside_path=aside,
            history_depth=history_depth,
            background_save=background_save,
        )

    def close(self) -> None:
        """Write the active time and any pending autosave, then release the lock (raises if that
        last save failed)."""
        if self._closed:
            return
        self._closed = True
        try:
            try:
                if self._active_unsaved and (self.saves or self.path.exists()):
                    self.save()  # the time spent since the last change
            finally:
                if self._saver is not None:
                    self._saver.close()
        finally:
            self.lock.release()

    def __enter__(self) -> AnnotationSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def clip_id(self) -> str:
        return self.annotation.clip_id

    @property
    def path(self):
        return self.project.annotations.path(self.annotation.clip_id, self.annotation.rater)

    @property
    def unit(self) -> str:
        return self.clip.spacing_unit

    # -- the one way to change anything ----------------------------------------------------
    @contextlib.contextmanager
    def change(self, label: str) -> Iterator[ClipAnnotation]:
        """Edit ``self.annotation`` inside the block; it becomes one undo step and is saved."""
        if self._closed:
            raise ConflictError(f"the session on clip '{self.clip_id}' is closed; open it again")
        before = snapshot(self.annotation)
        yield self.annotation
        group = diff(label, before, self.annotation)
        if not group:
            return
        self.annotation.touch()
        self.history.push(diff(label, before, self.annotation))
        self.save()

    def save(self):
        """Write the annotation atomically; a failure is one :class:`InputError` naming the file.

        In background mode this hands a frozen copy to the autosave thread and returns at once;
        a failure of an earlier background write is raised here (the copy just handed over
        retries it).
        """
        self._active_unsaved = False
        if self._saver is None:
            path = self._write(self.annotation)
            self.saves += 1
            return path
        self._saver.submit(frozen_copy(self.annotation))
        self.saves += 1
        self._saver.check()
        return self.path

    def add_active_time(self, seconds: float) -> None:
        """Credit ``seconds`` of active work to this clip (not an undo step; saved with the next
        change or on close). The first credit of a session counts one more work session."""
        if seconds <= 0:
            return
        ann = self.annotation
        if not self._active_seen:
            self._active_seen = True
            ann.work_sessions += 1
        ann.active_seconds += float(seconds)
        self._active_unsaved = True

    def flush(self) -> None:
        """Wait until every change is on disk (background mode); raises if a write failed."""
        if self._saver is not None:
            self._saver.flush()
            self._saver.check()

    def _write(self, annotation: ClipAnnotation):
        try:
            return self.project.annotations.save(annotation)
        except OSError as exc:
            raise InputError(self.path, f"could not save ({exc}); your work is still in memory") from None

    def undo(self) -> list[int]:
        """Undo the last change; returns the frames it touched."""
        return self._step(self.history.undo)

    def redo(self) -> list[int]:
        return self._step(self.history.redo)

    def _step(self, fn) -> list[int]:
        group = fn(self.annotation)
        if group is None:
            return []
        self.annotation.modified = now_iso()
        self.save()
        return sorted(group.frames)

    # -- masks ---------------------------------------------------------------------------
    def set_mask(self, t: int, mask: np.ndarray, label: str = "paint") -> FrameMask:
        """A human traced or edited frame ``t``: it becomes a keyframe.

        Editing a model proposal makes it 'model_edited' with the fraction of it the human changed;
        editing an interpolated or propagated frame makes it 'drawn'. Brushing an 'assisted' frame
        keeps it 'assisted' (the rater still started from the clicks' proposal) and records the
        fraction of the accepted proposal the brush changed, as for 'model_edited'.
        """
        mask = np.asarray(mask, dtype=bool)
        provenance, kw = self._human_edit(t, mask)
        with self.change(label) as ann:
            ann.set_mask(t, mask, provenance, **kw)
        return self.annotation.frames[t]

    def _human_edit(self, t: int, mask: np.ndarray) -> tuple[str, dict]:
        """The provenance (and edited fraction) a human edit of frame ``t`` gives it (see set_mask)."""
        old = self.annotation.frames.get(t)
        kw: dict = {}
        provenance = "drawn"
        if old is not None and old.provenance in ("model", "model_edited", "assisted"):
            provenance = "assisted" if old.provenance == "assisted" else "model_edited"
            proposal = self._proposals.get(t)
            if proposal is not None:
                kw["edited_fraction"] = edited_fraction(proposal, mask)
            else:  # proposal from an earlier session: add this edit to what was changed before
                kw["edited_fraction"] = min(1.0, (old.edited_fraction or 0.0) + edited_fraction(old.mask, mask))
        return provenance, kw

    def set_assisted_mask(self, t: int, mask: np.ndarray, label: str = "smart keyframe") -> FrameMask:
        """The rater accepted a smart-keyframe proposal (clicks -> mask) for frame ``t``: an
        'assisted' keyframe, edited fraction 0. Later brushing measures against this mask."""
        mask = np.asarray(mask, dtype=bool)
        with self.change(label) as ann:
            ann.set_mask(t, mask, "assisted", edited_fraction=0.0)
        self._proposals[int(t)] = ann.frames[int(t)].mask
        return self.annotation.frames[t]

    def clear_frame(self, t: int) -> None:
        """Make frame ``t`` unannotated again (an empty mask instead means "no nerve visible")."""
        with self.change("clear frame") as ann:
            ann.frames.pop(t, None)

    def interpolate(self, start: int | None = None, stop: int | None = None) -> list[int]:
        """Fill frames between human keyframes (shape-based); never touches a human frame."""
        from .interpolate import fill_between_keyframes

        with self.change("interpolate") as ann:
            filled = fill_between_keyframes(ann, start=start, stop=stop)
        return list(filled)

    def propagation(self, anchor: int, direction: int = 1):
        """A progress generator carrying frame ``anchor``'s mask towards the next keyframe.

        Goes forward (``direction=1``) or backward (-1) up to the next human keyframe (used as the
        second anchor) or the clip's end. Returns the ``PropagationResult``; nothing changes until
        :meth:`accept_propagation`.
        """
        from .propagate import propagate_mask

        fm = self.annotation.frames.get(anchor)
        if fm is None:
            raise InputError(self.path, f"frame {anchor} has no mask to propagate; trace it first")
        stop, end_mask = self.propagation_stop(anchor, direction)
        if stop == anchor:
            raise InputError(self.path, f"frame {anchor}: nothing to propagate into in that direction")
        return propagate_mask(self.clip.frames, anchor, fm.mask, stop, end_mask)

    def propagation_stop(self, anchor: int, direction: int) -> tuple[int, np.ndarray | None]:
        """Next keyframe after ``anchor`` in ``direction`` (and its mask), else the clip's last frame."""
        keys = [k for k in self.annotation.keyframes() if (k - anchor) * direction > 0]
        if keys:
            k = min(keys) if direction > 0 else max(keys)
            return k, self.annotation.frames[k].mask
        return (self.annotation.n_frames - 1 if direction > 0 else 0), None

    def accept_propagation(self, result, up_to: int | None = None) -> None:
        """Write a propagation's masks (up to frame ``up_to``) as one undo step."""
        with self.change("propagate") as ann:
            result.apply(ann, up_to=up_to)

    def apply_proposals(
        self,
        masks: Mapping[int, np.ndarray],
        confidence: Mapping[int, float] | None = None,
        frame_planes: Sequence[str | None] | None = None,
        clip_plane: str | None = None,
    ) -> list[int]:
        """Model pre-annotation hook: fill frames nobody has touched with 'model' masks.

        Only unannotated frames and earlier model proposals are replaced: human keyframes and
        the frames filled from them (interpolated, propagated) stay (the rule of
        ``model.preannotate.Proposal.to_annotation``). If the rater has not chosen a clip plane, it
        becomes the model's ``clip_plane`` (as ``to_annotation`` does) when that is a standard plane,
        else the most common standard plane of ``frame_planes`` (one label per frame). Returns the
        frames set.
        """
        confidence = confidence or {}
        done = []
        with self.change("pre-annotate") as ann:
            for t, mask in masks.items():
                current = ann.frames.get(int(t))
                if current is not None and current.provenance != "model":
                    continue
                conf = confidence.get(t)
                ann.set_mask(int(t), mask, "model", confidence=None if conf is None else float(conf))
                self._proposals[int(t)] = ann.frames[int(t)].mask
                done.append(int(t))
            if ann.clip_plane is None:
                standard = [p for p in (frame_planes or ()) if p in self.project.planes]
                if clip_plane in self.project.planes:
                    ann.clip_plane = clip_plane
                elif standard:
                    ann.clip_plane = Counter(standard).most_common(1)[0][0]  # ties: first seen
        return done

    # -- corrections that spread, doubt (issue 14) ---------------------------------------------
    def correct(
        self, t: int, mask: np.ndarray, label: str = "correct", *, reach_frames: int | None = 60, assisted: bool = False
    ) -> list[int]:
        """A human correction of frame ``t`` that spreads to its derived neighbours; one undo step.

        Frame ``t`` is set as :meth:`set_mask` sets it (``assisted``: as :meth:`set_assisted_mask`,
        an accepted smart-keyframe proposal); the propagated, interpolated and model frames next to
        it are re-propagated from it up to the next human keyframe on each side (blended with it),
        at most ``reach_frames`` away (:func:`.repropagate.spread_correction`). Returns every frame
        that changed, ``t`` included.
        """
        from ..progress import run_to_end
        from .repropagate import spread_correction

        t = int(t)
        mask = np.asarray(mask, dtype=bool)
        spread = run_to_end(spread_correction(self.clip.frames, self.annotation, t, mask, reach_frames=reach_frames))
        provenance, kw = ("assisted", {"edited_fraction": 0.0}) if assisted else self._human_edit(t, mask)
        with self.change(label) as ann:
            ann.set_mask(t, mask, provenance, **kw)
            changed = spread.apply(ann)
        if assisted:
            self._proposals[t] = self.annotation.frames[t].mask
        return sorted({t, *changed})

    def doubts(self, **kw):
        """Frames to check, most doubtful first (:func:`.doubt.doubtful_frames`); the model proposals
        this session applied are the second opinion of frames since propagated."""
        from .doubt import doubtful_frames

        return doubtful_frames(self.annotation, self._proposals, **kw)

    # -- planes, flags, status ---------------------------------------------------------------
    def _check_plane(self, plane: str | None) -> None:
        if plane is not None and plane not in self.project.plane_labels:
            raise InputError(
                self.project.root,
                f"plane '{plane}' is not in this project's vocabulary ({', '.join(self.project.plane_labels)})",
            )

    def set_clip_plane(self, plane: str | None) -> None:
        self._check_plane(plane)
        with self.change("clip plane") as ann:
            ann.clip_plane = plane

    def set_plane_range(self, start: int, stop: int, plane: str) -> None:
        """Label frames ``[start, stop)`` (e.g. 'non_standard' where the probe left the plane)."""
        self._check_plane(plane)
        start, stop = sorted((int(start), int(stop)))
        if start < 0 or stop > self.annotation.n_frames or stop <= start:
            raise InputError(
                self.path, f"frame range [{start}, {stop}) is outside the clip's {self.annotation.n_frames} frames"
            )
        with self.change("plane range") as ann:
            ann.plane_ranges = [*ann.plane_ranges, PlaneRange(start, stop, plane)]

    def clear_plane_ranges(self) -> None:
        with self.change("clear plane ranges") as ann:
            ann.plane_ranges = []

    def set_flag(self, quality: str, comment: str | None = None) -> None:
        """Flag the clip 'poor' or 'unusable' (or 'ok' to unflag), with a free-text comment."""
        if quality not in QUALITIES:
            raise InputError(self.path, f"quality must be one of {QUALITIES}, not '{quality}'")
        with self.change("flag") as ann:
            ann.quality = quality
            if comment is not None:
                ann.comment = comment

    def set_status(self, status: str) -> None:
        if status not in STATUSES:
            raise InputError(self.path, f"status must be one of {STATUSES}, not '{status}'")
        with self.change("status") as ann:
            ann.status = status

    # -- review mode -----------------------------------------------------------------------
    def other_annotations(self) -> dict[str, ClipAnnotation]:
        """Every other rater's annotation of this clip; always empty in blind mode.

        Unreadable files are skipped here (their owner sees the error when opening them).
        """
        if not self.review:
            return {}
        store = self.project.annotations
        out = {}
        for rater in store.raters(self.clip_id):
            if rater == ADJUDICATED:
                continue
            with contextlib.suppress(InputError):
                ann = store.load(self.clip_id, rater)
                if ann is not None:
                    out[rater] = ann
        return out

    def pick(self, rater: str, frames: Sequence[int] | None = None) -> None:
        """Review mode: take ``rater``'s masks (all frames, or ``frames``) and planes as the final ones."""
        if not self.review:
            raise ConflictError("picking another rater's work needs review mode (blind mode hides it)")
        other = self.other_annotations().get(rater)
        if other is None:
            raise InputError(self.path, f"rater '{rater}' has no readable annotation of this clip")
        with self.change(f"pick {rater}") as ann:
            if frames is None:
                ann.frames = dict(other.frames)
                ann.clip_plane = other.clip_plane
                ann.plane_ranges = list(other.plane_ranges)
            else:
                for t in frames:
                    if t in other.frames:
                        ann.frames[t] = other.frames[t]
                    else:
                        ann.frames.pop(t, None)

    # -- measurement -----------------------------------------------------------------------
    def measure_frame(self, t: int) -> dict | None:
        """Area, perimeter, flattening, circularity, centroid of frame ``t`` (``None`` if unannotated)."""
        from .measure import measure_mask

        fm = self.annotation.frames.get(t)
        return None if fm is None else measure_mask(fm.mask, self.clip.spacing_mm).as_dict()

    def measurement_table(self):
        """One row per annotated frame (pandas DataFrame); units per ``self.unit``."""
        from .measure import measure_clip

        return measure_clip(self.annotation, self.clip.spacing_mm)
