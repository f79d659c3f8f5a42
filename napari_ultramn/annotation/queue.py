"""A rater's work queue: the status of every project clip, filters, next/previous unlabelled clip.

Status comes from the rater's annotation files. Only the small header fields are read (never the
masks), and results are cached by file modification time, so a 400-clip project refreshes fast.
The active time recorded per clip gives the median time per done clip and an estimate of the
time left; in review mode each entry also counts the clip's human raters (blind mode never looks).
Once a model has pre-annotated the project, the clips not started yet come most doubtful first
(``PROJECT/model_doubt.json``): a correction there teaches the next model the most.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, replace

from .model_doubt import doubt_path, read_model_doubt
from .store import RESERVED_RATERS

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
    active_seconds: float = 0.0  # the rater's recorded active time on the clip (0: none recorded)
    n_raters: int | None = None  # human raters of the clip; None in blind mode (not looked at)
    doubt: float | None = None  # the last pre-annotation's uncertainty (0-2) for a clip not started

    @property
    def multi_rater(self) -> bool:
        """Two or more raters: a clip to compare and adjudicate."""
        return (self.n_raters or 0) >= 2

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

    def text(self, show_plane: bool = True) -> str:
        """The queue line, 'c0   p0   [in progress]   transverse_wrist' (no plane in blind mode).

        In review mode the number of raters follows the status, and a clip with two or more
        starts with ◆. What a narrow list may cut comes last: the plane.
        """
        mark = "◆ " if self.multi_rater else ""
        line = f"{mark}{self.clip_id}   {self.participant or '?'}   [{self.display_status.replace('_', ' ')}]"
        if self.n_raters is not None:
            line += f"   {self.n_raters} rater{'' if self.n_raters == 1 else 's'}"
        if self.doubt is not None:
            line += f"   model doubt {self.doubt:.2f}"
        return line + (f"   {self.plane or '—'}" if show_plane else "")

    def matches(self, plane: str | None = None, participant: str | None = None, status: str | None = None) -> bool:
        if plane and self.plane != plane:
            return False
        if participant and self.participant != participant:
            return False
        if status:
            if status == "flagged":
                return self.flagged
            return self.display_status == status if status == "corrupt" else self.status == status
        return True


def duration(seconds: float) -> str:
    """Seconds as a person reads them: '40 s', '2.5 min', '3 h 05 min'."""
    seconds = max(float(seconds), 0.0)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    hours, minutes = divmod(int(round(seconds / 60)), 60)
    return f"{hours} h {minutes:02d} min"


class ClipQueue:
    """The clips of ``project`` as seen by ``rater``; call :meth:`refresh` after saves elsewhere.

    ``blind``: the plane and side recorded from the clip's header are left out of every entry (and
    so of the filters), or the rater would copy them and plane agreement would come out perfect.
    ``review``: each entry counts the clip's human raters (never with ``blind``).
    """

    def __init__(self, project, rater: str, *, blind: bool = False, review: bool = False):
        if blind and review:
            raise ValueError("a queue is either blind or for review, not both")
        self.project = project
        self.rater = rater
        self.blind = blind
        self.review = review
        self._cache: dict[str, tuple[float, tuple[str, str, bool, float]]] = {}
        self._doubt: tuple[int | None, dict[str, float]] = (None, {})  # (mtime_ns, model_doubt.json)
        self._entries: list[QueueEntry] = []
        self.refresh()

    def refresh(self) -> list[QueueEntry]:
        # the registry's indexed fields only: no whole record is decoded for a list
        entries = [self._entry(rec) for rec in self.project.clip_summaries()]
        self._entries = _most_doubtful_first(entries, self._model_doubt())
        return self._entries

    def _model_doubt(self) -> dict[str, float]:
        """``model_doubt.json``, read again only when it changed: the queue refreshes after every
        edit, and a 5,000-clip file is not worth parsing and schema-checking each time."""
        try:
            mtime = doubt_path(self.project.root).stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime != self._doubt[0] or mtime is None:
            self._doubt = (mtime, read_model_doubt(self.project.root) if mtime is not None else {})
        return self._doubt[1]

    def _header(self, clip_id: str) -> tuple[str, str, bool, float]:
        path = self.project.annotations.path(clip_id, self.rater)
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            return "not_started", "ok", False, 0.0
        cached = self._cache.get(clip_id)
        if cached and cached[0] == mtime:
            return cached[1]
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
            header = (
                str(obj["status"]),
                str(obj.get("quality", "ok")),
                False,
                max(float(obj.get("active_seconds", 0.0)), 0.0),
            )
        except (OSError, ValueError, KeyError, TypeError):
            header = ("in_progress", "ok", True, 0.0)
        self._cache[clip_id] = (mtime, header)
        return header

    def _entry(self, rec: dict) -> QueueEntry:
        status, quality, corrupt, active = self._header(rec["clip_id"])
        n_raters = None
        if self.review:
            store = self.project.annotations
            n_raters = sum(r not in RESERVED_RATERS for r in store.raters(rec["clip_id"]))
        return QueueEntry(
            clip_id=rec["clip_id"],
            participant=rec.get("participant"),
            side=None if self.blind else rec.get("side"),
            plane=None if self.blind else rec.get("plane"),
            n_frames=int(rec.get("n_frames", 0)),
            status=status,
            quality=quality,
            corrupt=corrupt,
            active_seconds=active,
            n_raters=n_raters,
        )

    # -- views ---------------------------------------------------------------------------
    def entries(
        self, plane: str | None = None, participant: str | None = None, status: str | None = None
    ) -> list[QueueEntry]:
        if status and status not in QUEUE_STATUSES:
            raise ValueError(f"unknown status filter {status!r}; expected one of {QUEUE_STATUSES}")
        return [e for e in self._entries if e.matches(plane, participant, status)]

    def entry(self, clip_id: str) -> QueueEntry:
        for e in self._entries:
            if e.clip_id == clip_id:
                return e
        raise KeyError(f"clip '{clip_id}' is not in the project")

    def line(self, entry: QueueEntry) -> str:
        """How the queue list shows ``entry`` (blind: without the header's plane)."""
        return entry.text(show_plane=not self.blind)

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

    def median_seconds(self, **filters) -> float | None:
        """Median active time per done clip (clips with recorded time only); None if there is none."""
        times = [e.active_seconds for e in self.entries(**filters) if e.status == "done" and e.active_seconds > 0]
        return statistics.median(times) if times else None

    def seconds_left(self, **filters) -> float | None:
        """Clips still needing work x the median time per done clip; None without a median."""
        median = self.median_seconds(**filters)
        return None if median is None else median * sum(e.needs_work for e in self.entries(**filters))

    def progress_text(self, **filters) -> str:
        """e.g. '37 / 412 clips done · median 2.5 min per clip · about 15 h 25 min left'
        (within the filters, if any)."""
        text = f"{self.n_done(**filters)} / {len(self.entries(**filters))} clips done"
        median = self.median_seconds(**filters)
        if median is None:
            return text
        left = self.seconds_left(**filters)
        return f"{text} · median {duration(median)} per clip · " + (
            "nothing left" if not left else f"about {duration(left)} left"
        )

    def next_unlabelled(
        self, current: str | None = None, *, backwards: bool = False, wrap: bool = True, **filters
    ) -> str | None:
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


def _most_doubtful_first(entries: list[QueueEntry], doubt: dict[str, float]) -> list[QueueEntry]:
    """The queue ordered most doubtful first; clips the model has not seen follow, in registry order.

    The order depends on the model's figures only, never on the rater's progress, so opening a
    clip or marking it done never moves the others ('next clip' stays predictable).
    """
    if not doubt:
        return entries
    marked = [replace(e, doubt=doubt.get(e.clip_id) if e.needs_work else None) for e in entries]
    order = sorted(
        range(len(entries)), key=lambda i: (entries[i].clip_id not in doubt, -doubt.get(entries[i].clip_id, 0.0), i)
    )
    return [marked[i] for i in order]
