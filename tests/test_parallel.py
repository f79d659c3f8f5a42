"""napari_ultramn.parallel.pool_map: order, errors that name the file, the in-process path."""

import os
from pathlib import Path

import pytest

from napari_ultramn import parallel
from napari_ultramn.errors import InputError, OutputError
from napari_ultramn.parallel import in_order, pool_map, resolve_workers


def square_with_pid(shared, item):
    return item * item + shared, os.getpid()


def fail_on_three(shared, item):
    if item == 3:
        raise InputError(Path(shared) / f"clip{item}.dcm", "not a DICOM file")
    if item == 4:
        raise OutputError(Path(shared) / "out.h5", "cannot write: no space left on the disk", 28)
    return item


def test_one_worker_runs_in_this_process_in_order():
    got = list(pool_map(square_with_pid, range(5), shared=1, workers=1))
    assert [i for i, _ in got] == [0, 1, 2, 3, 4]
    assert [v for _, (v, _) in got] == [1, 2, 5, 10, 17]
    assert {pid for _, (_, pid) in got} == {os.getpid()}


def test_one_worker_raises_the_error_itself():
    with pytest.raises(InputError, match=r"^data/clip3.dcm: not a DICOM file$"):
        list(pool_map(fail_on_three, range(6), shared="data", workers=1))


def test_two_workers_same_results_in_order_and_by_index():
    ordered = list(pool_map(square_with_pid, range(12), shared=2, workers=2, ordered=True, in_flight=3))
    assert [i for i, _ in ordered] == list(range(12))
    assert [v for _, (v, _) in ordered] == [i * i + 2 for i in range(12)]
    assert os.getpid() not in {pid for _, (_, pid) in ordered}
    unordered = in_order(pool_map(square_with_pid, range(12), shared=2, workers=2), 12)
    assert [v for v, _ in unordered] == [i * i + 2 for i in range(12)]


def test_this_process_works_while_the_workers_start(monkeypatch):
    """With help_while_starting, until the pool is up the parent does the next items itself, in
    order; the rest (at least the last item) go to the workers. Without it, none."""

    class SlowStart(parallel._Starter):
        checks = 0

        def is_alive(self):
            SlowStart.checks += 1
            return SlowStart.checks <= 3

    monkeypatch.setattr(parallel, "_Starter", SlowStart)
    got = list(pool_map(square_with_pid, range(6), shared=1, workers=2, ordered=True, help_while_starting=True))
    assert [(i, v) for i, (v, _) in got] == [(i, i * i + 1) for i in range(6)]
    pids = [pid for _, (_, pid) in got]
    assert pids[:3] == [os.getpid()] * 3 and os.getpid() not in pids[3:]
    SlowStart.checks = -100  # never up: the parent stops before the last item, which a worker does
    got = list(pool_map(square_with_pid, range(3), shared=1, workers=2, help_while_starting=True))
    assert [pid == os.getpid() for _, (_, pid) in sorted(got)] == [True, True, False]
    assert os.getpid() not in {pid for _, (_, pid) in pool_map(square_with_pid, range(3), shared=1, workers=2)}


def test_worker_errors_come_back_as_our_errors_naming_the_file():
    with pytest.raises(InputError, match=r"^data/clip3.dcm: not a DICOM file$") as caught:
        list(pool_map(fail_on_three, [0, 1, 3], shared="data", workers=2, ordered=True))
    assert caught.value.path == Path("data/clip3.dcm") and caught.value.problem == "not a DICOM file"
    assert caught.value.__cause__ is None  # no pickled traceback of the worker
    with pytest.raises(OutputError, match=r"^data/out.h5: cannot write: no space left") as caught:
        list(pool_map(fail_on_three, [4, 5], shared="data", workers=2))
    assert caught.value.errno == 28


def test_closing_the_generator_stops_the_pool():
    gen = pool_map(square_with_pid, range(50), shared=0, workers=2, ordered=True)
    assert next(gen)[0] == 0
    gen.close()  # what the GUI's Cancel does; must return, leaving nothing running


def test_workers_option(monkeypatch):
    monkeypatch.setenv("ULTRAMN_WORKERS", "3")
    assert resolve_workers(None) == 3 and resolve_workers(0) == 3 and resolve_workers(2) == 2
    monkeypatch.delenv("ULTRAMN_WORKERS")
    assert resolve_workers(None) == len(os.sched_getaffinity(0))
    with pytest.raises(InputError, match=r"^--workers must be 1 or more \(0: all cores\), got -1$"):
        resolve_workers(-1)


def test_workers_option_on_the_command_line(capsys):
    from napari_ultramn.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["build-dataset", "p", "out", "--workers", "-2"])
    assert stop.value.code == 2
    assert "argument --workers: must be a whole number, 1 or more (0: all cores), got '-2'" in capsys.readouterr().err


def die_on_two(shared, item):
    if item == 2:
        os._exit(9)  # as the kernel's OOM killer would end it
    return item


def test_a_worker_that_dies_is_one_line():
    from napari_ultramn.errors import UltramnError

    with pytest.raises(
        UltramnError,
        match=r"^a worker process died with \d of 4 items unfinished "
        r"\(out of memory\?\); rerun with fewer --workers$",
    ):
        list(pool_map(die_on_two, range(4), workers=2, ordered=True))
