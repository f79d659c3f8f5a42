"""Long work is a generator that yields :class:`Progress`; the GUI and CLI just consume it.

The GUI wraps the generator with ``napari.qt.threading.thread_worker`` (cancel = stop at the next
yield); the command line with :func:`run_with_progress_bar`; tests with :func:`run_to_end` (or
:func:`run_collecting`, to check the steps too). A stage that runs another stage restates its
steps with :func:`relay`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class Progress:
    """``done`` of ``total`` steps (``total`` 0 = unknown), a message, and optional metrics."""

    done: int
    total: int
    message: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)


ProgressGen = Generator[Progress, None, T]


def run_to_end(gen: ProgressGen[T]) -> T:
    """Run a progress generator synchronously and return its result (tests, scripts)."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def run_collecting(gen: ProgressGen[T]) -> tuple[list[Progress], T]:
    """Run a progress generator synchronously; returns every step it yielded and its result."""
    steps: list[Progress] = []
    while True:
        try:
            steps.append(next(gen))
        except StopIteration as stop:
            return steps, stop.value


def relay(gen: ProgressGen[T], restate: Callable[[Progress], Progress]) -> ProgressGen[T]:
    """Re-yield a sub-generator's steps through ``restate`` (e.g. scaled into a share of the
    caller's total) and return its result: ``result = yield from relay(gen, restate)``."""
    while True:
        try:
            p = next(gen)
        except StopIteration as stop:
            return stop.value
        yield restate(p)


def thinned(gen: ProgressGen[T], interval_s: float = 0.1, clock: Callable[[], float] | None = None) -> ProgressGen[T]:
    """Re-yield ``gen``'s steps at most once per ``interval_s`` and return its result.

    The first step, a step that completes the total and the last step (held, yielded before the
    result) always pass, so whoever shows them ends where the work ended. Why: a step yielded in
    a worker thread reaches the GUI as a queued signal, and the GUI thread must take Python's
    lock from the worker for each; one per frame of a propagation (30 in 0.3 s) made the worker
    wait for the lock after every frame. A progress bar moves a few times a second anyway.
    """
    now = clock or time.monotonic
    shown_at: float | None = None
    held: Progress | None = None
    while True:
        try:
            p = next(gen)
        except StopIteration as stop:
            if held is not None:
                yield held
            return stop.value
        t = now()
        if shown_at is None or t - shown_at >= interval_s or (p.total and p.done >= p.total):
            shown_at, held = t, None
            yield p
        else:
            held = p


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class PlainProgress:
    """Progress as plain lines, for output that is not a terminal (logs, CI, ``| tee``).

    A line when the stage (the message before its first ':') changes, and otherwise at most one
    every ``every_s`` seconds; the estimate of time left is elapsed time scaled by the share done.
    """

    def __init__(self, desc: str, stream, every_s: float = 10.0, clock=None):
        import time

        self.desc, self.stream, self.every_s = desc, stream, every_s
        self.clock = clock or time.monotonic
        self.t0 = self.clock()
        self.last_t = -1e9
        self.last_stage: str | None = None

    def line(self, p: Progress) -> str | None:
        now = self.clock()
        stage = p.message.split(":", 1)[0]
        if stage == self.last_stage and now - self.last_t < self.every_s:
            return None
        self.last_t, self.last_stage = now, stage
        elapsed = now - self.t0
        if p.total:
            share = min(1.0, p.done / p.total)
            left = f", about {_clock(elapsed / share - elapsed)} left" if 0.02 <= share < 1 else ""
            head = f"{self.desc} {100 * share:3.0f}%"
        else:
            head, left = self.desc, ""
        return f"{head} [{_clock(elapsed)} elapsed{left}] {p.message}"

    def update(self, p: Progress) -> None:
        text = self.line(p)
        if text is not None:
            print(text, file=self.stream, flush=True)


def run_with_progress_bar(gen: ProgressGen[T], desc: str = "", quiet: bool = False) -> T:
    """Run a progress generator on the command line: a tqdm bar on a terminal, plain lines otherwise."""
    import sys

    from tqdm import tqdm

    plain = None if quiet or sys.stderr.isatty() else PlainProgress(desc, sys.stderr)
    # percent and time, not "steps": a step of one stage is not a step of another
    bar = (
        None
        if quiet or plain
        else tqdm(
            desc=desc,
            leave=False,
            dynamic_ncols=True,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}] {postfix}",
        )
    )
    try:
        while True:
            try:
                p = next(gen)
            except StopIteration as stop:
                return stop.value
            if plain is not None:
                plain.update(p)
            if bar is not None:
                if p.total and bar.total != p.total:
                    bar.total = p.total
                bar.n = p.done
                bar.set_postfix_str(p.message[:60], refresh=False)
                bar.refresh()
    finally:
        if bar is not None:
            bar.close()
