"""progress.thinned: the steps a worker thread sends to the GUI, at most ~10 a second, without
losing the last step or the result."""

from napari_ultramn.progress import Progress, run_collecting, thinned


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def steps_at(clock, times, total, result="done"):
    """A generator yielding step k of ``total`` at clock time ``times[k]``, then returning."""
    for k, t in enumerate(times):
        clock.now = t
        yield Progress(k + 1, total, f"step {k + 1}")
    return result


def test_steps_closer_than_the_interval_are_dropped_and_the_last_is_held_for_the_end():
    clock = FakeClock()
    times = [0.00, 0.03, 0.06, 0.12, 0.15, 0.30, 0.31]
    shown, result = run_collecting(thinned(steps_at(clock, times, total=10), 0.1, clock))
    # the first; 0.12 (0.12 s after 0.00); 0.30; and 0.31, the last, held and sent before the result
    assert [p.done for p in shown] == [1, 4, 6, 7] and result == "done"


def test_a_step_that_completes_the_total_always_passes():
    clock = FakeClock()
    times = [0.0, 0.01, 0.02]
    shown, result = run_collecting(thinned(steps_at(clock, times, total=3, result=42), 0.1, clock))
    assert [p.done for p in shown] == [1, 3] and result == 42


def test_slow_work_passes_every_step_and_an_empty_generator_only_returns():
    clock = FakeClock()
    times = [0.0, 0.2, 0.4, 0.6]
    shown, _ = run_collecting(thinned(steps_at(clock, times, total=0), 0.1, clock))
    assert [p.done for p in shown] == [1, 2, 3, 4]
    assert run_collecting(thinned(steps_at(clock, [], total=0, result=None), 0.1, clock)) == ([], None)
