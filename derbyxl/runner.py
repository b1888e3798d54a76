"""The one way derbyxl runs work in other processes: a pool of workers for untrusted files.

Reading a returned workbook runs third-party parsers on bytes an officer (or anyone, through
a web portal) sent. python-calamine aborts the whole process on some files (SIGABRT, which
Python cannot catch) and a reader can loop for ever on others, so every file is read in a
worker process: a worker that dies costs its own file a ``reader-crashed`` finding, one that
overruns its time is stopped and its file gets ``time-limit``, and the pool goes on with a
new worker. The same pool writes templates, where it is only a second core.

    with Runner(setup=use_register, setup_args=(register,)) as runner:
        done = runner.each(check_one, [(path, name) for ...], time_limit=20)
        ...                                      # the caller works while the workers do
        for index, result in done:               # results as they finish, in this thread
            if isinstance(result, Failed): ...

The pool is pebble's ``ProcessPool`` (per-task time limits, and a dead worker costs only
its task, which the standard library's pool does not give). Workers are started by the
``forkserver`` method (``spawn`` where there is none, as on Windows): they begin from a
clean process, not a copy of the caller, so they inherit no threads, locks or open files
(such as the consolidation lock), and the pool behaves the same when called from a web
server's threads. What every task needs (the register) goes to each worker once, pickled
once here; the ``setup`` function keeps it in the worker for the tasks.

As with every process pool that starts its workers afresh, a script that uses derbyxl must
start its work under ``if __name__ == "__main__":``, since each worker imports the script
first (the ``derbyxl`` command, pytest and web servers such as uvicorn already do).
"""

from __future__ import annotations

import atexit
import gc
import multiprocessing
import os
import pickle
import sys
import threading
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, wait
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any, Callable, Iterator, NamedTuple, Sequence

from derbyxl.xlsx_util import current_umask

#: Set DERBYXL_WORKERS to the number of worker processes (default: one per core, at most 4).
WORKERS_ENV = "DERBYXL_WORKERS"
#: Modules the fork server imports once, so that each worker starts with them loaded: what
#: the tasks run, and pebble's worker loop (imported in each worker, it cost 23 ms of its
#: 45 ms start; preloaded, a worker starts in 12 ms of CPU: bench/README.md, eleventh session).
PRELOAD = ["derbyxl.validate", "pebble.pool.process"]


#: Times a task is handed to a new worker after one ended on it with an exit code.
RETRIES = 2
#: Inputs handed to a worker at once, at most (:meth:`Runner.each`).
BATCH = 8


class WorkersUnavailable(RuntimeError):
    """No worker process could start (the setup failed in them, or no process could be made)."""


class Failed(NamedTuple):
    """A task that did not finish: ``code`` is ``time-limit`` or ``reader-crashed``."""

    code: str
    message: str


def default_workers() -> int:
    """``DERBYXL_WORKERS`` if set, else one per core, at most 4."""
    env = os.environ.get(WORKERS_ENV, "").strip()
    if env.isdigit():
        return max(1, int(env))
    return max(1, min(os.cpu_count() or 1, 4))


def _context():
    """forkserver where the platform has it (Linux, macOS), else spawn (Windows)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)  # only heeded before the server first starts
        return ctx
    return multiprocessing.get_context("spawn")


def start_early() -> None:
    """Start the fork server now, so that its imports run on another core while the caller
    does other work (loads the register) before it first uses a :class:`Runner`."""
    ctx = _context()
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


_COLLECTIONS = threading.Lock()
_blocks = 0  # blocks of few_collections running now, in any thread
_thresholds: tuple = ()  # what they were before the first of them


@contextmanager
def few_collections():
    """Collect garbage rarely while the block runs. A quarter allocates millions of small
    objects that live to its end; collecting at Python's default pace costs about 15% of
    the run and frees nothing (bench/README.md). The thresholds are the process's: they are
    restored when the last block running (in any thread) ends."""
    global _blocks, _thresholds
    with _COLLECTIONS:
        if _blocks == 0:
            _thresholds = gc.get_threshold()
            gc.set_threshold(100_000, 50, 1_000)
        _blocks += 1
    try:
        yield
    finally:
        with _COLLECTIONS:
            _blocks -= 1
            if _blocks == 0:
                gc.set_threshold(*_thresholds)


def ending() -> None:
    """For a program about to end (the ``derbyxl`` command, once its work is done and
    printed): its objects are left to the system rather than walked once more by the garbage
    collector as Python shuts down, which takes 0.25 s with pandas and pandera loaded
    (bench/README.md, eleventh session). Nothing of derbyxl's waits for the collector to be
    cleaned up: files, databases and workers are closed explicitly."""
    gc.freeze()


def give_back_memory() -> None:
    """Hand the memory freed so far back to the system, where the C library keeps it (glibc,
    on Linux; elsewhere nothing is done). After a large buffer is freed, glibc serves later
    ones of that size from its own heap, which it rarely returns: loading a register of
    597,000 items left 92 MB of such freed buffers in the process, for good, on top of the
    register's 209 MB (bench/README.md, ninth session). Called after a phase that freed
    large buffers; it takes a few milliseconds."""
    global _TRIM
    if _TRIM is None:
        _TRIM = False
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                _TRIM = ctypes.CDLL("libc.so.6").malloc_trim
            except (OSError, AttributeError):  # another C library (musl): nothing to do
                pass
    if _TRIM:
        _TRIM(0)


_TRIM = None

#: In a worker: why its setup failed (its tasks then fail at once with this, rather than the
#: worker ending and being started again, which some pebble releases do for ever).
_SETUP_ERROR: str | None = None


class SetupFailed(RuntimeError):
    """Raised by a task in a worker whose setup failed."""


def _start_worker(setup: Callable | None, blob: bytes, umask: int) -> None:
    """First thing in each worker: the caller's umask (files written get the user's), then
    what every task needs, kept out of the collector's way (it lives as long as the worker)."""
    global _SETUP_ERROR
    os.umask(umask)
    gc.set_threshold(100_000, 50, 1_000)
    if setup is None:
        return
    gc.disable()  # unpickling 200,000 items: collections would only look at them again
    try:
        setup(*pickle.loads(blob))
    except Exception as exc:  # noqa: BLE001 - said by every task of this worker
        _SETUP_ERROR = f"{type(exc).__name__}: {exc}"
    finally:
        gc.enable()
    gc.freeze()


