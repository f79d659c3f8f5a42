"""One rater working on one clip: lock, load, change through history, autosave every change.

Plain Python (no napari, no Qt): the annotator widget and ``ultramn annotate`` drive it, tests drive
it directly. Every change goes through :meth:`AnnotationSession.change`, which records one undo step
and saves the whole annotation atomically (``AnnotationStore.save``), so a crash at any moment loses
at most the change being made. With ``background_save=True`` (the GUI) the save runs on a worker
thread (:mod:`.autosave`), so a brush stroke never waits for it; :meth:`flush` waits, and
:meth:`close` writes what is pending before it releases the lock.

* **Blind mode** (default): the session never loads another rater's file of the clip.
* **Review mode**: an adjudicator sees every rater's annotation of the clip
  (:meth:`other_annotations`) and builds the final one, saved under the rater id
  :data:`ADJUDICATED`, by picking a rater's work (:meth:`pick`) and editing it.
* A **corrupt** file is reported (:class:`CorruptAnnotationError`: path and schema error) and
  kept; only ``set_aside_corrupt=True`` (the user said yes) moves it aside to start afresh.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from ..errors import ConflictError, InputError
from .autosave import BackgroundSaver, frozen_copy
from .history import History, diff, snapshot
from .lock import AnnotationLock
from .model import QUALITIES, STATUSES, ClipAnnotation, FrameMask, PlaneRange, now_iso
from .store import ADJUDICATED as _ADJUDICATED

#: Rater id of the adjudicated (final) annotation written in review mode.
ADJUDICATED = _ADJUDICATED


class CorruptAnnotationError(InputError):
    """The rater's existing file cannot be read; it is kept until the user agrees to set it aside."""


def edited_fraction(proposal: np.ndarray, mask: np.ndarray) -> float:
    """|A xor B| / |A or B|: how much of a model proposal a human changed (0 = accepted as is)."""
    union = np.count_nonzero(proposal | mask)
    return 0.0 if union == 0 else float(np.count_nonzero(proposal ^ mask) / union)


class AnnotationSession:
    """Open with :meth:`open`; close with :meth:`close` (or use as a context manager)."""

    def __init__(self, project, clip, annotation: ClipAnnotation, lock: AnnotationLock, *,
                 user: str, review: bool = False, set_aside_path=None, history_depth: int = 200,
                 background_save: bool = False):
        self.project = project
        self.clip = clip
        self.annotation = annotation
        self.user = user
        self.review = review
        self.lock = lock
        self.set_aside_path = set_aside_path
        self.history = History(history_depth)
        self.saves = 0
        self._proposals: dict[int, np.ndarray] = {}  # model masks, to measure how much a human edits
        self._closed = False
        self._saver = (BackgroundSaver(self._write, name=f"autosave {annotation.clip_id}")
                       if background_save else None)

    # -- lifecycle -----------------------------------------------------------------------
    @classmethod
    def open(cls, project, clip_id: str, rater: str, *, review: bool = False,
             set_aside_corrupt: bool = False, history_depth: int = 200,
             background_save: bool = False, clip=None) -> AnnotationSession:
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
        lock = AnnotationLock.acquire(path.with_suffix(".lock"),
                                      who=f"clip '{clip_id}' of rater '{owner}'")
        try:
            aside = None
            try:
                annotation = store.load(clip_id, owner)
            except InputError as exc:
                if not set_aside_corrupt:
                    raise CorruptAnnotationError(
                        path, f"{exc.problem}. The file was left untouched; set it aside "
                        "(it is kept, renamed) to start this clip again."
                    ) from None
                aside = store.set_aside(clip_id, owner)
                annotation = None
            if annotation is None:
                annotation = ClipAnnotation(clip_id, owner, clip.n_frames, clip.frame_shape,
                                            clip_plane=project.clip_record(clip_id).get("plane"))
            elif (annotation.n_frames, tuple(annotation.frame_shape)) != (clip.n_frames, clip.frame_shape):
                raise CorruptAnnotationError(
                    path, f"annotation is for {annotation.n_frames} frames of "
                    f"{tuple(annotation.frame_shape)} but the clip has {clip.n_frames} frames of "
                    f"{clip.frame_shape}")
        except BaseException:
            lock.release()
            raise
        return cls(project, clip, annotation, lock, user=rater, review=review,
                   set_aside_path=aside, history_depth=history_depth, background_save=background_save)

    def close(self) -> None:
        """Write any pending autosave, then release the lock (raises if that last save failed)."""
        if not self._closed:
            self._closed = True
            try:
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
        if self._saver is None:
            path = self._write(self.annotation)
            self.saves += 1
            return path
        self._saver.submit(frozen_copy(self.annotation))
        self.saves += 1
        self._saver.check()
        return self.path

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
        editing an interpolated or propagated frame makes it 'drawn'.
        """
        mask = np.asarray(mask, dtype=bool)
        old = self.annotation.frames.get(t)
        kw: dict = {}
        provenance = "drawn"
        if old is not None and old.provenance in ("model", "model_edited"):
            provenance = "model_edited"
            proposal = self._proposals.get(t)
            if proposal is not None:
                kw["edited_fraction"] = edited_fraction(proposal, mask)
            else:  # proposal from an earlier session: add this edit to what was changed before
                kw["edited_fraction"] = min(1.0, (old.edited_fraction or 0.0) + edited_fraction(old.mask, mask))
        with self.change(label) as ann:
            ann.set_mask(t, mask, provenance, **kw)
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

    def apply_proposals(self, masks: Mapping[int, np.ndarray], confidence: Mapping[int, float] | None = None,
                        frame_planes: Sequence[str | None] | None = None) -> list[int]:
        """Model pre-annotation hook: fill frames nobody has touched with 'model' masks.

        Only unannotated frames and earlier model proposals are replaced: human keyframes and
        the frames filled from them (interpolated, propagated) stay (the rule of
        ``model.preannotate.Proposal.to_annotation``). ``frame_planes`` (one label per frame) sets the clip
        plane to the most common standard plane if the rater has not chosen one. Returns the frames set.
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
            if frame_planes is not None and ann.clip_plane is None:
                standard = [p for p in frame_planes if p in self.project.planes]
                if standard:
                    ann.clip_plane = max(set(standard), key=standard.count)
        return done

    # -- planes, flags, status ---------------------------------------------------------------
    def _check_plane(self, plane: str | None) -> None:
        if plane is not None and plane not in self.project.plane_labels:
            raise InputError(self.project.root, f"plane '{plane}' is not in this project's vocabulary "
                             f"({', '.join(self.project.plane_labels)})")

    def set_clip_plane(self, plane: str | None) -> None:
        self._check_plane(plane)
        with self.change("clip plane") as ann:
            ann.clip_plane = plane

    def set_plane_range(self, start: int, stop: int, plane: str) -> None:
        """Label frames ``[start, stop)`` (e.g. 'non_standard' where the probe left the plane)."""
        self._check_plane(plane)
        start, stop = sorted((int(start), int(stop)))
        if start < 0 or stop > self.annotation.n_frames or stop <= start:
            raise InputError(self.path, f"frame range [{start}, {stop}) is outside the clip's "
                             f"{self.annotation.n_frames} frames")
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
