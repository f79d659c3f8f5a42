"""Per-item work on every core: one helper, :func:`pool_map`, for ingest, simulated raters,
agreement and dataset writing.

Why a process pool (not threads): the per-clip work (decoding, distance transforms, Blosc) holds
the GIL for much of its time. Why not plain ``fork``: the GUI runs these generators on a Qt worker
thread and torch may be loaded; forking a process with threads copies their locks in whatever
state they are in. Workers come from a fork server (or are spawned, :func:`_context`), so the
function and its arguments must be importable and picklable (module-level functions, plain data,
paths rather than open files or projects).

Contracts every caller keeps:

* **Workers never hold the project lock nor write the registry** (or any file shared between
  items): they return results and the parent writes them, one writer.
* ``workers=1`` runs everything in this process, in order, with no pool: the path for tests,
  debugging and machines where processes cannot be started.
* An :class:`~napari_ultramn.errors.UltramnError` raised by a worker (``InputError`` naming the
  file, ``OutputError`` for a full disk) is raised again in the parent as the same class with the
  same path and problem, never as a pickled traceback.
* Ctrl-C, or closing the generator (the GUI's Cancel), cancels the items not yet started and waits
  for the running ones (workers ignore SIGINT, so a Ctrl-C in a terminal reaches only the parent).
* At most ``in_flight`` items (default twice the workers) are submitted or finished and not yet
  consumed, so memory stays bounded whatever the number of items.
* Start-up (the fork server's imports, ~0.2-0.6 CPU-s, then one fork per worker) is paid once
  per pool session: ``preload`` keeps it to what the workers import, :func:`prestart` lets it run
  while the caller prepares, ``help_while_starting`` lets the parent work meanwhile (opt-in).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from .errors import InputError, OutputError, UltramnError

T = TypeVar("T")
R = TypeVar("R")

#: Variables that make native libraries use one thread per worker process: N workers x N threads
#: would oversubscribe the cores the pool is there to use.
_ONE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "BLOSC_NTHREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}

#: What the fork server imports once whatever the work, so each worker it forks starts with them
#: loaded (a worker spawned bare spends about a CPU-second importing; a pool of 16, sixteen). The
#: module of the pool's function is imported there too (``pool_map``), with what it imports.
_BASE_PRELOAD = ("numpy", "h5py", "hdf5plugin", "napari_ultramn.io.h5")

#: ...and what most per-clip work needs (agreement, simulated raters, ingest and its audit), unless
#: a caller names its own: scipy.ndimage alone is about half the server's start-up (~0.3 CPU-s),
#: which a dataset build, needing none of it, would wait for before its first clip.
_PRELOAD = (*_BASE_PRELOAD, "scipy.ndimage", "napari_ultramn.annotation", "jsonschema")

_shared: Any = None  # the per-worker argument, set once per process by _init_worker


def _context(fn: Callable | None = None, preload: Iterable[str] | None = None):
    """``forkserver`` where there is one (Linux, macOS): workers are forked from a clean,
    single-threaded server process started once per session with the heavy imports done (those
    of the first pool's ``preload`` and function; a later pool's workers import what else they
    need), so no lock of the GUI's or torch's threads is copied and a second pool starts in
    milliseconds. ``spawn`` elsewhere; ``ULTRAMN_START_METHOD`` overrides (spawn, forkserver)."""
    import multiprocessing

    method = os.environ.get("ULTRAMN_START_METHOD") or (
        "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    )
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        modules = list(_PRELOAD if preload is None else (*_BASE_PRELOAD, *preload))
        module = getattr(fn, "__module__", None)
        if module and module != "__main__" and module not in modules:
            modules.append(module)
        ctx.set_forkserver_preload(modules)  # used when the server starts; a running one keeps its own
    return ctx


def prestart(fn: Callable, *, workers: int | None = None, preload: Iterable[str] | None = None) -> None:
    """Start the fork server for a :func:`pool_map` of ``fn`` that will come soon, so that its
    imports (~0.3-0.6 CPU-s) run on another core while this process prepares the items, instead
    of the first items waiting for them. Nothing happens with one worker or without a fork
    server; a server already running is kept."""
    if resolve_workers(workers) <= 1:
        return
    if _context(fn, preload).get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()  # spawns the server and returns; it imports in the background


def default_workers() -> int:
    """All the cores this process may run on (``sched_getaffinity``: a container's or taskset's
    share, not the machine's count), unless ``ULTRAMN_WORKERS`` says otherwise (the test suite
    sets 1, so monkeypatched functions stay in its process)."""
    env = os.environ.get("ULTRAMN_WORKERS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int | None) -> int:
    """``None`` or 0 = all cores; a negative number is refused with a one-line message."""
    if workers is None or workers == 0:
        return default_workers()
    if workers < 0:
        raise InputError(None, f"--workers must be 1 or more (0: all cores), got {workers}")
    return int(workers)


class _Raised:
    """An UltramnError crossing the process boundary as plain data (our errors' ``__init__``
    takes ``(path, problem)``, which pickle's default ``args`` round trip cannot rebuild)."""

    def __init__(self, exc: UltramnError):
        self.cls = type(exc)
        self.path = getattr(exc, "path", None)
        self.problem = getattr(exc, "problem", None)
        self.errno = exc.errno if isinstance(exc, OSError) else None
        self.args = exc.args

    def rebuild(self) -> UltramnError:
        if issubclass(self.cls, OutputError):
            return self.cls(self.path, self.problem or str(self.args[0] if self.args else ""), self.errno)
        if issubclass(self.cls, InputError):
            return self.cls(self.path, self.problem or str(self.args[0] if self.args else ""))
        try:
            return self.cls(*self.args)
        except TypeError:  # a subclass with another signature: keep the message, lose the class
            return UltramnError(*self.args)


def _init_worker(env: dict[str, str], shared: Any) -> None:
    global _shared
    import signal

    os.environ.update(env)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _shared = shared


def _call(fn: Callable, item: Any):
    """Run in a worker: ``fn(shared, item)``, with our errors turned into plain data."""
    try:
        return False, fn(_shared, item)
    except UltramnError as exc:
        return True, _Raised(exc)


def pool_map(
    fn: Callable[[Any, T], R],
    items: Iterable[T],
    *,
    shared: Any = None,
    workers: int | None = None,
    ordered: bool = False,
    in_flight: int | None = None,
    preload: Iterable[str] | None = None,
    help_while_starting: bool = False,
) -> Iterator[tuple[int, R]]:
    """``(index, fn(shared, item))`` for every item, computed by ``workers`` processes.

    ``shared`` (picklable) is sent to each worker once, not with every item: put what all items
    need there (a project root, the registry snapshot, options). ``ordered=False`` yields results
    as they finish (progress moves at once; the caller restores the order by index);
    ``ordered=True`` yields them in the items' order. ``fn`` must be a module-level function.
    ``preload``: the modules the fork server imports for its workers besides numpy, h5py and
    ``fn``'s module (default: scipy.ndimage, the annotation package and jsonschema).
    ``help_while_starting``: this process works through the first items itself (in order, as
    with ``workers=1``) until the workers are up, a fraction of a second of a core otherwise idle;
    never the last item. An item that kills its process (out of memory) then ends this one.
    """
    workers = resolve_workers(workers)
    items = list(items)
    if workers == 1 or len(items) <= 1:
        for i, item in enumerate(items):  # no pool: plain calls, exceptions as they are
            yield i, fn(shared, item)
        return
    in_flight = max(in_flight or 2 * workers, workers)
    yield from _pooled(fn, items, shared, min(workers, len(items)), ordered, in_flight, preload, help_while_starting)


def _pooled(fn, items, shared, workers, ordered, in_flight, preload, help_while_starting):
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    env = {k: v for k, v in _ONE_THREAD.items() if k not in os.environ}
    pool = ProcessPoolExecutor(
        workers, mp_context=_context(fn, preload), initializer=_init_worker, initargs=(env, shared)
    )
    pending: dict = {}  # future -> index
    done: dict[int, Any] = {}  # finished, not yet yielded (ordered mode waits for the next index)
    next_submit = next_yield = 0
    starting = _Starter(pool, workers)
    try:
        # the workers take a fraction of a second to start (the fork server may still be importing):
        # meanwhile this process works through the first items itself, in order, as workers=1 does
        while help_while_starting and starting.is_alive() and next_submit < len(items) - 1:
            yield next_submit, fn(shared, items[next_submit])
            next_submit = next_yield = next_submit + 1
        starting.join()
        while next_yield < len(items):
            while next_submit < len(items) and len(pending) + len(done) < in_flight:
                pending[pool.submit(_call, fn, items[next_submit])] = next_submit
                next_submit += 1
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(finished, key=pending.get):
                try:
                    failed, value = future.result()
                except BrokenProcessPool:  # killed from outside: the kernel's OOM killer, a kill
                    raise UltramnError(
                        f"a worker process died with {len(items) - next_yield} of {len(items)} items "
                        "unfinished (out of memory?); rerun with fewer --workers"
                    ) from None
                index = pending.pop(future)
                if failed:
                    raise value.rebuild() from None
                done[index] = value
            if ordered:
                while next_yield in done:
                    yield next_yield, done.pop(next_yield)
                    next_yield += 1
            else:
                for index in sorted(done):
                    yield index, done.pop(index)
                    next_yield += 1
    finally:  # normal end, error, Ctrl-C or the generator closed: nothing left running
        starting.join()
        pool.shutdown(wait=True, cancel_futures=True)


def _ready() -> None:
    """A worker's first task: it is up (started, initialised, its function's module imported)."""


class _Starter:
    """Starts the pool's workers in a thread (``submit`` blocks while it spawns each one), so the
    parent can work meanwhile; a failure to start is left for the parent's own submit to raise."""

    def __init__(self, pool, workers: int):
        import threading

        self._thread = threading.Thread(target=self._start, args=(pool, workers), daemon=True)
        self._thread.start()

    @staticmethod
    def _start(pool, workers: int) -> None:
        from concurrent.futures import wait

        try:
            wait([pool.submit(_ready) for _ in range(workers)])  # one spawn per submit while none is idle
        except Exception:  # noqa: BLE001  (the parent's next submit raises it again, as without a starter)
            pass

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def join(self) -> None:
        self._thread.join()


def in_order(results: Iterator[tuple[int, R]], n: int) -> list[R]:
    """Collect ``pool_map`` results into a list in the items' order."""
    out: list = [None] * n
    for i, value in results:
        out[i] = value
    return out


def _workers_option(text: str) -> int:
    import argparse

    try:
        return resolve_workers(int(text))
    except (ValueError, InputError):
        raise argparse.ArgumentTypeError(f"must be a whole number, 1 or more (0: all cores), got {text!r}") from None


def add_workers_argument(parser) -> None:
    """The ``--workers N`` option every per-clip command shares (``args.workers``)."""
    parser.add_argument(
        "--workers",
        type=_workers_option,
        default=None,
        metavar="N",
        help="processes for the per-clip work (default: all cores, "
        f"{default_workers()} here; 1: no pool); the result is the same for any N",
    )


def stop_fork_server() -> None:
    """Stop the fork server, if one runs (the next pool starts another). For measurements: once it
    is stopped and reaped, ``getrusage(RUSAGE_CHILDREN)`` counts its workers' CPU and memory (they
    are its children, not ours). Uses a private method of ``multiprocessing.forkserver``; a Python
    without it leaves the server running."""
    from multiprocessing import forkserver

    stop = getattr(getattr(forkserver, "_forkserver", None), "_stop", None)
    if stop is not None:
        stop()
