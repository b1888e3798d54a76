"""One function over many inputs, in forked worker processes.

Reading and checking a return, or writing a template, takes a few milliseconds of pure Python
each; with hundreds of them a second core halves the wait. Workers are forked, so they start
in milliseconds with the register already in memory: only indices go to them and only results
come back. Where the platform cannot fork (Windows, macOS' default), or the calling process
runs other threads, everything runs in the calling process.

    results, lost = fork_map(lambda i: work(items[i]), len(items), workers=2)

``lost`` lists the indices whose worker died (a crash in a C extension, the OOM killer) or
was stopped as stuck (see ``stall_seconds``): the caller decides what that means for them.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, TypeVar

T = TypeVar("T")

#: Set DERBYXL_WORKERS=1 to do everything in the calling process.
WORKERS_ENV = "DERBYXL_WORKERS"
#: Inputs per task sent to a worker: enough to amortise the hand-over, few enough to share out.
CHUNK = 8

# The function of the running fork_map, inherited by the forked workers (never pickled).
_TASK: Callable[[int], object] | None = None
# Descriptors a forked child must not keep open: the consolidation lock above all, which a
# child would otherwise go on holding (flock locks belong to the open file, shared by forks)
# after its parent was killed.
_PARENT_ONLY: set[int] = set()


def parent_only(fd: int, keep: bool = True) -> None:
    """Mark ``fd`` as one that forked children close first thing (``keep=False`` unmarks)."""
    (_PARENT_ONLY.add if keep else _PARENT_ONLY.discard)(fd)


def in_child() -> None:
    """Run first in every forked child: let go of what belongs to the parent alone. The
    descriptor is pointed at /dev/null rather than closed, so the number stays taken and the
    parent's file object, if ever collected in the child, closes nothing else."""
    if not _PARENT_ONLY:
        return
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in _PARENT_ONLY:
            try:
                os.dup2(null, fd)
            except OSError:
                pass
    finally:
        os.close(null)
    _PARENT_ONLY.clear()


def default_workers() -> int:
    """``DERBYXL_WORKERS`` if set, else one per core, at most 4."""
    env = os.environ.get(WORKERS_ENV, "").strip()
    if env.isdigit():
        return max(1, int(env))
    return max(1, min(os.cpu_count() or 1, 4))


def can_fork() -> bool:
    """Whether forking is available and safe: the platform forks and this process runs one
    thread (a fork copies locks held by other threads, which could deadlock the child; a web
    server calling the library from its threads gets everything done in the calling one)."""
    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


def _run_chunk(indices: list[int]) -> list[tuple[int, object]]:
    return [(i, _TASK(i)) for i in indices]


def fork_map(
    fn: Callable[[int], T],
    n: int,
    workers: int | None = None,
    *,
    on_done: Callable[[int, T], None] | None = None,
    stall_seconds: float | None = None,
    meanwhile: Callable[[], object] | None = None,
) -> tuple[dict[int, T], list[int]]:
    """``fn(i)`` for ``i`` in ``range(n)``.

    Args:
        fn: the work for one input; its result must pickle. Exceptions propagate.
        n: how many inputs.
        workers: processes (default :func:`default_workers`, and never more than inputs); 1
            or no fork means the calling process does it all. Even one input goes to a
            worker: besides the second core, that keeps a crash in a C extension (a reader
            aborting on a file) out of the calling process.
        on_done: called in the calling process with each index and result as they arrive.
        stall_seconds: when no worker finishes anything for this long, something is stuck
            (a reader in an endless loop): the workers are stopped and what they had not
            finished is lost, for the caller to deal with.
        meanwhile: called once in the calling process after the workers have started (work
            the caller needs next that the workers do not, such as importing a module).

    Returns:
        results by index, and the indices lost with a worker that died or was stopped.
    """
    global _TASK
    workers = workers or default_workers()
    results: dict[int, T] = {}
    if workers <= 1 or n < 1 or not can_fork():
        if meanwhile:
            meanwhile()
        for i in range(n):
            results[i] = fn(i)
            if on_done:
                on_done(i, results[i])
        return results, []
    _TASK = fn
    try:
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=min(workers, n), mp_context=ctx, initializer=in_child) as pool:
            # Few inputs are shared out one or two at a time, so that every worker gets some.
            chunk = max(1, min(CHUNK, n // (2 * workers)))
            pending = {pool.submit(_run_chunk, list(range(k, min(k + chunk, n)))) for k in range(0, n, chunk)}
            if meanwhile:
                meanwhile()
            while pending:
                finished, pending = wait(pending, timeout=stall_seconds, return_when=FIRST_COMPLETED)
                if not finished:
                    # The pool's own processes (a private attribute, but the only handle on
                    # them; other children of this process are left alone).
                    for proc in list(getattr(pool, "_processes", {}).values()):
                        proc.kill()
                    pool.shutdown(wait=True, cancel_futures=True)
                    break
                for fut in finished:
                    try:
                        done = fut.result()
                    except BrokenProcessPool:
                        continue
                    for i, result in done:
                        results[i] = result
                        if on_done:
                            on_done(i, result)
    finally:
        _TASK = None
    return results, [i for i in range(n) if i not in results]
