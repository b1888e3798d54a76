"""The runner: every piece of work on untrusted files runs in its worker processes, a worker
that dies or overruns costs only its task, and it behaves the same from a thread."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from derbyxl.runner import RETRIES, WORKERS_ENV, Failed, Runner, WorkersUnavailable, default_workers

from . import runner_tasks as tasks


@pytest.mark.parametrize(("setting", "expected"), [("3", 3), (" 2 ", 2), ("0", 1), ("", None), ("four", None), (None, None)])
def test_the_number_of_workers_is_one_per_core_unless_set(monkeypatch, setting, expected):
    if setting is None:
        monkeypatch.delenv(WORKERS_ENV, raising=False)
    else:
        monkeypatch.setenv(WORKERS_ENV, setting)
    per_core = max(1, min(os.cpu_count() or 1, 4))
    assert default_workers() == (per_core if expected is None else expected)
    assert Runner().workers == default_workers()


def test_results_are_those_of_the_task_done_in_other_processes():
    with Runner(setup=tasks.setup, setup_args=(100,), workers=2) as runner:
        results = runner.run(tasks.square, [(i,) for i in range(12)])
    assert [r[0] for r in results] == [i * i + 100 for i in range(12)]
    pids = {r[1] for r in results}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert {r[2] for r in results} == {1}, "each worker is set up once, before its first task"


def test_each_gives_every_result_once_with_its_index():
    with Runner(workers=2) as runner:
        got = list(runner.each(tasks.square, [(i,) for i in range(40)]))
    assert sorted(i for i, _ in got) == list(range(40)) and all(result[0] == i * i for i, result in got)


def test_a_task_that_kills_its_worker_costs_only_itself():
    with Runner(workers=2) as runner:
        results = runner.run(tasks.killed_on, [(i, 5) for i in range(12)])
    assert results[5] == Failed("reader-crashed", "the process reading it stopped (signal 9)")
    assert [r for i, r in enumerate(results) if i != 5] == [i for i in range(12) if i != 5]


def test_a_task_over_its_time_is_stopped_and_the_others_finish():
    started = time.monotonic()
    with Runner(workers=2) as runner:
        results = runner.run(tasks.stuck_on, [(i, 1) for i in range(6)], time_limit=1)
    assert time.monotonic() - started < 20
    assert results[1] == Failed("time-limit", "reading it took over 1 s and was stopped")
    assert [r for i, r in enumerate(results) if i != 1] == [0, 2, 3, 4, 5]


def test_an_exception_in_a_task_reaches_the_caller():
    with pytest.raises(ValueError, match="task 0 failed"), Runner(workers=1) as runner:
        runner.run(tasks.raises, [(0,)])


@pytest.mark.parametrize("times, ok", [(1, True), (RETRIES + 1, False)])
def test_a_worker_that_exits_has_its_task_tried_again_a_few_times(tmp_path, times, ok):
    marker = tmp_path / "tries"
    with Runner(workers=2) as runner:
        results = runner.run(tasks.exits_on, [(i, 2, str(marker), times) for i in range(4)])
    assert results[:2] + results[3:] == [0, 1, 3]
    tried = len(marker.read_text().splitlines())
    if ok:  # not the input's doing: the next worker does it
        assert results[2] == 2 and tried == 1
    else:
        assert results[2] == Failed("reader-crashed", "the process reading it stopped (exit code 1)") and tried == 1 + RETRIES


def test_workers_that_cannot_start_say_so():
    with pytest.raises(WorkersUnavailable, match="no worker process could start .RuntimeError: this worker cannot start"):
        with Runner(setup=tasks.failing_setup, setup_args=(0,), workers=2) as runner:
            runner.run(tasks.square, [(1,), (2,)])


def test_from_a_thread_the_same_results(tmp_path):
    seen = {}

    def in_a_thread():  # as a web server calls the library
        with Runner(setup=tasks.setup, setup_args=(7,), workers=2) as runner:
            seen["results"] = runner.run(tasks.killed_on, [(i, 2) for i in range(5)])
            seen["squares"] = runner.run(tasks.square, [(i,) for i in range(3)])

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join(60)
    assert not thread.is_alive()
    assert seen["results"] == [0, 1, Failed("reader-crashed", "the process reading it stopped (signal 9)"), 3, 4]
    assert [r[0] for r in seen["squares"]] == [7, 8, 11]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_inherit_no_open_file_of_the_caller(tmp_path):
    # The consolidation lock above all: a worker holding it would keep it after its parent died.
    held = tmp_path / "held.lock"
    with open(held, "w"), Runner(workers=1) as runner:
        (opened,) = runner.run(tasks.open_files, [(0,)])
    assert str(held) not in opened
    assert not [p for p in opened if p.startswith(str(tmp_path))]


def test_no_inputs_no_workers():
    with Runner(workers=2) as runner:
        assert runner.run(tasks.square, []) == [] and runner._pool is None


def test_few_collections_restores_the_thresholds_after_the_last_block_in_any_thread():
    import gc

    from derbyxl.runner import few_collections

    before = gc.get_threshold()
    inside = threading.Event()
    release = threading.Event()

    def other():
        with few_collections():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=other)
    with few_collections():
        thread.start()
        inside.wait(10)
        assert gc.get_threshold()[0] == 100_000
    assert gc.get_threshold()[0] == 100_000  # the other thread's block still runs
    release.set()
    thread.join(10)
    assert gc.get_threshold() == before


def test_a_runner_closed_without_waiting_ends_on_a_thread():
    from derbyxl.runner import _ENDING

    runner = Runner(workers=1)
    assert [r[0] for r in runner.run(tasks.square, [(i,) for i in range(3)])] == [0, 1, 4]
    pool, before = runner._pool, list(_ENDING)
    runner.close(wait=False)
    # A thread of its own ends it (waited for when the process ends), not this call.
    (thread,) = [t for t in _ENDING if t not in before]
    assert thread.name == "derbyxl-runner-end"
    thread.join(timeout=30)
    assert runner._pool is None and not pool.active


def test_a_kept_runner_serves_the_same_setup_again_and_no_other():
    from derbyxl.runner import kept

    first_args, other_args = (100,), (200,)
    with kept(tasks.setup, first_args, workers=2) as a:
        one = a.run(tasks.square, [(i,) for i in range(4)])
        pool = a._pool
    with kept(tasks.setup, first_args, workers=2) as b:
        two = b.run(tasks.square, [(i,) for i in range(4)])
    assert b is a and b._pool is pool and pool.active, "the same pool of workers, not a new one"
    assert len({r[1] for r in one + two}) <= 2 and all(r[2] == 1 for r in one + two), "set up once each"
    # Other arguments (another register): another runner with its own workers and setup.
    with kept(tasks.setup, other_args, workers=2) as c:
        three = c.run(tasks.square, [(i,) for i in range(4)])
    assert c is not a and [r[0] for r in three] == [i * i + 200 for i in range(4)]
    assert not {r[1] for r in three} & {r[1] for r in one}
    from derbyxl.runner import _ENDING

    for thread in list(_ENDING):  # the one replaced is ended, on a thread of its own
        thread.join(timeout=30)
    assert a._pool is None
    # Another umask: files its workers write must get it, so another runner.
    old = os.umask(0o077)
    try:
        with kept(tasks.setup, other_args, workers=2) as d:
            d.run(tasks.square, [(1,)])
    finally:
        os.umask(old)
    assert d is not c
    # A call that fails ends its runner: the next call gets a fresh one.
    with pytest.raises(ValueError), kept(tasks.setup, other_args, workers=2) as e:
        e.run(tasks.raises, [(0,)])
    with kept(tasks.setup, other_args, workers=2) as f:
        assert f is not e and f.run(tasks.square, [(2,)])[0][0] == 204
