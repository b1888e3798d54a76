"""Tasks for the runner's tests: module-level, so that worker processes can import them."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

STATE: dict = {}


def setup(offset: int, marker: str | None = None) -> None:
    STATE["offset"] = offset
    STATE["setups"] = STATE.get("setups", 0) + 1
    if marker:
        with open(marker, "a") as fh:
            fh.write(f"{os.getpid()}\n")


def failing_setup(offset: int) -> None:
    raise RuntimeError("this worker cannot start")


def square(i: int) -> tuple[int, int, int]:
    """i squared plus the setup's offset, the worker's pid, and how often it was set up."""
    return i * i + STATE.get("offset", 0), os.getpid(), STATE.get("setups", 0)


def killed_on(i: int, victim: int) -> int:
    if i == victim:  # as python-calamine aborts on a grid it cannot allocate
        os.kill(os.getpid(), signal.SIGKILL)
    return i


def stuck_on(i: int, victim: int) -> int:
    if i == victim:  # a reader in an endless loop
        while True:
            time.sleep(0.05)
    return i


def raises(i: int) -> int:
    raise ValueError(f"task {i} failed")


def exits_on(i: int, victim: int, marker: str, times: int) -> int:
    """Ends the worker with exit code 1 on ``victim`` the first ``times`` times (counted in
    ``marker``), as Python does when it fails in a worker."""
    if i == victim:
        log = Path(marker)
        tries = len(log.read_text().splitlines()) if log.exists() else 0
        if tries < times:
            with open(log, "a") as fh:
                fh.write("tried\n")
            os._exit(1)
    return i


def open_files(_: int) -> list[str]:
    """What this worker has open (Linux)."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return out
