"""Returned files checked by fresh interpreters, for where no process can be forked.

A program that runs threads (a web server checking uploads) must not fork, and Windows cannot.
There, :func:`derbyxl.validate.validate_paths` hands the files to a few child processes, each a
new interpreter started with the same Python (``python -c``: no ``__main__`` of the caller is
run again, unlike multiprocessing's spawn), so that a reader that aborts on a file
(python-calamine does on some files) costs a finding naming it, not the calling program, and
the second core is used as it is where workers are forked.

The parent writes to a child's standard input a pickle of (register, limits), then one pickle
of (index, path, workbook name) per file, and None at the end; the child answers each file on
its standard output with a pickle of (index, encoded stage result) (see
:func:`derbyxl.validate.encode_stage`). Only the parent's own objects are pickled: a returned
file is never unpickled. Each child has one file at a time, so when it dies, the file it was
reading is the one that killed it.
"""

from __future__ import annotations

import gc
import itertools
import pickle
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

#: How a child starts: derbyxl as the parent found it is appended to the path (appended, so that
#: nothing of the standard library is shadowed), for a derbyxl imported from a folder.
_BOOT = "import sys; sys.path.append({here!r}); from derbyxl.isolate import serve; sys.exit(serve())"


def serve() -> int:
    """The child's side: check the files the parent sends, one at a time."""
    from derbyxl.validate import check_file, encode_stage

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # anything printed must not mix with the answers
    register, limits = pickle.load(stdin)
    gc.freeze()  # the register lives to the end: collections need not look through it again
    while (task := pickle.load(stdin)) is not None:
        index, path, name = task
        pickle.dump((index, encode_stage(*check_file(path, name, register, limits))), stdout, protocol=pickle.HIGHEST_PROTOCOL)
        stdout.flush()
    return 0


class ChildFailed(Exception):
    """No child could do the work (none could be started, or one ended without a signal
    before any file was done: derbyxl not importable there, say). It says nothing about the
    files, which the caller then reads itself."""


#: Times a file is handed to a new child after one ended on it without a signal.
RETRIES = 2


def check_in_children(
    tasks: list[tuple[int, Path, str]],
    register,
    limits,
    children: int,
    on_done: Callable[[int, bytes], None],
    failed: Callable[[str, Path, str, str], bytes],
    meanwhile: Callable[[], object] | None = None,
) -> None:
    """Check ``tasks`` ((index, path, name)) in up to ``children`` fresh interpreters, calling
    ``on_done(index, blob)`` in this thread as each file is done. A child killed by a signal
    (or on Windows, ended by the system) costs its file a ``reader-crashed`` result (made by
    ``failed(name, path, code, message)``) and is replaced; one that takes over
    ``limits.max_seconds * 2`` on a file is stopped and the file gets ``time-limit``.
    ``meanwhile`` is called once the children are started.

    Raises:
        ChildFailed: before any file was done, when no child could do the work.
    """
    setup = pickle.dumps((register, limits), protocol=pickle.HIGHEST_PROTOCOL)
    answers: queue.Queue = queue.Queue()
    todo = list(reversed(tasks))
    tries: dict[int, int] = {}
    running: dict[int, _Child] = {}
    serials = itertools.count()
    finished = 0
    stall = limits.max_seconds * 2
    checked = time.monotonic()

    def start() -> None:
        serial = next(serials)
        running[serial] = _Child(serial, setup, todo.pop(), answers)

    try:
        for _ in range(max(1, min(children, len(todo)))):
            start()
        if meanwhile:
            meanwhile()
        while running:
            try:
                serial, answer = answers.get(timeout=1.0)
            except queue.Empty:
                serial, answer = None, None
            if time.monotonic() - checked >= 1.0:  # every second, busy or not: any child stuck?
                checked = time.monotonic()
                for child in running.values():
                    if child.task is not None and checked - child.since > stall:
                        child.kill(stopped=True)  # its thread then says it ended
            if serial is None:
                continue
            child = running[serial]
            if answer is not None:
                index, blob = answer
                finished += 1
                on_done(index, blob)
                if child.stopped:
                    pass  # it answered as it was being stopped: it gets nothing more
                elif todo:
                    child.send(todo.pop())
                else:
                    child.finish()
                continue
            del running[serial]
            code, task = child.wait(), child.task
            if task is not None:
                index, path, name = task
                if child.stopped:
                    finished += 1
                    on_done(index, failed(name, path, "time-limit", f"reading it took over {stall:g} s and was stopped"))
                elif code not in (0, 1):  # killed by a signal, or (Windows) ended by the system
                    finished += 1
                    on_done(index, failed(name, path, "reader-crashed", f"the process reading it stopped ({_how(code)})"))
                elif finished == 0:  # Python itself failed there before any file was done
                    raise ChildFailed(f"no child process could check files (exit code {code})")
                elif tries.get(index, 0) < RETRIES:
                    tries[index] = tries.get(index, 0) + 1
                    todo.append(task)  # not the file's doing, most likely: another child takes it
                else:
                    finished += 1
                    on_done(index, failed(name, path, "reader-crashed", f"the process reading it stopped ({_how(code)})"))
            if todo and len(running) < children:
                start()
    finally:
        for child in running.values():
            child.kill()
            child.wait()


def _how(code: int) -> str:
    """How a child ended: a signal (POSIX), or an exit code (Windows' are NTSTATUS values,
    such as 0xC0000409 for an abort, shown in hex)."""
    if code < 0:
        return f"signal {-code}"
    return f"exit code {code:#x}" if code > 255 else f"exit code {code}"


class _Child:
    """One fresh interpreter checking files, and a thread that sends it the setup and its
    first file, then reads its answers."""

    def __init__(self, serial: int, setup: bytes, first: tuple, answers: queue.Queue):
        self.serial = serial
        here = str(Path(__file__).resolve().parent.parent)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT.format(here=here)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
            )
        except OSError as exc:
            raise ChildFailed(f"no child process could be started ({exc})") from exc
        self.task: tuple | None = first
        self.since = time.monotonic()
        self.stopped = False
        # Written by the thread: a large register fills the pipe until the child has started.
        opening = setup + pickle.dumps(first, protocol=pickle.HIGHEST_PROTOCOL)
        threading.Thread(target=self._run, args=(opening, answers), daemon=True, name="derbyxl-child").start()

    def _run(self, opening: bytes, answers: queue.Queue) -> None:
        self._write(opening)
        try:
            while True:
                answer = pickle.load(self.proc.stdout)
                self.task = None
                answers.put((self.serial, answer))
        except Exception:  # noqa: BLE001 - the pipe closed (or garbage came): the child ended
            answers.put((self.serial, None))

    def _write(self, data: bytes) -> None:
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (OSError, ValueError):
            pass  # it has ended: the thread reading its answers says so

    def send(self, task: tuple) -> None:
        self.task = task
        self.since = time.monotonic()
        self._write(pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL))

    def finish(self) -> None:
        self._write(pickle.dumps(None))
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def kill(self, stopped: bool = False) -> None:
        if self.proc.poll() is None:
            self.stopped = stopped
            self.proc.kill()

    def wait(self) -> int:
        return self.proc.wait()
