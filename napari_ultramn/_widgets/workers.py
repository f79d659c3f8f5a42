"""Run a core progress generator from a widget: in a napari thread worker, or synchronously in tests.

Handlers run on the main thread (napari's worker signals are queued to it), so they may touch
layers; the generator itself never does. ``ULTRAMN_SYNC_WORKERS=1`` runs the very same generator
in the calling thread, which makes GUI tests deterministic without waiting on signals.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def sync_workers() -> bool:
    return os.environ.get("ULTRAMN_SYNC_WORKERS", "") not in ("", "0")


def _passthrough(gen):
    return (yield from gen)


def start(gen, on_yield: Callable, on_return: Callable, on_error: Callable, on_finish: Callable):
    """Start ``gen``; returns the napari worker (``.quit()`` cancels at the next step it passes,
    within ~0.1 s) or None.

    In a thread, the steps reach ``on_yield`` thinned to ~10 a second (:func:`~napari_ultramn.
    progress.thinned`: each one is a signal the GUI thread takes Python's lock from the worker
    for); the last step and the result always arrive. Synchronously every step does (deterministic
    tests)."""
    if sync_workers():
        try:
            while True:
                try:
                    on_yield(next(gen))
                except StopIteration as stop:
                    on_return(stop.value)
                    break
        except Exception as exc:  # shown to the user, as the threaded path does
            on_error(exc)
        finally:
            on_finish()
        return None
    from napari.qt.threading import create_worker

    from ..progress import thinned

    worker = create_worker(_passthrough, thinned(gen), _start_thread=False)
    worker.yielded.connect(on_yield)
    worker.returned.connect(on_return)
    worker.errored.connect(on_error)
    worker.finished.connect(on_finish)
    worker.start()
    return worker


def stop_process(process) -> None:
    """Terminate a child process (a training run, a loop round); kill it if it has not gone in 10 s."""
    import subprocess

    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def start_logged_process(command: list[str], log_path: Path):
    """Start ``command`` in its own session (Ctrl-C in the viewer's terminal or a viewer crash
    does not reach it), its output appended to ``log_path``; raises OSError if the folder cannot
    be written."""
    import subprocess

    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )


def last_log_line(log_path: Path) -> str:
    """The last line a process wrote to ``log_path`` (its error message, if it failed)."""
    try:
        lines = log_path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return f"see {log_path.name}."
    return lines[-1][-300:] if lines else f"see {log_path.name}."
