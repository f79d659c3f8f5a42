"""Undo/redo across frames: one step may change many frames (interpolation, propagation) at once.

A :class:`ChangeGroup` records, per changed frame, the :class:`FrameMask` before and after
(``None`` = unannotated), and per changed clip-level field (plane, plane ranges, quality, comment,
status) the value before and after. Undo puts the "before" side back, redo the "after" side.
FrameMasks are treated as immutable values (edits replace them), so storing references is cheap.
"""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .clip_annotation import ClipAnnotation, FrameMask

#: Clip-level fields a change group may carry.
FIELDS = ("clip_plane", "plane_ranges", "status", "quality", "comment")


@dataclass
class ChangeGroup:
    """What one user action changed: ``frames {t: (before, after)}``, ``fields {name: (before, after)}``."""

    label: str
    frames: dict[int, tuple[FrameMask | None, FrameMask | None]] = field(default_factory=dict)
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.frames or self.fields)

    def apply(self, annotation: ClipAnnotation, side: int) -> None:
        """Write side 0 (before: undo) or 1 (after: redo) into ``annotation``."""
        for t, pair in self.frames.items():
            value = pair[side]
            if value is None:
                annotation.frames.pop(t, None)
            else:
                annotation.frames[t] = value
        for name, pair in self.fields.items():
            setattr(annotation, name, copy.deepcopy(pair[side]))


def snapshot(annotation: ClipAnnotation) -> tuple[dict[int, FrameMask], dict[str, object]]:
    """A cheap copy of the state a change may touch (frame references, deep-copied fields)."""
    return dict(annotation.frames), {f: copy.deepcopy(getattr(annotation, f)) for f in FIELDS}


def diff(label: str, before: tuple, annotation: ClipAnnotation) -> ChangeGroup:
    """The change from a :func:`snapshot` to the annotation's current state."""
    frames_before, fields_before = before
    group = ChangeGroup(label)
    for t in set(frames_before) | set(annotation.frames):
        old, new = frames_before.get(t), annotation.frames.get(t)
        if old is not new:
            group.frames[t] = (old, new)
    for name in FIELDS:
        new = getattr(annotation, name)
        if fields_before[name] != new:
            group.fields[name] = (fields_before[name], copy.deepcopy(new))
    return group


class History:
    """Undo and redo stacks of :class:`ChangeGroup`; at most ``depth`` undo steps are kept."""

    def __init__(self, depth: int = 200):
        if depth < 1:
            raise ValueError(f"history depth must be at least 1, got {depth}")
        self.depth = depth
        self._undo: deque[ChangeGroup] = deque(maxlen=depth)
        self._redo: list[ChangeGroup] = []

    def push(self, group: ChangeGroup) -> None:
        """Record a new change (an empty one is ignored); a new change clears the redo stack."""
        if not group:
            return
        self._undo.append(group)
        self._redo.clear()

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo_label(self) -> str | None:
        return self._undo[-1].label if self._undo else None

    def redo_label(self) -> str | None:
        return self._redo[-1].label if self._redo else None

    def undo(self, annotation: ClipAnnotation) -> ChangeGroup | None:
        """Revert the last change in ``annotation``; returns it (``None`` if nothing to undo)."""
        if not self._undo:
            return None
        group = self._undo.pop()
        group.apply(annotation, 0)
        self._redo.append(group)
        return group

    def redo(self, annotation: ClipAnnotation) -> ChangeGroup | None:
        if not self._redo:
            return None
        group = self._redo.pop()
        group.apply(annotation, 1)
        self._undo.append(group)
        return group

    def clear(self) -> None:
        self._undo.clear()
        self._redo.clear()

    def __len__(self) -> int:
        return len(self._undo)