class Runner:
    """A pool of worker processes; see the module's docstring. Use it in a ``with`` block,
    which stops the workers at its end."""

    def __init__(self, *, setup: Callable | None = None, setup_args: tuple = (), workers: int | None = None, long_lived: bool = False):
        """``setup(*setup_args)`` runs once in each worker before its first task (both must
        be importable by name: module-level functions); ``workers`` defaults to
        :func:`default_workers`. A runner used once starts no more workers than its first
        call has inputs; a ``long_lived`` one (a web portal's) starts them all."""
        self.workers = workers or default_workers()
        self._long_lived = long_lived
        self._setup = setup
        self.setup_args = setup_args
        self._pool = None
        self._starting = threading.Lock()  # one pool, even when threads call each at once

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc) -> None:
        self.close(stop=exc[0] is not None)

    def close(self, stop: bool = False, wait: bool = True) -> None:
        """Let the workers finish what they have (or ``stop`` them now) and end them. Without
        ``wait`` they are ended on a thread, which the process waits for when it ends: for
        idle workers, whose pool takes up to 0.1 s to notice it was closed (pebble looks at
        its workers every 0.1 s)."""
        if not wait:
            thread = threading.Thread(target=self.close, args=(stop,), name="derbyxl-runner-end", daemon=True)
            thread.start()
            with _KEEPING:
                _ENDING[:] = [t for t in _ENDING if t.is_alive()] + [thread]
            return
        with self._starting:
            if self._pool is not None:
                self._pool.stop() if stop else self._pool.close()
                self._pool.join()
                self._pool = None

    def _started(self, tasks: int):
        """The pool, started at the first call."""
        with self._starting:
            if self._pool is None:
                from pebble import ProcessPool  # imported when first needed: it starts threads

                gc.disable()
                try:
                    blob = pickle.dumps(self.setup_args, protocol=pickle.HIGHEST_PROTOCOL)
                finally:
                    gc.enable()
                umask = current_umask()
                workers = self.workers if self._long_lived else max(1, min(self.workers, tasks))
                self._pool = ProcessPool(max_workers=workers, initializer=_start_worker, initargs=(self._setup, blob, umask), context=_context())
            return self._pool

    def each(self, task: Callable, inputs: Sequence[tuple], *, time_limit: float | None = None) -> Iterator[tuple[int, Any]]:
        """Start ``task(*inputs[i])`` for every ``i`` in the workers now, and return an
        iterator over ``(i, result)`` in the order they finish. ``result`` is the task's
        return value, or :class:`Failed` when the task ran over ``time_limit`` seconds (its
        worker is stopped) or its worker died. A worker that ended with an exit code rather
        than a signal (Python failing there, most likely not the input's doing) has its task
        handed to a new worker, :data:`RETRIES` times at most. An exception raised by the
        task is raised by the iterator.

        Inputs go to the workers a few at a time (:data:`BATCH`: handing over one at a time
        costs about 1 ms each, a fifth of a return's reading). When a batch fails, each of
        its inputs is tried again on its own, so the one at fault is named and the others
        are done.

        Raises:
            WorkersUnavailable: (from the iterator) when no worker could start.
        """
        if not inputs:
            return iter(())
        pool = self._started(len(inputs))
        size = max(1, min(BATCH, len(inputs) // (4 * self.workers)))
        batches = [list(range(k, min(k + size, len(inputs)))) for k in range(0, len(inputs), size)]
        pending = {self._schedule(pool, task, inputs, batch, time_limit): batch for batch in batches}
        return self._as_done(pool, pending, task, inputs, time_limit)

    @staticmethod
    def _schedule(pool, task: Callable, inputs: Sequence[tuple], batch: list[int], time_limit: float | None):
        # A batch gets one input's time: a batch that needs more (one input stuck, or several
        # slow ones) is stopped and its inputs tried again one by one, each with that time.
        return pool.schedule(_run_batch, args=(task, [inputs[i] for i in batch]), timeout=time_limit)

    def _as_done(self, pool, pending: dict, task: Callable, inputs: Sequence[tuple], time_limit: float | None) -> Iterator[tuple[int, Any]]:
        from pebble import ProcessExpired

        tries: Counter[int] = Counter()
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                batch = pending.pop(future)
                try:
                    yield from zip(batch, future.result())
                    continue
                except SetupFailed as exc:
                    raise WorkersUnavailable(f"no worker process could start ({exc})") from exc
                except FutureTimeout:
                    failed = Failed("time-limit", f"reading it took over {time_limit:g} s and was stopped")
                except ProcessExpired as exc:
                    failed = Failed("reader-crashed", f"the process reading it stopped ({_how(exc.exitcode)})")
                    if len(batch) == 1 and exc.exitcode is not None and 0 <= exc.exitcode <= 255 and tries[batch[0]] < RETRIES:
                        tries[batch[0]] += 1
                        pending[self._schedule(pool, task, inputs, batch, time_limit)] = batch
                        continue
                except BrokenProcessPool as exc:  # every worker ended before taking a task
                    raise WorkersUnavailable(f"no worker process could start ({exc})") from exc
                if len(batch) > 1:  # which one? each again on its own
                    for i in batch:
                        pending[self._schedule(pool, task, inputs, [i], time_limit)] = [i]
                    continue
                yield batch[0], failed

    def run(self, task: Callable, inputs: Sequence[tuple], *, time_limit: float | None = None) -> list:
        """``each``, gathered: the results in the order of ``inputs``."""
        results: list = [None] * len(inputs)
        for i, result in self.each(task, inputs, time_limit=time_limit):
            results[i] = result
        return results


#: Runners kept for the calls that follow (:func:`kept`): by setup function, its key and runner.
_KEPT: dict[Callable | None, tuple[tuple, Runner]] = {}
_KEEPING = threading.Lock()
#: Threads ending runners closed without waiting (waited for when the process ends).
_ENDING: list[threading.Thread] = []


@contextmanager
def kept(setup: Callable | None = None, setup_args: tuple = (), workers: int | None = None) -> Iterator[Runner]:
    """A runner kept for later calls in this process, as loky's reusable executor is:
    starting and ending a pool of workers costs about 0.1 s (pebble looks at its workers
    every 0.1 s), which a quick command pays once but a program checking one return at a
    time (a script, the tests) would pay on every call.

    A call with the same ``setup``, the same ``setup_args`` (the very objects, such as the
    same register; texts and numbers by value), the same number of workers and the same
    umask gets the runner the last one used; anything else ends that runner (on a thread,
    without waiting) and starts another, so at most one is kept per setup function. A kept
    runner starts all its workers (a later call may have more inputs than the first). A call
    that fails ends its runner (its workers' state is not known); those kept are ended when
    the process ends.
    """
    workers = workers or default_workers()
    umask = current_umask()
    # Objects by identity (a register is not compared item by item), plain values by value.
    key = (tuple(a if a is None or isinstance(a, (str, int, float)) else id(a) for a in setup_args), workers, umask)
    with _KEEPING:
        old = _KEPT.get(setup)
        if old is not None and old[0] == key:
            runner = old[1]
        else:
            runner = Runner(setup=setup, setup_args=setup_args, workers=workers, long_lived=True)
            _KEPT[setup] = (key, runner)  # holds setup_args, so their ids stay theirs
    if old is not None and old[1] is not runner:
        old[1].close(wait=False)  # its workers are idle
    try:
        yield runner
    except BaseException:
        with _KEEPING:
            if _KEPT.get(setup, (None, None))[1] is runner:
                del _KEPT[setup]
        runner.close(stop=True)
        raise


@atexit.register
def _end_kept() -> None:
    with _KEEPING:
        runners = [runner for _, runner in _KEPT.values()]
        _KEPT.clear()
        ending = list(_ENDING)
    for runner in runners:
        runner.close()
    for thread in ending:
        thread.join()


def _run_batch(task: Callable, inputs: list[tuple]) -> list:
    """In a worker: ``task`` over a batch of inputs."""
    if _SETUP_ERROR is not None:
        raise SetupFailed(_SETUP_ERROR)
    return [task(*args) for args in inputs]


def _how(code: int | None) -> str:
    """How a worker ended: a signal (POSIX), or an exit code (Windows' are NTSTATUS values,
    such as 0xC0000409 for an abort, shown in hex)."""
    if code is None:
        return "no exit code"
    if code < 0:
        return f"signal {-code}"
    return f"exit code {code:#x}" if code > 255 else f"exit code {code}"

