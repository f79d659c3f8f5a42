"""Long work is a generator that yields :class:`Progress`; the GUI and CLI just consume it.

The GUI wraps the generator with ``napari.qt.threading.thread_worker`` (cancel = stop at the next
yield); the command line with :func:`run_with_progress_bar`; tests with :func:`run_to_end` (or
:func:`run_collecting`, to check the steps too). A stage that runs another stage restates its
steps with :func:`relay`.
"""

from __future__ import annotations

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


def run_with_progress_bar(gen: ProgressGen[T], desc: str = "", quiet: bool = False) -> T:
    """Run a progress generator with a tqdm bar on stderr (command line)."""
    from tqdm import tqdm

    bar = None if quiet else tqdm(desc=desc, unit="step", leave=False, dynamic_ncols=True)
    try:
        while True:
            try:
                p = next(gen)
            except StopIteration as stop:
                return stop.value
            if bar is not None:
                if p.total and bar.total != p.total:
                    bar.total = p.total
                bar.n = p.done
                bar.set_postfix_str(p.message[:60], refresh=False)
                bar.refresh()
    finally:
        if bar is not None:
            bar.close()
