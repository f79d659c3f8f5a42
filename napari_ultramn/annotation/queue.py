"""A rater's work queue: the status of every project clip, filters, next/previous unlabelled clip.

Status comes from the rater's annotation files. Only the small header fields are read (never the
masks), and results are cached by file modification time, so a 400-clip project refreshes fast.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

#: Statuses shown to the rater; 'corrupt' marks a file the session will refuse to overwrite.
QUEUE_STATUSES = ("not_started", "in_progress", "done", "flagged", "corrupt")


@dataclass(frozen=True)
class QueueEntry:
    """One clip as the queue shows it."""

    clip_id: str
    participant: str | None
    side: str | None
    plane: str | None
    n_frames: int
    status: str  # not_started / in_progress / done (the rater's own status)
    quality: str  # ok / poor / unusable
    corrupt: bool = False

    @property
    def flagged(self) -> bool:
        return self.quality != "ok"

    @property
    def display_status(self) -> str:
        if self.corrupt:
            return "corrupt"
        return "flagged" if self.flagged else self.status

    @property
    def needs_work(self) -> bool:
        """Still to label: not done, and not flagged unusable (an unusable clip needs no mask)."""
        return not self.corrupt and self.status != "done" and self.quality != "unusable"

    def matches(self, plane: str | None = None, participant: str | None = None,
                status: str | None = None) -> bool:
        if plane and self.plane != plane:
            return False
        if participant and self.participant != participant:
            return False
        if status:
            if status == "flagged":
                return self.flagged
            return self.display_status == status if status == "corrupt" else self.status == status
        return True


class ClipQueue:
    """The clips of ``project`` as seen by ``rater``; call :meth:`refresh` after saves elsewhere.

    ``blind``: the plane recorded from the clip's header is left out of every entry (and so of
    the filters), or the rater would copy it and plane agreement would come out perfect.
    """

    def __init__(self, project, rater: str, *, blind: bool = False):
        self.project = project
        self.rater = rater
        self.blind = blind
        self._cache: dict[str, tuple[float, tuple[str, str, bool]]] = {}
        self._entries: list[QueueEntry] = []
        self.refresh()

    def refresh(self) -> list[QueueEntry]:
        # the registry's indexed fields only: no whole record is decoded for a list
        self._entries = [self._entry(rec) for rec in self.project.clip_summaries()]
        return self._entries

    def _header(self, clip_id: str) -> tuple[str, str, bool]:
        path = self.project.annotations.path(clip_id, self.rater)
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            return "not_started", "ok", False
        cached = self._cache.get(clip_id)
        if cached and cached[0] == mtime:
            return cached[1]
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
            header = (str(obj["status"]), str(obj.get("quality", "ok")), False)
        except (OSError, ValueError, KeyError, TypeError):
            header = ("in_progress", "ok", True)
        self._cache[clip_id] = (mtime, header)
        return header

    def _entry(self, rec: dict) -> QueueEntry:
        status, quality, corrupt = self._header(rec["clip_id"])
        return QueueEntry(
            clip_id=rec["clip_id"], participant=rec.get("participant"), side=rec.get("side"),
            plane=None if self.blind else rec.get("plane"), n_frames=int(rec.get("n_frames", 0)), status=status,
            quality=quality, corrupt=corrupt,
        )

    # -- views ---------------------------------------------------------------------------
    def entries(self, plane: str | None = None, participant: str | None = None,
                status: str | None = None) -> list[QueueEntry]:
        if status and status not in QUEUE_STATUSES:
            raise ValueError(f"unknown status filter {status!r}; expected one of {QUEUE_STATUSES}")
        return [e for e in self._entries if e.matches(plane, participant, status)]

    def entry(self, clip_id: str) -> QueueEntry:
        for e in self._entries:
            if e.clip_id == clip_id:
                return e
        raise KeyError(f"clip '{clip_id}' is not in the project")

    def participants(self) -> list[str]:
        return sorted({e.participant for e in self._entries if e.participant})

    def planes(self) -> list[str]:
        return sorted({e.plane for e in self._entries if e.plane})

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(QUEUE_STATUSES, 0)
        for e in self._entries:
            out[e.display_status] += 1
        return out

    def n_done(self, **filters) -> int:
        return sum(e.status == "done" for e in self.entries(**filters))

    def progress_text(self, **filters) -> str:
        """e.g. '37 / 412 clips done' (within the filters, if any)."""
        return f"{self.n_done(**filters)} / {len(self.entries(**filters))} clips done"

    def next_unlabelled(self, current: str | None = None, *, backwards: bool = False,
                        wrap: bool = True, **filters) -> str | None:
        """The next (or previous) clip after ``current`` that still needs work, in queue order.

        ``current`` need not match the filters. Returns ``None`` when nothing is left.
        """
        order = [e.clip_id for e in self._entries]
        todo = {e.clip_id for e in self.entries(**filters) if e.needs_work}
        if backwards:
            order = order[::-1]
        start = order.index(current) + 1 if current in order else 0
        candidates = order[start:] + (order[:start] if wrap else [])
        for clip_id in candidates:
            if clip_id in todo and clip_id != current:
                return clip_id
        return None

    def neighbour(self, current: str | None, step: int = 1, **filters) -> str | None:
        """The next (+1) or previous (-1) clip in the filtered queue, whatever its status."""
        ids = [e.clip_id for e in self.entries(**filters)]
        if not ids:
            return None
        if current not in ids:
            return ids[0] if step > 0 else ids[-1]
        i = ids.index(current) + step
        return ids[i] if 0 <= i < len(ids) else None
